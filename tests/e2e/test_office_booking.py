"""The booking form shows what a booking would meet, and a refusal where the eye is
(issue 16, item 7), in a real browser.

Before booking: the inmate's weekly quota left with the contact (R17) and the
tablets and monitoring staff free in the window (R9). A refused booking's
reason appears beside the Book button and takes focus.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from kiosk.domain.model import Role
from kiosk.domain.weeks import same_week
from tests.e2e.conftest import Faces
from tests.e2e.office_support import add_staff, api_get, go, sign_in
from tests.harness import World

pytestmark = [pytest.mark.browser]

TEXT = {
    "en": {
        "quota": "Quota this week: {left} of 60 minutes left.",
        "tablets": re.compile(r"Tablets free at this time: \d+ of 1000\."),
        "refused": "minutes left that week",
        "zone": "Times are Norwegian time.",
    },
    "nb": {
        "quota": "Kvote denne uken: {left} av 60 minutter igjen.",
        "tablets": re.compile(r"Ledige nettbrett på dette tidspunktet: \d+ av 1000\."),
        "refused": "Ukekvoten for samtaler er brukt opp.",
        "zone": "Tidene er norsk tid.",
    },
}


async def world_ready(world: World) -> None:
    await add_staff(world)


def local(at: datetime, zone: str) -> tuple[str, str]:
    there = at.astimezone(ZoneInfo(zone))
    return there.strftime("%Y-%m-%d"), there.strftime("%H:%M")


@pytest.mark.parametrize("lang", ["en", "nb"])
@pytest.mark.parametrize("size", ["desktop", "tablet", "phone"])
async def test_the_form_shows_quota_and_capacity_and_a_refusal_beside_the_button(
    world: World, faces: Faces, lang: str, size: str
) -> None:
    assert world.api is not None
    await world.api.call("PATCH", "/facility", {"weekly_quota_minutes": 60})
    inmate = await world.inmate(f"Berit Bok{lang}{size}")
    contact = await world.approved_contact(inmate, name=f"Kari Bok{lang}{size}")
    booked = await world.booking(inmate, contact, start_in=3 * 3600, seconds=40 * 60)
    first = datetime.fromisoformat(booked["start"].replace("Z", "+00:00"))
    start = (first + timedelta(minutes=60)).replace(second=0, microsecond=0)
    left = 20 if same_week(first, start) else 60  # R17: the week the window starts in
    zone = (await api_get(world, "/facility"))["timezone"]
    day, at = local(start, zone)

    face = await sign_in(faces, world, Role.VISIT_OFFICE, "booking", lang, size)
    page = face.page
    await go(page, f"book?inmate={inmate}")
    await expect(page.locator("main .lede")).to_contain_text(TEXT[lang]["zone"])
    await page.select_option("#booking-contact", contact)
    await page.fill("#booking-day", day)
    await page.fill("#booking-start", at)
    await page.fill("#booking-minutes", "30")
    await page.locator("#booking-minutes").dispatch_event("change")
    quota = page.locator("#outlook-quota")
    await expect(quota).to_have_text(TEXT[lang]["quota"].format(left=left))
    await expect(page.locator("#outlook-tablets")).to_have_text(TEXT[lang]["tablets"])
    await page.fill("#booking-location", "C-7")
    await faces.screen(face, "outlook")
    if left == 60:
        await page.fill("#booking-minutes", "61")  # past the quota in a fresh week

    # Refused (R17): the reason is beside the button, and has the focus.
    await page.click("#booking-submit")
    refusal = page.locator(".booking-actions #booking-error")
    await expect(refusal).to_be_visible()
    await expect(refusal).to_contain_text(TEXT[lang]["refused"])
    await expect(refusal).to_be_focused()
    await expect(page.locator("#booking-created")).to_have_count(0)
    box = await refusal.bounding_box()
    button = await page.locator("#booking-submit").bounding_box()
    assert box is not None and button is not None
    assert abs((box["y"] + box["height"]) - (button["y"] + button["height"])) < 200
    await faces.screen(face, "refused")

    # Within the quota it books, and the outlook shows what is left.
    await page.fill("#booking-minutes", str(min(left, 20)))
    await page.click("#booking-submit")
    await expect(page.locator("#booking-created")).to_be_visible()
    await expect(refusal).to_be_hidden()
    await expect(quota).to_have_text(TEXT[lang]["quota"].format(left=left - min(left, 20)))


INVITE_TEXT = {
    "en": {
        "sent": "Invite sent to {email}.",
        "not_sent": "No invite was sent: you chose not to send it by e-mail.",
        "resend": "Send invite again",
        "resent": "Invite sent again to {email}.",
    },
    "nb": {
        "sent": "Invitasjonen er sendt til {email}.",
        "not_sent": "Ingen invitasjon er sendt: du valgte å ikke sende den på e-post.",
        "resend": "Send invitasjonen på nytt",
        "resent": "Invitasjonen er sendt på nytt til {email}.",
    },
}


@pytest.mark.parametrize("lang", ["en", "nb"])
async def test_the_invite_goes_with_the_booking_unless_the_box_is_unticked(
    world: World, faces: Faces, lang: str
) -> None:
    """Issue 16 item 6: the tick box, checked by default, and the confirmation's words."""
    inmate = await world.inmate(f"Ivar Invite{lang}")
    email = f"invite-{lang}@example.org"
    contact = await world.approved_contact(inmate, name=f"Siv Invite{lang}", email=email)
    zone = (await api_get(world, "/facility"))["timezone"]
    start = (datetime.now(ZoneInfo(zone)) + timedelta(hours=5)).replace(second=0, microsecond=0)

    face = await sign_in(faces, world, Role.VISIT_OFFICE, "invite", lang)
    page = face.page
    await go(page, f"book?inmate={inmate}")
    await page.select_option("#booking-contact", contact)
    tick = page.locator("#booking-send-invite")
    await expect(tick).to_be_checked()
    for n, ticked in enumerate([True, False]):
        day, at = local(start + timedelta(hours=n), zone)
        await page.fill("#booking-day", day)
        await page.fill("#booking-start", at)
        await page.fill("#booking-minutes", "20")
        await page.fill("#booking-location", "C-9")
        await tick.set_checked(ticked)
        await page.click("#booking-submit")
        status = page.locator("#booking-created #booking-invite-status")
        resend = page.locator("#booking-created #booking-resend")
        if ticked:
            await expect(status).to_have_text(INVITE_TEXT[lang]["sent"].format(email=email))
            await expect(resend).to_have_text(INVITE_TEXT[lang]["resend"])
            await faces.screen(face, "invite-sent")
            await resend.click()
            await expect(page.locator("#toast")).to_have_text(
                INVITE_TEXT[lang]["resent"].format(email=email)
            )
        else:
            await expect(status).to_have_text(INVITE_TEXT[lang]["not_sent"])
            await expect(resend).to_have_count(0)  # nothing went: nothing to send again
            await expect(page.locator("#booking-created #booking-invite")).to_be_visible()
    bookings = await api_get(world, f"/bookings?inmate_id={inmate}")
    assert len(bookings["items"]) == 2
