"""Capacity from reality (issue 16, item 13), in a real browser.

A call that took place and ended frees its slot (R9); the calendar says what
limits a slot (all tablets booked, no staff free to monitor a controlled
call); the tablets in service are shown beside the setting; a slot's time
starts a booking at that time (item 15).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from kiosk.domain.model import Role
from tests.e2e.conftest import Faces
from tests.e2e.office_support import add_staff, api_get, go, sign_in
from tests.harness import World, iso, utc_now, wait_until

# The facility's capacity is the point: a world of its own per test.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.fresh_world]

TEXT = {
    "en": {"in_service": "Tablets in service: 1.", "staff": "No staff free to monitor",
           "ended": "(ended)", "tablets": "All 2 tablets booked"},
    "nb": {"in_service": "Nettbrett i bruk: 1.", "staff": "Ingen ansatte ledige til å overvåke",
           "ended": "(avsluttet)", "tablets": "Alle 2 nettbrett er booket"},
}  # fmt: skip


async def world_ready(world: World) -> None:
    await add_staff(world)


def slot_of(at: datetime, zone: ZoneInfo) -> tuple[str, str]:
    local = at.astimezone(zone)
    return local.strftime("%Y-%m-%d"), f"{local.hour:02d}:{30 if local.minute >= 30 else 0:02d}"


async def test_an_ended_call_frees_its_slot_and_the_calendar_says_what_limits_a_slot(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    api = world.api
    await api.call("PATCH", "/facility", {"tablets": 2, "monitoring_staff": 1, "rooms": []})
    zone = ZoneInfo((await api_get(world, "/facility"))["timezone"])

    # A call that took place: connected, then ended by staff.
    inmate = await world.inmate("Siri Slot")
    contact = await world.approved_contact(inmate, name="Sara Slot")
    booking = await world.booking(inmate, contact, start_in=2, seconds=1200)
    tablet = await world.tablet(inmate, "TAB-SLOT")
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    async with tablet.http.post(
        f"http://127.0.0.1:{tablet.ui_port}/api/dial", json={"booking_id": booking["id"]}
    ) as resp:
        assert resp.status == 202, await resp.text()

    async def connected() -> str | None:
        calls = (await api_get(world, f"/calls?live=true&inmate_id={inmate}"))["items"]
        return next((c["id"] for c in calls if c["state"] == "connected"), None)

    call_id = await wait_until(connected, timeout=40, what="the call connected")
    await api.call("POST", f"/calls/{call_id}/end", {"note": "Done."})
    await wait_until(lambda: visitor.end is not None, timeout=15, what="the end at the visitor")
    assert (await api_get(world, f"/bookings/{booking['id']}"))["state"] == "used"

    # In a later week's slot: a controlled call takes the one monitoring officer, and two
    # calls take both tablets.
    watched = await world.approved_contact(inmate, name="Vera Vakt", control="sight")
    day = (utc_now().astimezone(zone) + timedelta(days=9)).date()
    noon = datetime.combine(day, time(12, 0), zone)
    for contact_id in (watched, contact):
        await api.call(
            "POST", "/bookings",
            {"inmate_id": inmate, "contact_id": contact_id, "start": iso(noon),
             "end": iso(noon + timedelta(minutes=30)), "location_kind": "cell",
             "location": "C-1", "initiation": "staff"},
            expect=201,
        )  # fmt: skip

    for lang in ("en", "nb"):
        face = await sign_in(faces, world, Role.VISIT_OFFICE, "capacity", lang)
        page = face.page
        words = TEXT[lang]
        today, slot = slot_of(datetime.fromisoformat(booking["start"].replace("Z", "+00:00")), zone)
        await go(page, f"calendar?view=day&day={today}")
        await expect(page.locator("#tablets-in-service")).to_have_text(words["in_service"])
        row = page.locator(f"#capacity-grid tr[data-slot='{slot}']")
        await expect(row.locator("td").nth(0)).to_have_text("2 of 2" if lang == "en" else "2 av 2")
        await expect(row.locator("td.slot-calls")).to_contain_text(words["ended"])
        await faces.screen(face, "ended-call")

        await go(page, f"calendar?view=day&day={day.isoformat()}")
        noon_row = page.locator("#capacity-grid tr[data-slot='12:00']")
        await expect(noon_row.locator("td.slot-limit")).to_contain_text(words["staff"])
        await expect(noon_row.locator("td.slot-limit")).to_contain_text(words["tablets"])
        await faces.screen(face, "limits")

        for size in ("tablet", "phone"):  # the same screen at the other sizes, checked by axe
            other = await sign_in(faces, world, Role.VISIT_OFFICE, "capacity", lang, size)
            await go(other.page, f"calendar?view=day&day={day.isoformat()}")
            await expect(other.page.locator("#capacity-grid tr[data-slot='12:00']")).to_be_visible()
            await faces.screen(other, "limits")

        # The slot's time starts a booking at that time (item 15).
        await page.locator("#capacity-grid tr[data-slot='11:30'] th a").click()
        await expect(page.locator("#booking-start")).to_have_value("11:30")
        await expect(page.locator("#booking-day")).to_have_value(day.isoformat())
