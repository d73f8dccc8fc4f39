"""The visit office's work queue (issue 16, item 11), in a real browser.

What waits for staff is on one page — contacts to confirm or decide (R3, R4),
appeals (R8), bookings of remand inmates without police clearance (R11) and
bookings held by a restriction (R16) — searchable by name or inmate id, with
the count in the navigation.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import expect

from kiosk.domain.model import Role
from tests.e2e.conftest import Faces
from tests.e2e.office_support import add_staff, api_get, go, sign_in
from tests.harness import World, iso, utc_now

pytestmark = [pytest.mark.browser]

KINDS = ("contact_confirmation", "contact_assessment", "appeal", "police_clearance", "held")
TITLES = {
    "en": ("Work queue", "Contacts awaiting a decision", "Appeals to decide"),
    "nb": ("Arbeidsliste", "Kontakter som venter på vedtak", "Klager som skal avgjøres"),
}
# Item 9: every screen says whose time it shows.
ZONE = {"en": "Times: Norwegian time", "nb": "Tider: norsk tid"}


async def world_ready(world: World) -> None:
    await add_staff(world)


async def waiting_for(world: World, surname: str) -> dict[str, str]:
    """One of each kind of work for the inmate ``Tor {surname}``: the ids, by kind."""
    assert world.api is not None
    api = world.api
    inmate = await world.inmate(f"Tor {surname}", remand=True)

    async def propose(name: str, cleared: bool) -> str:
        email = f"{name.split()[0].lower()}@example.org"
        body = {"name": name, "email": email, "category": "personal", "relation": "friend",
                "cleared_for_visits": cleared}  # fmt: skip
        return str((await api.call("POST", f"/inmates/{inmate}/contacts", body))["id"])

    unconfirmed = await propose(f"Una {surname}", True)  # R3: the e-mail is not confirmed yet
    undecided = await propose(f"Dag {surname}", False)  # R4: applied, not yet decided
    await api.call("POST", f"/contacts/{undecided}/application", None)
    appealed = await world.approved_contact(inmate, name=f"Ane {surname}", email="ane@example.org")
    appeal = await api.call(
        "POST", f"/contacts/{appealed}/appeals", {"by": "inmate", "text": "Please reconsider."}
    )
    # R11: booked without police clearance; R16: booked, then held by a suspension.
    uncleared = await world.booking(inmate, appealed, start_in=3 * 86400)
    held = await world.booking(inmate, appealed, start_in=20 * 86400, seconds=1800)
    start = utc_now() + timedelta(days=20) - timedelta(hours=1)
    restriction = await api.call(
        "POST", "/facility/restrictions",
        {"start": iso(start), "end": iso(start + timedelta(hours=3)), "kind": "suspend",
         "note": "Outbreak"},
    )  # fmt: skip
    assert held["id"] in restriction["held_bookings"]
    return {
        "inmate": inmate,
        "contact_confirmation": unconfirmed,
        "contact_assessment": undecided,
        "appeal": appeal["id"],
        "police_clearance": uncleared["id"],
        "held": held["id"],
    }


@pytest.mark.parametrize("lang", ["en", "nb"])
async def test_the_clerk_sees_what_waits_searches_it_and_the_count_is_in_the_navigation(
    world: World, faces: Faces, lang: str
) -> None:
    surname = f"Queue{lang.upper()}"
    ids = await waiting_for(world, surname)
    face = await sign_in(faces, world, Role.VISIT_OFFICE, "queue", lang)
    page = face.page
    title, assessment, appeals = TITLES[lang]

    await expect(page.locator("#zone-note")).to_have_text(ZONE[lang])

    # The navigation counts everything that waits.
    total = (await api_get(world, "/queue"))["total"]
    link = page.locator("#nav a[data-path=queue]")
    await expect(link).to_contain_text(title)
    await expect(link.locator(".count")).to_contain_text(str(total))

    await link.click()
    await expect(page.locator("main h1")).to_have_text(title)
    await page.fill("#queue-search", surname.lower())
    await page.press("#queue-search", "Enter")
    await expect(page.locator("#queue-total")).to_contain_text("5")
    for kind in KINDS:
        section = page.locator(f"#queue-{kind}")
        await expect(section.locator("li")).to_have_count(1)
        await expect(section.locator("li")).to_contain_text(f"Tor {surname}")
    await expect(page.locator("#queue-contact_assessment h2")).to_contain_text(assessment)
    await expect(page.locator("#queue-appeal h2")).to_contain_text(appeals)
    await expect(page.locator("#queue-contact_assessment li")).to_contain_text(f"Dag {surname}")
    await expect(page.locator("#queue-police_clearance li")).to_have_attribute(
        "data-booking", ids["police_clearance"]
    )
    await expect(page.locator("#queue-held li")).to_have_attribute("data-booking", ids["held"])
    await faces.screen(face, "search")

    # By the inmate's id, too; and each item leads to where it is dealt with.
    await go(page, f"queue?q={ids['inmate'][:8]}")
    await expect(page.locator("#queue-appeal li")).to_contain_text(f"Ane {surname}")
    await page.locator("#queue-appeal li a").click()
    await expect(page.locator("#inmate-h")).to_have_text(f"Tor {surname}")

    # Deciding the appeal takes it off the queue, and the count follows.
    assert world.api is not None
    await world.api.call("POST", f"/appeals/{ids['appeal']}/decision", {"result": "upheld"})
    await go(page, f"queue?q={surname}")
    await expect(page.locator("#queue-appeal li")).to_have_count(0)
    await expect(link.locator(".count")).to_contain_text(str(total - 1))


@pytest.mark.parametrize("size", ["tablet", "phone"])
async def test_the_work_queue_reads_at_every_size(world: World, faces: Faces, size: str) -> None:
    await waiting_for(world, f"Size{size}")
    for lang in ("en", "nb"):
        face = await sign_in(faces, world, Role.VISIT_OFFICE, "queue", lang, size)
        await go(face.page, f"queue?q=Size{size}")
        await expect(face.page.locator("#queue-held li")).to_have_count(1)
        await faces.screen(face, "search")


async def test_an_officer_is_not_offered_the_work_queue(world: World, faces: Faces) -> None:
    face = await sign_in(faces, world, Role.OFFICER, "queue-officer")
    await expect(face.page.locator("#nav a[data-path=board]")).to_be_visible()
    await expect(face.page.locator("#nav a[data-path=queue]")).to_have_count(0)
