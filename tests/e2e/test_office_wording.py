"""Words staff read (issue 16, items 10 and 15), in a real browser.

Privilege is one phrase everywhere ("Privileged: never monitored"), also on
the decision line and in the calendar; the monitor page of a privileged call
offers nothing and says why (R13). A count reads as a count ("1 breach"),
the cancel dialog names the booking, an appeal's result is not read as the
appellant's.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from kiosk.domain.model import Role
from tests.e2e.conftest import Faces
from tests.e2e.office_support import add_staff, api_get, go, sign_in
from tests.harness import World

pytestmark = [pytest.mark.browser]

WORDS = {
    "en": {
        "privileged": "Privileged: never monitored",
        "breach": "1 breach recorded",
        "appeal": "Decided: the decision stands",
        "filed": "filed by the contact",
        "cancel": "Cancel",
        "never": "never watched or listened to",
    },
    "nb": {
        "privileged": "Privilegert: overvåkes aldri",
        "breach": "1 brudd registrert",
        "appeal": "Avgjort: vedtaket står",
        "filed": "fremmet av kontakten",
        "cancel": "Avlys",
        "never": "aldri sett eller hørt",
    },
}


async def world_ready(world: World) -> None:
    await add_staff(world)


@pytest.mark.parametrize("lang", ["en", "nb"])
async def test_privilege_counts_appeals_and_the_cancel_dialog_read_right(
    world: World, faces: Faces, lang: str
) -> None:
    assert world.api is not None
    api = world.api
    words = WORDS[lang]
    inmate = await world.inmate(f"Pia Ord{lang}")
    kari = await world.approved_contact(
        inmate, name=f"Kari Ord{lang}", email="kari.ord@example.org"
    )
    lawyer = await world.approved_contact(
        inmate, category="defence_counsel", relation="professional", name=f"Advokat Ord{lang}",
        email="advokat.ord@example.org",
    )  # fmt: skip
    tablet = await world.tablet(inmate, f"TAB-ORD-{lang}")

    # A breach (R14): a call set up with Kari, ended by staff as a breach.
    now = await world.booking(inmate, kari, start_in=2, seconds=600)
    call = await api.call(
        "POST", "/calls", {"booking_id": now["id"], "device_id": tablet.device_id}
    )
    await api.call("POST", f"/calls/{call['id']}/end", {"note": "Weapon.", "breach": True})
    assert (await api_get(world, f"/contacts/{kari}"))["breaches"] == 1
    # An appeal by Kari, decided: the decision stands (R8).
    appeal = await api.call(
        "POST", f"/contacts/{kari}/appeals", {"by": "contact", "text": "Unfair."}
    )
    await api.call("POST", f"/appeals/{appeal['id']}/decision", {"result": "upheld"})
    later = await world.booking(inmate, kari, start_in=2 * 86400, seconds=1800)
    # The lawyer's call, live on the tablet (R13).
    counsel = await world.booking(inmate, lawyer, start_in=2, seconds=600)
    privileged = await api.call(
        "POST", "/calls", {"booking_id": counsel["id"], "device_id": tablet.device_id}
    )

    face = await sign_in(faces, world, Role.OFFICER, "wording", lang)
    page = face.page
    await go(page, f"inmate/{inmate}")
    card = page.locator(f"article[data-contact='{kari}']")
    await expect(card).to_contain_text(words["breach"])
    await expect(card.locator("[data-appeal]")).to_contain_text(words["appeal"])
    await expect(card.locator("[data-appeal]")).to_contain_text(words["filed"])
    counsel_card = page.locator(f"article[data-contact='{lawyer}']")
    await expect(counsel_card.locator(".contact-decision")).to_contain_text(words["privileged"])
    await faces.screen(face, "inmate")

    # The calendar's list says the same word.
    zone = ZoneInfo((await api_get(world, "/facility"))["timezone"])
    day = datetime.fromisoformat(counsel["start"].replace("Z", "+00:00")).astimezone(zone).date()
    await go(page, f"calendar?view=day&day={day}")
    listed = page.locator(f"#calendar-bookings tr[data-booking='{counsel['id']}']")
    await expect(listed).to_contain_text(words["privileged"])

    # The monitor page of the privileged call offers nothing, and says why.
    await go(page, f"monitor/{privileged['id']}")
    await expect(page.locator("#monitor-nothing")).to_contain_text(words["never"])
    await expect(page.locator("#btn-monitor-start")).to_have_count(0)
    await faces.screen(face, "monitor-privileged")
    await api.call("POST", f"/calls/{privileged['id']}/end", {"note": "Test over."})
    await face.context.close()
    faces.opened.remove(face)

    # The visit office's cancel dialog names the booking.
    face = await sign_in(faces, world, Role.VISIT_OFFICE, "wording-cancel", lang)
    page = face.page
    await go(page, f"inmate/{inmate}")
    row = page.locator(f"tr[data-booking='{later['id']}']")
    await row.get_by_role("button", name=words["cancel"], exact=True).click()
    await expect(page.locator("#cancel-what")).to_contain_text(f"Kari Ord{lang}")
    await expect(page.locator("#cancel-what")).to_contain_text(f"Pia Ord{lang}")
    await faces.screen(face, "cancel-dialog")
    await page.click("#dialog-cancel")

    for size in ("tablet", "phone"):  # the inmate's page at the other sizes, checked by axe
        other = await sign_in(faces, world, Role.VISIT_OFFICE, "wording", lang, size)
        await go(other.page, f"inmate/{inmate}")
        await expect(other.page.locator(f"article[data-contact='{lawyer}']")).to_be_visible()
        await faces.screen(other, "inmate")
