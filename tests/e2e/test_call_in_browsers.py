"""A whole call in real browsers (issue 4, items 5 and 6).

A visitor in Chromium (fake camera and microphone) and the tablet agent with
synthetic media, its kiosk page in a second Chromium context, complete a
call through the real server, started with the operator's commands. Both
sides show moving video, the countdown runs, staff end the call, and both
sides show the end screen. Every screen is photographed into
``test-artifacts/screens/`` and checked with axe-core.
"""

from __future__ import annotations

import re
import signal
from typing import Any

import pytest
from playwright.async_api import Page, expect

from kiosk.domain.model import Role
from tests.e2e.conftest import DESKTOP, PHONE, TABLET, Face, Faces, assert_visible_focus
from tests.e2e.page_wait import until_true
from tests.e2e.test_console import add_staff, log_in
from tests.harness import World, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A small grey-level thumbnail of what an element shows: <video> or <canvas>.
SAMPLE = """(selector) => {
    const source = document.querySelector(selector);
    const w = 64, h = 36;
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    const g = canvas.getContext("2d");
    g.drawImage(source, 0, 0, w, h);
    const data = g.getImageData(0, 0, w, h).data;
    const grey = [];
    for (let i = 0; i < data.length; i += 4) grey.push((data[i] + data[i + 1] + data[i + 2]) / 3);
    return grey;
}"""


async def sample(page: Page, selector: str) -> list[float]:
    grey: list[float] = await page.evaluate(SAMPLE, selector)
    return grey


def spread(grey: list[float]) -> float:
    """How much the picture varies: a black or blank picture has none."""
    mean = sum(grey) / len(grey)
    return (sum((g - mean) ** 2 for g in grey) / len(grey)) ** 0.5


