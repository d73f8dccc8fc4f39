"""Issue 16 in real browsers: what inmates and families meet when calls do not go to plan.

The visitor's page and the tablet's kiosk page (the agent with synthetic media) in
Chromium, the officer's console beside them, all on the module's one world: a ring
nobody answered leaves the booking open (item 1); each side sees whether the other
is there (item 2); a call that will not take place says so, with the prison's
contact details (item 3); a controlled call that runs out ends as time up, and the
monitor page says so (item 4); a dropped call comes back (item 5); the
verification code is explained (item 17); the tablet shows the inmate's week
(item 18); and the in-call controls (item 16). Every screen is photographed into
``test-artifacts/screens/`` and checked with axe-core.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from kiosk.domain.model import Role
from kiosk.domain.weeks import same_week
from tests.e2e.conftest import DESKTOP, PHONE, TABLET, Face, Faces, lawyer_booking
from tests.e2e.page_wait import until_true
from tests.e2e.test_console import add_staff, go, log_in
from tests.harness import World, iso, utc_now, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OFFICE = {
    "visitor_phone": "+47 32 12 34 56",
    "visitor_email": "besok.romerike@example.org",
    "visitor_hours": "Mon-Fri 09:00-15:00",
}


async def world_ready(world: World) -> None:
    await add_staff(world)
    assert world.api is not None
    await world.api.call("PATCH", "/facility", OFFICE)


async def to_waiting_room(faces: Faces, name: str, url: str, **kw: Any) -> Face:
    face = await faces.open(name, url, **kw)
    page = face.page
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await page.click("#btn-wait")
    await expect(page.locator("body")).to_have_attribute("data-screen", "waiting")
    return face


async def suspend(world: World, start_in: timedelta, note: str) -> dict[str, Any]:
    """R16: calls suspended for half an hour from ``start_in``; the bookings it holds."""
    assert world.api is not None
    start = utc_now() + start_in
    body = {"start": iso(start), "end": iso(start + timedelta(minutes=30)), "kind": "suspend",
            "note": note}
    result: dict[str, Any] = await world.api.call(
        "POST", "/facility/restrictions", body, expect=201
    )
    return result


async def english(page: Page) -> None:
    await page.click(".lang-btn[data-lang=en]")
    await expect(page.locator("html")).to_have_attribute("lang", "en")


async def both_languages(faces: Faces, face: Face, screen: str) -> None:
    """Photograph (and axe-check) ``screen`` in bokmål and English."""
    await face.page.click(".lang-btn[data-lang=nb]")
    await expect(face.page.locator("html")).to_have_attribute("lang", "nb")
    await faces.screen(face, screen + "-nb")
    await english(face.page)
    await faces.screen(face, screen + "-en")


async def test_an_unanswered_ring_leaves_the_booking_open_and_each_side_sees_the_other(
    world: World, faces: Faces
) -> None:
    """Items 1 and 2: the family is late; the inmate cancels the ring and calls again once
    "Emma is waiting"; the officer's board shows her waiting, and the set-up is offered."""
    assert world.api is not None
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, name="Emma Hansen")
    booking = await world.booking(inmate, contact, start_in=3, seconds=600)
    tablet = await world.tablet(inmate, "TAB-OFF1")
    kiosk = await faces.open("off-kiosk", tablet.ui_url, viewport=TABLET, locale="en-GB")
    kpage = kiosk.page
    await english(kpage)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    row = kpage.locator(f"li[data-booking='{booking['id']}']")
    await expect(row.locator("button")).to_be_enabled(timeout=10000)
    await row.locator("button").click()
    await expect(kpage.locator("body")).to_have_attribute("data-phase", "connecting", timeout=20000)
    await kpage.click("#btn-cancel")

    # Item 1: nobody answered, so the booking is open; the tablet says so and offers a retry.
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "ended", timeout=15000)
    await expect(kpage.locator("#ended-again")).to_contain_text(
        "Nobody answered, so the booking is still open. You can call Emma Hansen again"
    )
    await expect(kpage.locator("#btn-call-again")).to_be_visible()
    await both_languages(faces, kiosk, "1-not-answered")
    got = await world.api.call("GET", f"/bookings/{booking['id']}")
    assert got["state"] == "booked"

    # Item 2: Emma comes to the waiting room: she sees the tablet is ready; the tablet and
    # the officer's board see her waiting.
    visitor = await to_waiting_room(faces, "off-visitor", await world.invite_url(booking["id"]),
                                    locale="en-GB")
    page = visitor.page
    await expect(page.locator("#waiting-tablet")).to_have_text(
        "The prison's tablet is switched on and ready."
    )
    await both_languages(faces, visitor, "2-waiting-tablet-ready")
    await page.set_viewport_size(PHONE)
    await faces.screen(visitor, "2-waiting-tablet-ready-phone")
    await page.set_viewport_size(DESKTOP)
    await kpage.click("#btn-back")
    await expect(row.locator(".waiting-now")).to_have_text("Emma Hansen is in the waiting room.",
                                                           timeout=15000)
    await both_languages(faces, kiosk, "2-visitor-waiting")

    console = await log_in(faces, world, Role.OFFICER, "off-board")
    await go(console.page, "board")
    board_row = console.page.locator(f"tr[data-booking='{booking['id']}']")
    await expect(board_row.locator("[data-waiting]")).to_have_text("Emma Hansen is waiting",
                                                                   timeout=15000)
    # Staff may set the call up again: the booking was not used up.
    await expect(board_row.locator(f"button[data-set-up='{booking['id']}']")).to_be_visible()
    await faces.screen(console, "2-board-waiting")

    # The inmate calls again and Emma answers: the same booking makes the call.
    await row.locator("button").click()
    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await page.click("#btn-hangup")
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "ended", timeout=15000)
    await expect(kpage.locator("#btn-call-again")).to_be_hidden()  # a call took place


