"""The staff console in a real browser against a real server (issue 4, items 3, 5 and 6).

Each role logs in and is offered only what ``kiosk.domain.access`` lets it do;
the visit office proposes and decides contacts (with control level and
grounds, R6-R8; no control offered for privileged contacts, R13) and books
calls (police clearance for remand, R11) that then show on the board and on
the calendar with the capacity left (R9); an officer sets a booked call up on
the tablet (R12) and ends it live with a reason and a breach (R14); an admin
sees tamper events, revokes a tablet, closes the visit office (R15) and
verifies the audit chain. Every screen is photographed into
``test-artifacts/screens/`` and checked with axe-core.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from playwright.async_api import Page, expect

from kiosk.domain.access import PERMISSIONS, Action
from kiosk.domain.model import Role
from tests.e2e.conftest import DESKTOP, Face, Faces
from tests.e2e.page_wait import until_true
from tests.harness import ROOT, World, utc_now, wait_until
from tests.visitor_client import Visitor

# Capacity, closures and settings are the facility's totals: a world of its own per test.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.fresh_world]

PASSWORD = "console-pass-1234"
USERS = {Role.OFFICER: "officer", Role.VISIT_OFFICE: "visitoffice", Role.ADMIN: "chief"}

# The screens in the navigation and the action each needs (console/static/main.js).
NAV = {
    "board": Action.CALL_READ,
    "queue": Action.CONTACT_DECIDE,
    "calendar": Action.BOOKING_READ,
    "inmates": Action.INMATE_READ,
    "book": Action.BOOKING_WRITE,
    "devices": Action.DEVICE_READ,
    "facility": Action.FACILITY_READ,
    "staff": Action.STAFF_READ,
    "audit": Action.AUDIT_READ,
}


ROLE_NAMES = {
    Role.OFFICER: "Officer",
    Role.VISIT_OFFICE: "Visit office",
    Role.ADMIN: "Administrator",
}


def display_name(role: Role) -> str:
    return f"{role.value.replace('_', ' ').title()} Person"


async def add_staff(world: World) -> None:
    """One account per role, added by the admin through the staff API."""
    assert world.api is not None
    for role, username in USERS.items():
        await world.api.add_staff(username, display_name(role), role.value, PASSWORD)


async def world_ready(world: World) -> None:
    await add_staff(world)


def console_url(world: World) -> str:
    return f"{world.web_url}/console/"


async def log_in(faces: Faces, world: World, role: Role, name: str, shot: bool = False) -> Face:
    face = await faces.open(name, console_url(world), viewport=DESKTOP, locale="en-GB")
    page = face.page
    await expect(page.locator("#login-form")).to_be_visible()
    if shot:
        await faces.screen(face, "0-login")
    await page.fill("#login-username", USERS[role])
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    # The password's hash (argon2) takes its time on a busy machine.
    await expect(page.locator("#nav a").first).to_be_visible(timeout=30000)
    return face


async def go(page: Page, path: str) -> None:
    await page.evaluate("(path) => { location.hash = path; }", "#/" + path)
    await expect(page.locator("main h1")).to_be_visible()
    await page.wait_for_load_state("networkidle")


def only_from(face: Face, world: World) -> None:
    """The console reached nothing but its own server, and broke no CSP rule."""
    assert face.origins() <= {world.web_url}, face.origins()
    assert not face.csp_violations, face.csp_violations


async def facility_day(world: World, at: datetime) -> str:
    assert world.api is not None
    facility = await world.api.call("GET", "/facility")
    return at.astimezone(ZoneInfo(facility["timezone"])).strftime("%Y-%m-%d")


async def local_time(world: World, at: datetime) -> str:
    assert world.api is not None
    facility = await world.api.call("GET", "/facility")
    return at.astimezone(ZoneInfo(facility["timezone"])).strftime("%H:%M")


# --- roles ---------------------------------------------------------------------------


async def test_each_role_is_offered_only_what_it_may_do(world: World, faces: Faces) -> None:
    assert world.api is not None
    inmate = await world.inmate("Ola Nordmann")
    await world.approved_contact(inmate, name="Kari Nordmann")

    for index, role in enumerate((Role.OFFICER, Role.VISIT_OFFICE, Role.ADMIN)):
        face = await log_in(faces, world, role, f"console-{role.value}", shot=index == 0)
        page = face.page
        allowed = PERMISSIONS[role]
        offered = await page.locator("#nav a").evaluate_all(
            "links => links.map(a => a.dataset.path)"
        )
        assert offered == [path for path, action in NAV.items() if action in allowed], role
        await expect(page.locator("#who")).to_have_text(
            f"{display_name(role)} · {ROLE_NAMES[role]}"
        )
        await faces.screen(face, "1-board")

        # A screen the role may not use is not reachable by its address either.
        await go(page, "audit")
        expected = "audit" if Action.AUDIT_READ in allowed else "board"
        await expect(page.locator("body")).to_have_attribute("data-view", expected)

        await go(page, f"inmate/{inmate}")
        await expect(page.locator("#inmate-h")).to_have_text("Ola Nordmann")
        propose = page.locator("#btn-propose")
        appeal = page.get_by_role("button", name="File an appeal")
        if Action.CONTACT_WRITE in allowed:
            await expect(propose).to_be_visible()
        else:
            await expect(propose).to_have_count(0)
        await expect(appeal).to_have_count(1 if Action.APPEAL_FILE in allowed else 0)
        await faces.screen(face, "2-inmate")

        await go(page, "facility")
        if Action.FACILITY_WRITE in allowed:
            await expect(page.locator("#facility-form")).to_be_visible()
            await expect(page.locator("#btn-add-closure")).to_be_visible()
        else:
            await expect(page.locator("#facility-form")).to_have_count(0)
            await expect(page.locator("#btn-add-closure")).to_have_count(0)
        await faces.screen(face, "3-facility")
        only_from(face, world)
        await face.context.close()
        faces.opened.remove(face)


async def test_the_login_refuses_a_wrong_password_and_all_works_from_the_keyboard(
    world: World, faces: Faces
) -> None:
    face = await faces.open("console-keyboard", console_url(world), locale="en-GB")
    page = face.page
    await expect(page.locator("#login-username")).to_be_focused()
    await page.keyboard.type(USERS[Role.OFFICER])
    await page.keyboard.press("Tab")
    await page.keyboard.type("not the password at all")
    await page.keyboard.press("Enter")
    await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    await expect(page.locator("#top")).to_be_hidden()
    await expect(page.locator("#login-password")).to_be_focused()
    await faces.screen(face, "wrong-password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.locator("#nav a").first).to_be_visible()

    # After a reload (still logged in), the first Tab reaches the skip link, which moves
    # focus to the content; the navigation is reached with a visible focus ring.
    await page.reload()
    await expect(page.locator("#nav a").first).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(page.locator("#skip-link")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
    await expect(page.locator("body")).to_have_attribute("data-view", "board")
    await page.keyboard.press("Shift+Tab")
    inmates = page.locator("#nav a[data-path=inmates]")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await inmates.evaluate("a => a === document.activeElement"):
            break
    await expect(inmates).to_be_focused()
    outline = await inmates.evaluate("a => getComputedStyle(a).outlineStyle")
    assert outline == "solid", outline
    await faces.screen(face, "keyboard-focus")
    await page.keyboard.press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-view", "inmates")

    # Logging out ends the session: the API refuses the old cookie.
    await page.click("#btn-logout")
    await expect(page.locator("#login-form")).to_be_visible()
    status = await page.evaluate("async () => (await fetch('/api/v1/me')).status")
    assert status == 401


async def test_the_console_headers_forbid_inline_script_and_framing(world: World) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/console/", "/console/static/main.js", "/console/static/i18n/en.json"):
            async with http.get(world.web_url + path) as resp:
                assert resp.status == 200, path
                csp = resp.headers["Content-Security-Policy"]
                assert "default-src 'none'" in csp and "script-src 'self'" in csp
                assert "style-src 'self'" in csp and "'unsafe-inline'" not in csp
                assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
        for path in (
            "/console/static/../app.py",
            "/console/static/nope.js",
            "/console/static/X.js",
        ):
            async with http.get(world.web_url + path) as resp:
                assert resp.status == 404, path
        body = (ROOT / "kiosk/signalling/console/static/console.html").read_text()
        assert "<script>" not in body and "style=" not in body


# --- contacts and bookings -------------------------------------------------------------


async def test_the_visit_office_decides_contacts_and_books_a_call_that_shows_with_capacity(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    await world.api.call(
        "PATCH", "/facility",
        {"tablets": 2, "rooms": ["Visit room 1"], "monitoring_staff": 1, "max_call_minutes": 120},
    )  # fmt: skip
    face = await log_in(faces, world, Role.VISIT_OFFICE, "console-visit-office")
    page = face.page

    # Register an inmate.
    await go(page, "inmates")
    await page.fill("#inmate-name", "Ola Nordmann")
    await page.click("#inmate-form button[type=submit]")
    await expect(page.locator("#inmate-h")).to_have_text("Ola Nordmann")
    inmate_id = page.url.rsplit("/", 1)[1]

    # Propose a personal contact who is cleared for visits (R3).
    await page.click("#btn-propose")
    await page.fill("#contact-name", "Kari Nordmann")
    await page.fill("#contact-email", "kari@example.org")
    await page.select_option("#contact-category", "personal")
    await page.select_option("#contact-relation", "sibling")
    await page.check("#contact-cleared")
    await faces.screen(face, "4-propose-contact")
    await page.click("#dialog-ok")
    card = page.locator("article.contact", has_text="Kari Nordmann")
    await expect(card).to_have_attribute("data-status", "awaiting_confirmation")
    await card.get_by_role("button", name="Record e-mail confirmation").click()
    await expect(card).to_have_attribute("data-status", "awaiting_assessment")

    # Decide: approve under sight; without grounds the form says so and sends nothing (R7).
    await card.locator("[data-decide]").click()
    await page.select_option("#decision-control", "sight")
    await page.click("#dialog-ok")
    await expect(page.locator("#dialog-error")).to_have_text(
        "A controlled decision must state its grounds."
    )
    await page.get_by_role("checkbox", name="Threats").check()
    await page.fill("#decision-note", "Threats against a witness in 2025.")
    await faces.screen(face, "5-decision")
    await page.click("#dialog-ok")
    await expect(card).to_have_attribute("data-status", "approved")
    await expect(card).to_contain_text("Sight")
    contact_id = await card.get_attribute("data-contact")
    contact = await world.api.call("GET", f"/contacts/{contact_id}")
    assert contact["control"] == "sight"
    assert contact["decision"]["grounds"] == ["threats"]

    # R13: for defence counsel the decision form offers no control at all.
    await page.click("#btn-propose")
    await page.fill("#contact-name", "Advokat Holm")
    await page.fill("#contact-email", "holm@law.example.org")
    await page.select_option("#contact-category", "defence_counsel")
    await page.select_option("#contact-relation", "professional")
    await page.check("#contact-cleared")
    await page.click("#dialog-ok")
    lawyer = page.locator("article.contact", has_text="Advokat Holm")
    await lawyer.get_by_role("button", name="Record e-mail confirmation").click()
    await lawyer.locator("[data-decide]").click()
    await expect(page.locator("#decision-no-control")).to_contain_text("never watched")
    await expect(page.locator("#decision-control")).to_have_count(0)
    await faces.screen(face, "6-decision-privileged")
    await page.click("#dialog-ok")
    await expect(lawyer).to_have_attribute("data-status", "approved")
    await expect(lawyer).to_contain_text("Privileged: never monitored")

    # An appeal against the decision on Kari (R8), filed and upheld.
    await card.get_by_role("button", name="File an appeal").click()
    await page.get_by_label("What the appeal says").fill("We never threatened anyone.")
    await page.click("#dialog-ok")
    await expect(card.locator("[data-appeal]")).to_contain_text("Appeal pending")
    await faces.screen(face, "7-inmate-contacts")
    await card.get_by_role("button", name="Decide the appeal").click()
    await page.select_option("#appeal-result", "upheld")
    await page.click("#dialog-ok")
    await expect(card.locator("[data-appeal]")).to_contain_text("Decided: the decision stands")

    # Book a call with Kari in the visit room, starting a few minutes from now.
    start = utc_now() + timedelta(minutes=10)
    start = start.replace(second=0, microsecond=0)
    day = await facility_day(world, start)
    await go(page, f"book?inmate={inmate_id}")
    await page.select_option("#booking-contact", contact_id)
    await page.fill("#booking-day", day)
    await page.fill("#booking-start", await local_time(world, start))
    await page.fill("#booking-minutes", "30")
    await page.select_option("#booking-location-kind", "room")
    await page.select_option("#booking-location", "Visit room 1")
    await faces.screen(face, "8-new-booking")
    await page.click("#booking-submit")
    await expect(page.locator("#booking-created")).to_be_visible()
    bookings = await world.api.call("GET", f"/bookings?inmate_id={inmate_id}")
    [booking] = bookings["items"]
    assert booking["start"].startswith(start.strftime("%Y-%m-%dT%H:%M"))
    assert booking["location"] == "Visit room 1" and booking["control"] == "sight"
    await expect(page.locator("#booking-invite-status")).to_have_text(
        "Invite sent to kari@example.org."
    )
    await page.click("#booking-invite")  # a new link, asked for in so many words
    await expect(page.locator("#invite-new-lede")).to_contain_text("stops working")
    await page.click("#dialog-ok")
    await expect(page.locator("#invite-url")).to_have_value(
        re.compile(r"/visit/[A-Za-z0-9_-]{16,}$")
    )
    await faces.screen(face, "9-invite")
    await page.click("#dialog-ok")

    # The board: the booking today, in its room.
    await go(page, "board")
    row = page.locator(f"#today-bookings tr[data-booking='{booking['id']}']")
    await expect(row).to_contain_text("Kari Nordmann")
    await expect(row).to_contain_text("Room Visit room 1")
    await page.click("label[for=group-room]")
    await expect(page.locator("#today-bookings caption", has_text="Visit room 1")).to_be_visible()
    await faces.screen(face, "10-board")

    # The calendar: in the booked slot one of two tablets, the room and the one monitoring
    # officer are taken (R9).
    await go(page, f"calendar?view=day&day={day}")
    local = datetime.fromisoformat(booking["start"].replace("Z", "+00:00")).astimezone(
        ZoneInfo((await world.api.call("GET", "/facility"))["timezone"])
    )
    slot = f"{local.hour:02d}:{30 if local.minute >= 30 else 0:02d}"
    cells = page.locator(f"#capacity-grid tr[data-slot='{slot}'] td")
    await expect(cells.nth(0)).to_have_text("1 of 2")
    await expect(cells.nth(1)).to_have_text("Taken")
    await expect(cells.nth(2)).to_have_text("0 of 1")
    await expect(cells.nth(4)).to_contain_text("Ola Nordmann \u2013 Kari Nordmann")
    await expect(page.locator("#capacity-summary")).to_contain_text("2 tablets, 1 rooms, 1 staff")
    await faces.screen(face, "11-calendar-day")
    await go(page, f"calendar?view=week&day={day}")
    await expect(
        page.locator(f"#week-grid td[data-day='{day}'][data-hour='{local.hour:02d}:00']")
    ).to_contain_text("1 tablets")
    await faces.screen(face, "12-calendar-week")
    only_from(face, world)


async def test_a_remand_inmates_call_shows_until_the_police_clearance_is_recorded(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    inmate = await world.inmate("Per Hansen", remand=True)
    await world.approved_contact(inmate, name="Mari Hansen", email="mari@example.org")
    face = await log_in(faces, world, Role.VISIT_OFFICE, "console-remand")
    page = face.page

    # Booked without clearance: the console says the call cannot take place yet (R11).
    start = (utc_now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    await go(page, f"book?inmate={inmate}")
    await expect(page.locator("#clearance")).to_be_visible()
    await page.fill("#booking-day", await facility_day(world, start))
    await page.fill("#booking-start", await local_time(world, start))
    await page.fill("#booking-location", "B-12")
    await page.click("#booking-submit")
    await expect(page.locator("#booking-needs-clearance")).to_contain_text("cannot take place")
    await faces.screen(face, "13-booking-needs-clearance")
    [first] = (await world.api.call("GET", f"/bookings?inmate_id={inmate}"))["items"]
    assert first["police_clearance"] is None

    # Recorded afterwards, from the inmate's page.
    await go(page, f"inmate/{inmate}")
    row = page.locator(f"tr[data-booking='{first['id']}']")
    await expect(row).to_contain_text("No police clearance")
    await row.get_by_role("button", name="Record police clearance: Per Hansen").click()
    cleared = utc_now() - timedelta(minutes=5)
    await page.fill("#clearance-by", "Inspector Lie, Oslo police district")
    await page.fill("#clearance-day", await facility_day(world, cleared))
    await page.fill("#clearance-time", await local_time(world, cleared))
    await page.click("#dialog-ok")
    await expect(page.locator(f"tr[data-booking='{first['id']}']")).to_contain_text(
        "Inspector Lie, Oslo police district"
    )
    got = await world.api.call("GET", f"/bookings/{first['id']}")
    assert got["police_clearance"]["cleared_by"] == "Inspector Lie, Oslo police district"

    # Or given with the booking itself.
    later = start + timedelta(hours=1)
    await go(page, f"book?inmate={inmate}")
    await page.fill("#booking-day", await facility_day(world, later))
    await page.fill("#booking-start", await local_time(world, later))
    await page.fill("#booking-location", "B-12")
    await page.fill("#booking-cleared-by", "Inspector Lie, Oslo police district")
    await page.fill("#booking-cleared-day", await facility_day(world, cleared))
    await page.fill("#booking-cleared-time", await local_time(world, cleared))
    await page.click("#booking-submit")
    await expect(page.locator("#booking-created")).to_be_visible()
    await expect(page.locator("#booking-needs-clearance")).to_have_count(0)
    await faces.screen(face, "14-booking-with-clearance")
    items = (await world.api.call("GET", f"/bookings?inmate_id={inmate}"))["items"]
    assert all(b["police_clearance"] is not None for b in items) and len(items) == 2


# --- live calls ------------------------------------------------------------------------


async def test_an_officer_sets_up_a_call_and_ends_it_live_with_a_breach(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, name="Kari Nordmann")
    booking = await world.booking(inmate, contact, start_in=2, seconds=600)
    tablet = await world.tablet(inmate, "TAB-CONSOLE")
    invite = await world.api.call("POST", f"/bookings/{booking['id']}/invites", None)
    visitor = Visitor(world.deployment.visit_ws, invite["url"].rsplit("/", 1)[1])
    await visitor.join()
    try:
        face = await log_in(faces, world, Role.OFFICER, "console-officer-call")
        page = face.page
        row = page.locator(f"#today-bookings tr[data-booking='{booking['id']}']")
        set_up = row.locator(f"[data-set-up='{booking['id']}']")
        await expect(set_up).to_have_text("Set up on TAB-CONSOLE")
        # The officer may not book or issue invites: neither is offered.
        invite_buttons = row.get_by_role("button", name=re.compile("invite again|New link"))
        await expect(invite_buttons).to_have_count(0)
        await set_up.click()
        live_row = page.locator("#live-calls tr[data-call]")
        await expect(live_row).to_contain_text("Ready on the tablet", timeout=10000)

        # The inmate calls from the tablet; the board shows the call connected, time running.
        await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
        async with tablet.http.post(
            f"http://127.0.0.1:{tablet.ui_port}/api/dial", json={"booking_id": booking["id"]}
        ) as resp:
            assert resp.status == 202, await resp.text()
        await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media")
        await expect(live_row).to_contain_text("Connected", timeout=15000)
        left = live_row.locator(".time-left")
        first = await left.text_content()
        await page.wait_for_timeout(2200)
        assert await left.text_content() != first, "the time left counts down"
        await faces.screen(face, "15-board-live-call")

        # End it with a reason, as a breach (R14).
        await live_row.get_by_role("button", name="End call: Ola Nordmann").click()
        await page.click("#dialog-ok")
        await expect(page.locator("#dialog-error")).to_have_text(
            "Give the reason for ending the call."
        )
        await page.fill("#end-note", "Showed a weapon to the camera.")
        await page.check("#end-breach")
        await faces.screen(face, "16-end-call")
        await page.click("#dialog-ok")
        await wait_until(lambda: visitor.end is not None, timeout=10, what="end at the visitor")
        assert visitor.end is not None and visitor.end.reason.value == "breach"
        await expect(page.locator("#live-calls")).to_contain_text("No call is live right now.")
        got = await world.api.call("GET", f"/contacts/{contact}")
        assert got["breaches"] == 1
        assert got["breach_records"][0]["note"] == "Showed a weapon to the camera."
        await faces.screen(face, "17-board-after-end")

        # The breach shows where the contact is assessed later.
        await go(page, f"inmate/{inmate}")
        await expect(page.locator(f"article[data-contact='{contact}']")).to_contain_text(
            "1 breach recorded"
        )
        only_from(face, world)
    finally:
        await visitor.close()


ALLOWS = {
    "sight": "The decision allows sight: you receive the picture only. "
    "No sound is sent to this page.",
    "hearing": "The decision allows hearing: you receive the sound only. "
    "No picture is sent to this page.",
    "sight_and_hearing": "The decision allows sight and hearing: "
    "you receive both picture and sound.",
}
# Both legs (the tablet's and the visitor's), of the kinds the level allows (R6).
TRACKS = {
    "sight": "video video",
    "hearing": "audio audio",
    "sight_and_hearing": "audio audio video video",
}


@pytest.mark.parametrize("control", ["sight", "hearing", "sight_and_hearing"])
async def test_an_officer_monitors_a_controlled_call_with_only_the_media_allowed(
    world: World, faces: Faces, control: str
) -> None:
    assert world.api is not None
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, name="Kari Nordmann", control=control)
    booking = await world.booking(inmate, contact, start_in=2, seconds=600)
    tablet = await world.tablet(inmate, "TAB-MONITOR")
    invite = await world.api.call("POST", f"/bookings/{booking['id']}/invites", None)
    visitor = Visitor(world.deployment.visit_ws, invite["url"].rsplit("/", 1)[1])
    await visitor.join()
    try:
        await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
        async with tablet.http.post(
            f"http://127.0.0.1:{tablet.ui_port}/api/dial", json={"booking_id": booking["id"]}
        ) as resp:
            assert resp.status == 202, await resp.text()
        await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media")
        assert visitor.call is not None and visitor.call.route.value == "bridge"

        face = await log_in(faces, world, Role.OFFICER, f"console-monitor-{control}")
        page = face.page
        live_row = page.locator("#live-calls tr[data-call]")
        await live_row.get_by_role("link", name="Monitor").click()
        await expect(page.locator("#monitor-allowed")).to_have_text(ALLOWS[control])
        await page.click("#btn-monitor-start")
        settled = page.locator("body[data-monitor=connected], body[data-monitor=error]")
        await expect(settled).to_have_count(1, timeout=20000)
        status = await page.locator("#monitor-status").text_content()
        assert await page.locator("body").get_attribute("data-monitor") == "connected", status
        # Only the kinds the level allows arrive: a forbidden kind has no track at all.
        await expect(page.locator("body")).to_have_attribute(
            "data-monitor-tracks", TRACKS[control], timeout=10000
        )
        if "sight" in control:
            await until_true(
                page,
                "() => [...document.querySelectorAll('.monitor-video')]"
                ".filter(v => v.videoWidth > 0).length === 2",
                what="both legs' pictures",
            )
            await expect(page.locator("figcaption")).to_have_text(
                ["The inmate (tablet)", "The visitor"]
            )
        else:
            await expect(page.locator("#monitor-no-video")).to_be_visible()
            await expect(page.locator(".monitor-video")).to_have_count(0)
        if "hearing" in control:
            await expect(page.locator(".monitor-audio")).to_have_count(2)
            await expect(page.locator("#monitor-audio-note")).to_be_visible()
        else:
            await expect(page.locator("#monitor-no-audio")).to_be_visible()
            await expect(page.locator(".monitor-audio")).to_have_count(0)
        await faces.screen(face, "monitor")
        await page.click("#btn-monitor-stop")
        await expect(page.locator("#monitor-status")).to_have_text("Monitoring stopped.")
        only_from(face, world)
    finally:
        await visitor.close()


# --- tablets, facility, audit ------------------------------------------------------------


def enrol(world: World, serial: str) -> tuple[str, Path]:
    """A tablet enrolled for real (``kiosk admin device enrol-local``); its agent is not run."""
    out = world.deployment.root / f"tablet-{serial}"
    return world.deployment.enrol_tablet(serial, None, out), out


async def report_tamper(world: World, device_id: str, out: Path) -> None:
    """The tablet reports tampering over its own mutual-TLS link, as its USB guard does."""
    from kiosk.wire import messages as p
    from tests.harness import client_ssl

    ssl_ctx = client_ssl(out / "ca.pem", out / "device.pem", out / "device.key")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(
            f"wss://127.0.0.1:{world.deployment.device_port}/device/v1", ssl=ssl_ctx
        ) as ws:
            await ws.send_str(p.encode(p.HelloMessage(version=1, agent_version="test", calls=[])))
            await ws.send_str(
                p.encode(
                    p.TamperMessage(
                        kind="usb_device", details={"vendor": "0781", "product": "5567"}
                    )
                )
            )
            assert world.api is not None

            async def recorded() -> bool:
                assert world.api is not None
                events = await world.api.call("GET", f"/devices/{device_id}/tamper-events")
                return bool(events["items"])

            await wait_until(recorded, timeout=15, what="the tamper event")


async def test_an_admin_handles_tablets_the_facility_and_the_audit_chain(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    device_id, out = enrol(world, "TAB-TAMPER")
    # An API write after the command-line enrolment lets the server reread the audit
    # tail the command moved, before the tablet's own report is appended.
    inmate = await world.inmate("Ola Nordmann")
    await report_tamper(world, device_id, out)
    face = await log_in(faces, world, Role.ADMIN, "console-admin")
    page = face.page

    # Tablets: the tamper report, an assignment, a revocation.
    await go(page, "devices")
    row = page.locator(f"tr[data-device='{device_id}']")
    await row.get_by_role("button", name="Tamper events of TAB-TAMPER").click()
    await expect(page.locator("ul.tamper")).to_contain_text("usb_device")
    await expect(page.locator("ul.tamper")).to_contain_text("vendor=0781")
    await row.get_by_role("button", name="Assign TAB-TAMPER").click()
    await page.select_option("#assign-inmate", inmate)
    await page.click("#dialog-ok")
    await expect(page.locator(f"tr[data-device='{device_id}']")).to_contain_text("Ola Nordmann")
    await (
        page.locator(f"tr[data-device='{device_id}']")
        .get_by_role("button", name="Tamper events of TAB-TAMPER")
        .click()
    )
    await faces.screen(face, "18-devices")
    await (
        page.locator(f"tr[data-device='{device_id}']")
        .get_by_role("button", name="Revoke TAB-TAMPER")
        .click()
    )
    await faces.screen(face, "19-revoke")
    await page.click("#dialog-ok")
    await expect(page.locator(f"tr[data-device='{device_id}']")).to_contain_text("Revoked")
    assert (await world.api.call("GET", f"/devices/{device_id}"))["revoked"] is True

    # Facility: a setting changed, the visit office closed tomorrow (R15).
    await go(page, "facility")
    await page.fill("#facility-tablets", "6")
    await page.click("#facility-save")
    await expect(page.locator("#toast")).to_have_text("The settings are saved.")
    assert (await world.api.call("GET", "/facility"))["tablets"] == 6
    tomorrow = await facility_day(world, utc_now() + timedelta(days=1))
    await page.click("#btn-add-closure")
    await page.get_by_label("From day").fill(tomorrow)
    await page.get_by_label("To day").fill(tomorrow)
    await page.get_by_label("Note").fill("Staff training")
    await page.click("#dialog-ok")
    await expect(page.locator("ul.periods")).to_contain_text("Staff training")
    await faces.screen(face, "20-facility")
    await go(page, f"calendar?view=week&day={tomorrow}")
    await expect(page.locator("#week-grid td.closed").first).to_have_text("Closed")
    await faces.screen(face, "21-calendar-week-closed")

    # Staff: a new account, whose owner gets a one-time link to set a password (issue 16),
    # then its role changed (the API ends its sessions).
    await go(page, "staff")
    await page.click("#btn-add-staff")
    await page.fill("#staff-username", "nightshift")
    await page.fill("#staff-name", "Night Shift")
    await page.select_option("#staff-role", "officer")
    await page.click("#dialog-ok")
    await expect(page.locator("#staff-link-url")).to_have_value(
        re.compile(r"/staff/set-password/[A-Za-z0-9_-]{40,}$")
    )
    await page.click("#dialog-ok")
    row = page.locator("#staff-table tr", has_text="nightshift")
    await expect(row).to_contain_text("Officer")
    await row.get_by_role("button", name="Change nightshift").click()
    await page.get_by_label("Role").select_option("visit_office")
    await page.click("#dialog-ok")
    await expect(page.locator("#staff-table tr", has_text="nightshift")).to_contain_text(
        "Visit office"
    )
    await faces.screen(face, "22-staff")
    accounts = (await world.api.call("GET", "/staff"))["items"]
    assert {a["username"]: a["role"] for a in accounts}["nightshift"] == "visit_office"

    # Audit: the entries, and the chain verified.
    await go(page, "audit")
    await expect(page.locator("#audit-table")).to_contain_text("device.revoked")
    await page.click("#btn-verify")
    await expect(page.locator("#verify-ok")).to_contain_text("The chain is intact")
    await faces.screen(face, "23-audit")
    only_from(face, world)


async def test_the_console_speaks_bokmaal(world: World, faces: Faces) -> None:
    face = await faces.open("console-nb", console_url(world), locale="nb-NO")
    page = face.page
    await expect(page.locator("#login-form h1")).to_have_text("Logg inn")
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await page.fill("#login-username", USERS[Role.VISIT_OFFICE])
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#nav a[data-path=board]")).to_have_text("I dag")
    await faces.screen(face, "nb-board")
    await page.click("#lang button[lang=en]")
    await expect(page.locator("#nav a[data-path=board]")).to_have_text("Today")


async def test_the_board_shows_the_calls_of_the_next_hours_across_midnight(
    world: World, faces: Faces
) -> None:
    """At 23:50 facility time, a call at 00:10 is on the officer's board: the board is the
    hours around now, not the calendar day. The console's own clock is set; the call is
    booked days ahead, so the server's clock need not move."""
    assert world.api is not None
    inmate = await world.inmate("Nils Natt")
    contact = await world.approved_contact(inmate, name="Nina Natt", email="nina@example.org")
    zone = ZoneInfo((await world.api.call("GET", "/facility"))["timezone"])
    day = (utc_now().astimezone(zone) + timedelta(days=3)).date()
    start = datetime.combine(day, time(0, 10), zone)
    booking = await world.api.call(
        "POST",
        "/bookings",
        {
            "inmate_id": inmate,
            "contact_id": contact,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "location_kind": "cell",
            "location": "C-3",
            "initiation": "staff",
        },
        expect=201,
    )
    face = await log_in(faces, world, Role.OFFICER, "console-board-midnight")
    page = face.page
    await page.clock.set_fixed_time(start - timedelta(minutes=20))  # 23:50 the evening before
    await page.reload()
    await go(page, "board")
    row = page.locator(f"#today-bookings tr[data-booking='{booking['id']}']")
    await expect(row).to_contain_text("Nina Natt", timeout=30000)
    await expect(row).to_contain_text("00:10")
    only_from(face, world)