def difference(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


async def assert_moving_video(page: Page, selector: str, what: str) -> None:
    await until_true(
        page,
        """(s) => { const e = document.querySelector(s);
                    return e.tagName !== "VIDEO" || (e.readyState >= 2 && e.videoWidth > 0); }""",
        f"{what}: a picture", timeout=30, arg=selector,
    )
    await page.wait_for_timeout(300)
    first = await sample(page, selector)
    await page.wait_for_timeout(2000)
    second = await sample(page, selector)
    assert spread(first) > 5 and spread(second) > 5, f"{what}: the picture is blank"
    # A frozen picture samples identically (0.0); Chromium's fake camera moves only
    # a small pie slice, so at this thumbnail size a moving picture differs by ~1.
    assert difference(first, second) > 0.3, f"{what}: the picture does not move"


async def countdown(page: Page) -> int:
    value = await page.locator("#countdown").get_attribute("data-seconds")
    assert value is not None
    return int(value)


def only_from(face: Face, origin: str) -> None:
    """Nothing on the page reached any host but ``origin`` (http and ws alike)."""
    ws_origin = origin.replace("http://", "ws://")
    assert face.origins() <= {origin, ws_origin}, face.origins()
    assert not face.csp_violations, face.csp_violations


async def test_a_visitor_and_the_tablet_complete_a_call_in_browsers(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, name="Kari Nordmann")
    # Long enough for the one-minute warning to come during the call.
    booking = await world.booking(inmate, contact, start_in=3, seconds=150)
    # A privileged call later today: shown, not yet callable, and confidential (R13).
    lawyer = await world.approved_contact(
        inmate, category="defence_counsel", relation="professional", name="Advokat Berg",
        email="berg@example.org",
    )
    await world.booking(inmate, lawyer, start_in=3 * 3600, seconds=3600)
    url = await world.invite_url(booking["id"])
    tablet = await world.tablet(inmate, "TAB-E2E1")

    # The visitor's first screens, on a phone and on a desktop, in English and bokmål.
    phone = await faces.open("visitor-phone", url, viewport=PHONE, locale="en-GB")
    await expect(phone.page.locator("#intro-h")).to_have_text("Your video call")
    await faces.screen(phone, "1-intro-en")
    await phone.page.click("#btn-check")
    await expect(phone.page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await faces.screen(phone, "2-check-en")
    await phone.context.close()
    faces.opened.remove(phone)

    visitor = await faces.open("visitor", url, viewport=DESKTOP, locale="nb-NO")
    page = visitor.page
    await expect(page.locator("#intro-h")).to_have_text("Din videosamtale")
    await faces.screen(visitor, "1-intro")
    assert await assert_visible_focus(page) == "Sjekk kamera og mikrofon"  # after the heading
    # The language switch works both ways.
    await page.click(".lang-btn[data-lang=en]")
    await expect(page.locator("#intro-h")).to_have_text("Your video call")
    await page.click(".lang-btn[data-lang=nb]")
    await expect(page.locator("#intro-h")).to_have_text("Din videosamtale")
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await assert_moving_video(page, "#preview-video", "the visitor's camera preview")
    await faces.screen(visitor, "2-check")
    await page.click("#btn-wait")
    await expect(page.locator("body")).to_have_attribute("data-screen", "waiting")
    await expect(page.locator("#waiting-control")).to_have_text(
        "Ikke kontrollert: ansatte ser ikke og hører ikke på."
    )
    await expect(page.locator("#waiting-status")).to_have_text("Venter på at fengselet ringer …")
    await faces.screen(visitor, "3-waiting")
    await page.set_viewport_size(PHONE)
    await faces.screen(visitor, "3-waiting-phone")
    await page.set_viewport_size(DESKTOP)

    # The tablet's kiosk page: the contact, callable once the window opens.
    kiosk = await faces.open("kiosk", tablet.ui_url, viewport=TABLET, locale="nb-NO")
    kpage = kiosk.page
    await expect(kpage.locator("#idle-h")).to_have_text("Hei, Ola")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    call_button = kpage.locator(f"li[data-booking='{booking['id']}'] button")
    await expect(call_button).to_be_enabled(timeout=10000)
    await expect(call_button).to_have_accessible_name("Ring Kari Nordmann")
    later = kpage.locator("li.contact").filter(has_text="Advokat Berg")
    await expect(later.locator("button")).to_be_disabled()
    await expect(later.locator(".control-badge")).to_have_text(
        "Fortrolig: blir aldri sett eller hørt"
    )
    await faces.screen(kiosk, "1-idle")
    assert await assert_visible_focus(kpage)  # a control, with its focus shown
    await call_button.click()
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "dialling")
    await faces.screen(kiosk, "2-connecting")

    # The call: moving video both ways, the countdown runs, the control level is shown.
    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=20000)
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-remote-video", "yes", timeout=30000)
    await until_true(page, "document.querySelector('#remote-video').videoWidth > 0",
                     "the tablet's picture at the visitor", timeout=30)
    await assert_moving_video(page, "#remote-video", "the tablet's picture at the visitor")
    await assert_moving_video(kpage, "#remote", "the visitor's picture on the tablet")
    await expect(page.locator("#call-control")).to_have_text(
        "Ikke kontrollert: ansatte ser ikke og hører ikke på."
    )
    await expect(kpage.locator("#call-control")).to_have_text("Ikke kontrollert")
    before = (await countdown(page), await countdown(kpage))
    await page.wait_for_timeout(2500)
    after = (await countdown(page), await countdown(kpage))
    assert after[0] < before[0] and after[1] < before[1], (before, after)
    assert abs(after[0] - after[1]) <= 3, "both ends count down to the same end"
    await faces.screen(visitor, "4-call")
    await faces.screen(kiosk, "3-call")
    await page.set_viewport_size(PHONE)
    await faces.screen(visitor, "4-call-phone")
    await page.set_viewport_size(DESKTOP)

    # The one-minute warning reaches both ends.
    await expect(page.locator("#call-warning")).to_be_visible(timeout=120000)
    await expect(kpage.locator("#warning")).to_be_visible(timeout=10000)
    await expect(page.locator("#call-warning")).to_contain_text("1 minutt igjen")
    await faces.screen(visitor, "5-call-warning")
    await faces.screen(kiosk, "4-call-warning")

    # An officer ends the call from the staff console, in a third browser context.
    await add_staff(world)
    console = await log_in(faces, world, Role.OFFICER, "console-end-call")
    live_row = console.page.locator("#live-calls tr[data-call]")
    await expect(live_row).to_contain_text("Connected", timeout=15000)
    await live_row.get_by_role("button", name="End call: Ola Nordmann").click()
    await console.page.fill("#end-note", "Time for the evening count.")
    await faces.screen(console, "1-end-call")
    await console.page.click("#dialog-ok")
    await expect(console.page.locator("#live-calls")).to_contain_text(
        "No call is live right now.", timeout=10000
    )
    await expect(page.locator("body")).to_have_attribute("data-screen", "end", timeout=10000)
    await expect(page.locator("#end-reason")).to_have_text("En ansatt avsluttet samtalen.")
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "ended", timeout=10000)
    await expect(kpage.locator("#ended-reason")).to_have_text("En ansatt avsluttet samtalen.")
    await faces.screen(visitor, "6-end")
    await faces.screen(kiosk, "5-ended")
    await kpage.click("#btn-back")
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "idle")

    # Neither page reached any host but its own server.
    only_from(visitor, world.web_url)
    only_from(kiosk, tablet.ui_url.rstrip("/"))