async def test_a_call_that_will_not_take_place_says_so_with_the_prisons_contact_details(
    world: World, faces: Faces
) -> None:
    """Item 3: cancelled and held invites say so on the first page, before the camera
    check; a waiting room whose window closes with no call says so; each gives the visit
    office's phone, e-mail and opening hours (a facility setting)."""
    assert world.api is not None
    inmate = await world.inmate("Per Olsen")
    contact = await world.approved_contact(inmate, name="Nora Olsen")
    cancelled = await world.booking(inmate, contact, start_in=600, seconds=600)
    url = await world.invite_url(cancelled["id"])
    await world.api.call("POST", f"/bookings/{cancelled['id']}/cancel")
    face = await faces.open("off-cancelled", url, viewport=PHONE, locale="en-GB")
    page = face.page
    await expect(page.locator("body")).to_have_attribute("data-screen", "closed")
    await expect(page.locator("#closed-h")).to_have_text("This call will not take place")
    await expect(page.locator("#closed-text")).to_have_text(
        "The prison has cancelled this call. You do not need to wait."
    )
    await expect(page.locator("#closed-office [data-office=phone]")).to_have_text(
        OFFICE["visitor_phone"]
    )
    await expect(page.locator("#closed-office [data-office=email]")).to_have_text(
        OFFICE["visitor_email"]
    )
    await expect(page.locator("#closed-office [data-office=hours]")).to_have_text(
        OFFICE["visitor_hours"]
    )
    assert not await page.locator("#btn-check").is_visible()  # no camera check for nothing
    await both_languages(faces, face, "3-cancelled-phone")
    await page.set_viewport_size(TABLET)
    await faces.screen(face, "3-cancelled-tablet")

    # Held by a restriction (R16).
    held = await world.booking(inmate, contact, start_in=5 * 3600, seconds=600)
    held_url = await world.invite_url(held["id"])
    restriction = await suspend(world, timedelta(hours=5, minutes=-1), "Infection outbreak")
    assert held["id"] in restriction["held_bookings"]
    face = await faces.open("off-held", held_url, viewport=DESKTOP, locale="en-GB")
    await expect(face.page.locator("#closed-text")).to_contain_text("on hold")
    await both_languages(faces, face, "3-held")

    # The window closes while the visitor waits, with no tablet on line and no call.
    short = await world.booking(inmate, contact, start_in=1, seconds=25)
    face = await to_waiting_room(faces, "off-over", await world.invite_url(short["id"]),
                                 locale="en-GB")
    page = face.page
    await expect(page.locator("#waiting-tablet")).to_have_text(
        "The prison's tablet is not switched on yet."
    )
    await faces.screen(face, "3-waiting-no-tablet-en")
    await expect(page.locator("body")).to_have_attribute("data-screen", "closed", timeout=60000)
    await expect(page.locator("#closed-text")).to_have_text(
        "The booked time is over and no call came through. You do not need to wait any longer."
    )
    await expect(page.locator("#closed-office [data-office=phone]")).to_be_visible()
    await both_languages(faces, face, "3-window-over")



