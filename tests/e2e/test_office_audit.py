"""The audit trail reads like a log (issue 16, item 12), in a real browser.

Newest first; narrowed to an inmate (with their contacts', bookings' and
calls' entries), a staff member, an action family, a call; names beside ids
for a role that may read them; each entry's details in words (the grounds of
a decision, R7; the reason a call ended, R14).
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from kiosk.domain.model import Role
from tests.e2e.conftest import Faces
from tests.e2e.office_support import add_staff, api_get, go, sign_in
from tests.harness import World

pytestmark = [pytest.mark.browser]

WORDS = {
    "en": {"grounds": "Threats", "reason": "Ended by staff", "showing": "Showing entries about"},
    "nb": {
        "grounds": "Trusler", "reason": "Avsluttet av ansatte", "showing": "Viser oppføringer om"
    },
}


async def world_ready(world: World) -> None:
    await add_staff(world)


async def an_ended_call(world: World, surname: str, serial: str) -> dict[str, str]:
    """An inmate, a contact decided under sight on grounds of threats, and a call set up on
    the tablet and ended by staff."""
    assert world.api is not None
    inmate = await world.inmate(f"Lena {surname}")
    contact = await world.approved_contact(
        inmate, name=f"Kari {surname}", control="sight", email="kari.log@example.org"
    )
    booking = await world.booking(inmate, contact, start_in=2, seconds=600)
    tablet = await world.tablet(inmate, serial)
    call = await world.api.call(
        "POST", "/calls", {"booking_id": booking["id"], "device_id": tablet.device_id}
    )
    await world.api.call("POST", f"/calls/{call['id']}/end", {"note": "Count."})
    return {"inmate": inmate, "contact": contact, "call": call["id"]}


@pytest.mark.parametrize("lang", ["en", "nb"])
async def test_the_audit_trail_reads_newest_first_with_names_details_and_filters(
    world: World, faces: Faces, lang: str
) -> None:
    words = WORDS[lang]
    ids = await an_ended_call(world, f"Logg{lang.upper()}", f"TAB-LOG-{lang}")
    face = await sign_in(faces, world, Role.ADMIN, "audit", lang)
    page = face.page
    await go(page, "audit")

    # Newest first: the first row is the chain's last entry.
    rows = page.locator("#audit-table tbody tr")
    await expect(rows.first).to_be_visible()
    seqs = [int(s) for s in await rows.evaluate_all("rs => rs.map(r => r.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) > 5, seqs
    newest = (await api_get(world, "/audit?newest_first=true&limit=1"))["items"][0]["seq"]
    assert seqs[0] == newest

    # Only what is about the inmate: the decision on the contact, the booking, the call.
    await page.select_option("#audit-inmate", ids["inmate"])
    await page.click("#audit-apply")
    await expect(page.locator("#audit-filters")).to_contain_text(words["showing"])
    await expect(page.locator("#audit-filters")).to_contain_text(f"Lena Logg{lang.upper()}")
    actions = await rows.evaluate_all("rs => rs.map(r => r.dataset.action)")
    assert {"inmate.created", "contact.decided", "booking.created", "call.ended"} <= set(
        actions
    ), actions
    decided = rows.filter(has=page.locator("[data-kind=contact]")).and_(
        page.locator("tr[data-action='contact.decided']")
    )
    await expect(decided).to_contain_text(f"Kari Logg{lang.upper()}")  # the name beside the id
    await expect(decided.locator("td.details")).to_contain_text(words["grounds"])
    ended = page.locator("tr[data-action='call.ended']")
    await expect(ended.locator("td.details")).to_contain_text(words["reason"])
    await faces.screen(face, "inmate")

    # The staff member who acted is named, and is a filter of its own.
    staff = {s["id"]: s["display_name"] for s in (await api_get(world, "/staff"))["items"]}
    actor = decided.locator("td").nth(1).locator("a")
    shown = (await actor.text_content()) or ""
    assert any(shown.startswith(name + " ") for name in staff.values()), shown
    await actor.click()
    await expect(page.locator("#audit-filters")).to_contain_text(shown.split(" ")[0])
    await expect(rows.first).to_be_visible()
    actor_ids = await rows.evaluate_all(
        "rs => rs.map(r => r.querySelector('td:nth-of-type(2) a').title)"
    )
    assert len(set(actor_ids)) == 1 and actor_ids[0].startswith("staff:"), actor_ids

    # An action family, and one call.
    await go(page, "audit?action=call")
    await expect(page.locator("#audit-filters")).to_contain_text("call")
    actions = await rows.evaluate_all("rs => rs.map(r => r.dataset.action)")
    assert actions and all(a.startswith("call.") for a in actions), actions
    await go(page, f"audit?call={ids['call']}")
    await expect(page.locator("#audit-filters")).to_contain_text(ids["call"])
    await expect(rows.first).to_have_attribute("data-action", "call.ended")
    await expect(rows.locator("td.details").first).to_contain_text(words["reason"])
    await faces.screen(face, "call")


@pytest.mark.parametrize("size", ["tablet", "phone"])
async def test_the_audit_trail_reads_at_every_size(world: World, faces: Faces, size: str) -> None:
    for lang in ("en", "nb"):
        face = await sign_in(faces, world, Role.ADMIN, "audit", lang, size)
        await go(face.page, "audit?action=staff")
        await expect(face.page.locator("#audit-table tbody tr").first).to_be_visible()
        await faces.screen(face, "staff")


async def test_the_api_names_ids_only_for_a_role_that_may_read_them(world: World) -> None:
    ids = await an_ended_call(world, "Names", "TAB-LOG-NAMES")
    page = await api_get(world, f"/audit?newest_first=true&inmate={ids['inmate']}")
    assert page["names"][ids["inmate"]] == "Lena Names"
    assert page["names"][ids["contact"]] == "Kari Names"
    assert all(ids["inmate"] in (e["subjects"].get("inmate"), *e["subjects"].values())
               or e["subjects"].keys() & {"call", "booking", "contact", "appeal"}
               for e in page["items"])  # fmt: skip