async def test_a_bad_link_shows_a_clear_error(world: World, faces: Faces) -> None:
    face = await faces.open("visitor-error", f"{world.web_url}/visit/{'A' * 43}", locale="en-GB")
    # Issue 16: said on the first page, before any camera check.
    await expect(face.page.locator("body")).to_have_attribute("data-screen", "error")
    await expect(face.page.locator("#error-text")).to_contain_text("This link is not valid")
    await faces.screen(face, "invalid-link")
    only_from(face, world.web_url)


async def test_a_link_to_a_cancelled_call_says_so_in_both_languages(
    world: World, faces: Faces
) -> None:
    """Issue 12, item 6: the invite of a booking that is off is refused, in words."""
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=60)
    url = await world.invite_url(booking["id"])
    await world.api.call("POST", f"/bookings/{booking['id']}/cancel", None)
    face = await faces.open("visitor-cancelled", url, locale="en-GB")
    # Issue 16: said on the first page, before any camera check, with no way to wait.
    await expect(face.page.locator("body")).to_have_attribute("data-screen", "closed")
    await expect(face.page.locator("#closed-text")).to_have_text(
        "The prison has cancelled this call. You do not need to wait."
    )
    await expect(face.page.locator("#btn-again")).to_be_hidden()  # trying again cannot help
    await expect(face.page.locator("#btn-check")).to_be_hidden()
    await face.page.click(".lang-btn[data-lang=nb]")
    await expect(face.page.locator("#closed-text")).to_have_text(
        "Fengselet har avlyst denne samtalen. Du trenger ikke å vente."
    )
    await faces.screen(face, "cancelled-call")
    only_from(face, world.web_url)


async def test_the_page_headers_forbid_inline_script_and_framing(world: World) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{world.web_url}/visit/{'A' * 43}") as resp:
            assert resp.status == 200
            csp = resp.headers["Content-Security-Policy"]
            headers: dict[str, Any] = dict(resp.headers)
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "camera=(self)" in headers["Permissions-Policy"]