async def font_px(page: Page, selector: str) -> float:
    size: str = await page.evaluate(
        "(s) => getComputedStyle(document.querySelector(s)).fontSize", selector
    )
    return float(size.removesuffix("px"))


async def test_a_controlled_call_that_runs_out_ends_as_time_up_and_the_monitor_says_so(
    world: World, faces: Faces
) -> None:
    """Item 4: a bridged call ends on time as ``time_up`` on both sides and in the record
    (not ``bridge_failed``); the monitor page shows the end and has its own End call."""
    assert world.api is not None
    inmate = await world.inmate("Kim Berg")
    contact = await world.approved_contact(inmate, control="sight_and_hearing", name="Siv Berg")
    console = await log_in(faces, world, Role.OFFICER, "off-monitor")  # before the clock runs
    tablet = await world.tablet(inmate, "TAB-OFF4")
    # Long enough to connect through the bridge on a busy machine, short enough to run out.
    booking = await world.booking(inmate, contact, start_in=3, seconds=90)
    url = await world.invite_url(booking["id"])
    visitor = await to_waiting_room(faces, "off-timeup", url, locale="en-GB")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    page = visitor.page
    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)

    live = await world.api.call("GET", "/calls?live=true")
    call = next(c for c in live["items"] if c["booking_id"] == booking["id"])
    await go(console.page, f"monitor/{call['id']}")
    mpage = console.page
    await expect(mpage.locator("#btn-monitor-end")).to_be_visible()
    await expect(mpage.locator("#btn-monitor-end")).to_have_text("End call")
    await faces.screen(console, "4-monitor-live")

    # The time runs out: the visitor reads "time is up", the monitor page says the call ended.
    await expect(page.locator("body")).to_have_attribute("data-screen", "end", timeout=150000)
    await expect(page.locator("#end-reason")).to_have_text("The booked time is up.")
    await expect(mpage.locator("#monitor-ended")).to_have_text(
        "The call has ended. Reason: Time was up.", timeout=15000
    )
    await expect(mpage.locator("#btn-monitor-end")).to_be_disabled()
    ended = await world.api.call("GET", f"/calls/{call['id']}")
    assert ended["end_reason"] == "time_up", ended
    await faces.screen(console, "4-monitor-ended")
    await both_languages(faces, visitor, "4-time-up")


async def test_the_monitor_page_ends_a_call(world: World, faces: Faces) -> None:
    """Item 4: the officer watching ends the call from the monitor page (R14)."""
    assert world.api is not None
    inmate = await world.inmate("Tor Lie")
    contact = await world.approved_contact(inmate, control="sight", name="Ane Lie")
    booking = await world.booking(inmate, contact, start_in=2, seconds=600)
    tablet = await world.tablet(inmate, "TAB-OFF4B")
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    assert (await tablet.dial(booking["id"]))[0] == 202
    assert visitor is not None
    live = await wait_until(
        lambda: _live_call(world, booking["id"]), timeout=30, what="the call is live"
    )
    call_id = live["id"]
    console = await log_in(faces, world, Role.OFFICER, "off-monitor-end")
    await go(console.page, f"monitor/{call_id}")
    await console.page.click("#btn-monitor-end")
    await console.page.fill("#end-note", "Count in the wing.")
    await console.page.click("#dialog-ok")
    await expect(console.page.locator("#monitor-ended")).to_have_text(
        "The call has ended. Reason: Ended by staff.", timeout=15000
    )
    ended = await world.api.call("GET", f"/calls/{call_id}")
    assert ended["end_reason"] == "ended_by_staff"


async def _live_call(world: World, booking_id: str) -> dict[str, Any] | None:
    assert world.api is not None
    live = await world.api.call("GET", "/calls?live=true")
    return next((c for c in live["items"] if c["booking_id"] == booking_id), None)


async def test_a_dropped_call_comes_back_and_a_visitor_who_left_can_return(
    world: World, faces: Faces
) -> None:
    """Item 5: Leave in the waiting room, then back; in the call a reload of either page
    brings back the same call with the same end."""
    assert world.api is not None
    inmate = await world.inmate("Ali Khan")
    contact = await world.approved_contact(inmate, name="Sara Khan")
    booking = await world.booking(inmate, contact, start_in=3, seconds=600)
    tablet = await world.tablet(inmate, "TAB-OFF5")
    visitor = await to_waiting_room(faces, "off-resume", await world.invite_url(booking["id"]),
                                    locale="en-GB")
    page = visitor.page
    await page.click("#btn-leave-waiting")
    await expect(page.locator("body")).to_have_attribute("data-screen", "end")
    await expect(page.locator("#btn-rejoin")).to_be_visible()
    await both_languages(faces, visitor, "5-left-can-return")
    await page.click("#btn-rejoin")
    await expect(page.locator("body")).to_have_attribute("data-screen", "waiting", timeout=20000)

    kiosk = await faces.open("off-resume-kiosk", tablet.ui_url, viewport=TABLET, locale="en-GB")
    kpage = kiosk.page
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await kpage.locator(f"li[data-booking='{booking['id']}'] button").click()
    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-phase", "in_call", timeout=30000)
    first = await _live_call(world, booking["id"])
    assert first is not None and first["state"] == "connected"

    # The visitor's page reloads: straight back into the same call, with the same end.
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=45000)
    await until_true(page, "document.querySelector('#remote-video').videoWidth > 0",
                     "the tablet's picture back at the visitor", timeout=30)
    again = await _live_call(world, booking["id"])
    assert again is not None
    assert (again["id"], again["not_after"]) == (first["id"], first["not_after"])
    await faces.screen(visitor, "5-back-in-the-call")

    # The tablet's page reloads: the call is still on.
    await kpage.reload()
    await expect(kpage.locator("body")).to_have_attribute("data-screen", "call", timeout=15000)
    still = await _live_call(world, booking["id"])
    assert still is not None and still["id"] == first["id"]
    await page.click("#btn-hangup")
    await expect(page.locator("#btn-rejoin")).to_be_hidden()  # a call took place: used


async def test_the_verification_code_is_explained_and_the_lawyer_is_spoken_to(
    world: World, faces: Faces
) -> None:
    """Item 17: the invite speaks to defence counsel; the code is large and explained on
    both sides."""
    booking, url, tablet = await lawyer_booking(world, "TAB-OFF17")
    visitor = await faces.open("off-lawyer", url, viewport=DESKTOP, locale="en-GB")
    page = visitor.page
    await expect(page.locator("#intro-lead")).to_contain_text("as defence counsel")
    await expect(page.locator("#step-control")).to_contain_text("verification code")
    await both_languages(faces, visitor, "17-lawyer-intro")
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await page.click("#btn-wait")
    kiosk = await faces.open("off-lawyer-kiosk", tablet.ui_url, viewport=TABLET, locale="en-GB")
    await english(kiosk.page)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await kiosk.page.locator(f"li[data-booking='{booking['id']}'] button").click()
    help_text = "Read the six digits aloud to each other. If they differ, hang up"
    for face in (visitor, kiosk):
        await expect(face.page.locator("#verify")).to_be_visible(timeout=30000)
        await expect(face.page.locator("#verify")).to_contain_text(help_text)
        assert await font_px(face.page, "#verify-code") >= 30
    await both_languages(faces, visitor, "17-code")
    await both_languages(faces, kiosk, "17-code")
    await page.set_viewport_size(PHONE)
    await faces.screen(visitor, "17-code-phone")