async def test_a_controlled_call_through_the_bridge_shows_its_control_on_both_sides(
    world: World, faces: Faces
) -> None:
    """R6 and issue 5 item 5: the control level is stated before and throughout the call."""
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, control="sight_and_hearing", name="Kari")
    booking = await world.booking(inmate, contact, start_in=3, seconds=600)
    url = await world.invite_url(booking["id"])
    tablet = await world.tablet(inmate, "TAB-E2E2")

    visitor = await faces.open("visitor-controlled", url, viewport=PHONE, locale="en-GB")
    page = visitor.page
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await page.click("#btn-wait")
    await expect(page.locator("#waiting-control")).to_have_text("Staff may watch and listen.")
    await faces.screen(visitor, "1-waiting")

    kiosk = await faces.open("kiosk-controlled", tablet.ui_url, viewport=TABLET, locale="en-GB")
    kpage = kiosk.page
    await kpage.click(".lang-btn[data-lang=en]")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    call_button = kpage.locator(f"li[data-booking='{booking['id']}'] button")
    await expect(call_button).to_be_enabled(timeout=10000)
    await expect(kpage.locator("li.contact .control-badge")).to_have_text(
        "Staff may watch and listen"
    )
    await call_button.click()

    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-remote-video", "yes", timeout=30000)
    await assert_moving_video(page, "#remote-video", "the tablet's picture through the bridge")
    await assert_moving_video(kpage, "#remote", "the visitor's picture through the bridge")
    await expect(page.locator("#call-control")).to_have_text("Staff may watch and listen.")
    await expect(kpage.locator("#call-control")).to_have_text("Staff may watch and listen")
    await faces.screen(visitor, "2-call")
    await faces.screen(kiosk, "1-call")

    # The visitor leaves: both sides end, each saying why.
    await page.click("#btn-hangup")
    await expect(page.locator("#end-reason")).to_have_text("You left the call.")
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "ended", timeout=15000)
    await faces.screen(visitor, "3-end")
    await faces.screen(kiosk, "2-ended")
    only_from(visitor, world.web_url)
    only_from(kiosk, tablet.ui_url.rstrip("/"))


async def test_the_tablet_explains_a_refusal_and_a_lost_link(world: World, faces: Faces) -> None:
    """Principle 5: a refusal reaches the tablet with its reason, in words (R17 here: a quota
    lowered after booking changes nothing the tablet shows, so only the server can say no;
    a restriction would take the call off the tablet's list at once, issue 11)."""
    assert world.api is not None
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, name="Kari Nordmann")
    booking = await world.booking(inmate, contact, start_in=2, seconds=600)
    tablet = await world.tablet(inmate, "TAB-E2E3")
    kiosk = await faces.open("kiosk-refused", tablet.ui_url, viewport=TABLET)
    kpage = kiosk.page
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    call_button = kpage.locator(f"li[data-booking='{booking['id']}'] button")
    await expect(call_button).to_be_enabled(timeout=10000)
    quota = (await world.api.call("GET", "/facility"))["weekly_quota_minutes"]
    await world.api.call("PATCH", "/facility", {"weekly_quota_minutes": 5})
    try:
        await call_button.click()
        await expect(kpage.locator("#refusal")).to_be_visible(timeout=15000)
    finally:  # the module's world is shared: the next test books with the usual quota
        await world.api.call("PATCH", "/facility", {"weekly_quota_minutes": quota})
    await expect(kpage.locator("#refusal")).to_have_attribute("data-code", "quota_exhausted")
    await expect(kpage.locator("#refusal")).to_have_text(re.compile(r"\w"))
    await faces.screen(kiosk, "1-refused")
    # The server goes away: the page says so.
    assert world.server is not None
    world.server.kill(signal.SIGTERM)
    await expect(kpage.locator("#link")).to_have_text(
        "Ingen forbindelse med serveren", timeout=30000
    )
    await expect(call_button).to_be_disabled()
    await faces.screen(kiosk, "2-offline")


async def test_the_waiting_room_survives_a_server_restart(world: World, faces: Faces) -> None:
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=600, seconds=600)
    visitor = await faces.open("visitor-restart", await world.invite_url(booking["id"]))
    page = visitor.page
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await page.click("#btn-wait")
    await expect(page.locator("#waiting-status")).to_have_text("Venter på at fengselet ringer …")
    assert world.server is not None
    world.server.kill(signal.SIGTERM)
    await expect(page.locator("#waiting-status")).to_have_text(
        "Forbindelsen falt ut. Kobler til igjen …", timeout=15000
    )
    await faces.screen(visitor, "1-reconnecting")
    await world.start_server()
    await expect(page.locator("#waiting-status")).to_have_text(
        "Venter på at fengselet ringer …", timeout=45000
    )
    assert await page.locator("body").get_attribute("data-screen") == "waiting"