async def test_the_tablet_shows_the_inmates_week(world: World, faces: Faces) -> None:
    """Item 18: the calls booked today and later, held ones with the reason (R16), and the
    call time left this week (R17)."""
    assert world.api is not None
    inmate = await world.inmate("Jon Dahl")
    mother = await world.approved_contact(inmate, name="Liv Dahl")
    lawyer = await world.approved_contact(
        inmate, category="defence_counsel", relation="professional", name="Advokat Moe",
        email="moe@example.org",
    )
    soon = await world.booking(inmate, mother, start_in=3600, seconds=1200)
    tomorrow = await world.booking(inmate, lawyer, start_in=26 * 3600, seconds=1800)
    held = await world.booking(inmate, mother, start_in=50 * 3600, seconds=600)
    restriction = await suspend(
        world, timedelta(hours=50, minutes=-5), "Infection outbreak in the unit"
    )
    assert restriction["held_bookings"] == [held["id"]]
    tablet = await world.tablet(inmate, "TAB-OFF18")
    kiosk = await faces.open("off-week", tablet.ui_url, viewport=TABLET, locale="en-GB")
    page = kiosk.page
    await english(page)
    items = page.locator("#week-list li")
    await expect(items).to_have_count(3, timeout=15000)
    ids = [await items.nth(i).get_attribute("data-booking") for i in range(3)]
    assert ids == [soon["id"], tomorrow["id"], held["id"]]
    await expect(items.nth(1)).to_contain_text("Advokat Moe · Defence counsel")
    held_item = page.locator(f"#week-list li[data-booking='{held['id']}']")
    await expect(held_item).to_have_attribute("data-held", "true")
    await expect(held_item.locator(".week-held")).to_have_text(
        "On hold: Infection outbreak in the unit"
    )
    # R17: personal calls of this ISO week count (the lawyer's never do).
    facility = await world.api.call("GET", "/facility")
    quota = facility["weekly_quota_minutes"]
    used = sum(
        minutes for at, minutes in ((soon["start"], 20), (held["start"], 10))
        if same_week(datetime.fromisoformat(at), utc_now())
    )
    await expect(page.locator("#quota")).to_have_text(
        f"Call time left this week: {max(0, quota - used)} of {quota} minutes."
    )
    await both_languages(faces, kiosk, "18-week")
    await page.set_viewport_size(PHONE)
    await faces.screen(kiosk, "18-week-phone")


async def test_the_visitor_mutes_and_turns_the_camera_off_and_the_tablet_says_so(
    world: World, faces: Faces
) -> None:
    """Item 16: mute and camera off on the visitor's page; the track is off (silence and
    black, not a frozen frame) and the tablet says so in words."""
    inmate = await world.inmate("Eva Lund")
    contact = await world.approved_contact(inmate, name="Mia Lund")
    tablet = await world.tablet(inmate, "TAB-OFF16")
    booking = await world.booking(inmate, contact, start_in=3, seconds=600)
    visitor = await to_waiting_room(faces, "off-controls", await world.invite_url(booking["id"]),
                                    viewport=PHONE, locale="en-GB")
    page = visitor.page
    kiosk = await faces.open("off-controls-kiosk", tablet.ui_url, viewport=TABLET, locale="en-GB")
    kpage = kiosk.page
    await english(kpage)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await kpage.locator(f"li[data-booking='{booking['id']}'] button").click()
    await expect(page.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-phase", "in_call", timeout=30000)

    await page.click("#btn-mute")
    await expect(page.locator("#btn-mute")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#btn-mute")).to_have_text("Unmute")
    assert await page.evaluate(
        "() => window.kioskVisitor.stream().getAudioTracks().every((t) => !t.enabled)"
    )
    await expect(kpage.locator("#remote-muted")).to_have_text("Their microphone is off.",
                                                              timeout=15000)
    await page.click("#btn-camera")
    await expect(page.locator("#btn-camera")).to_have_text("Turn camera on")
    assert await page.evaluate(
        "() => window.kioskVisitor.stream().getVideoTracks().every((t) => !t.enabled)"
    )
    await expect(kpage.locator("#remote-camera-off")).to_be_visible(timeout=15000)
    await expect(kpage.locator("#remote-camera-off")).to_have_text("Their camera is off.")
    await both_languages(faces, visitor, "16-muted-camera-off-phone")
    await both_languages(faces, kiosk, "16-visitor-muted")

    # On again: the tablet's notices go.
    await page.click("#btn-mute")
    await page.click("#btn-camera")
    await expect(kpage.locator("#remote-muted")).to_be_hidden(timeout=15000)
    await expect(kpage.locator("#remote-camera-off")).to_be_hidden()
    await page.set_viewport_size(DESKTOP)
    await faces.screen(visitor, "16-controls-desktop")
