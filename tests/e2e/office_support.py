"""What the browser tests of the visit office's screens share: staff of every role in a
module's world, logging in at a size and in a language, going to a screen."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect

from kiosk.domain.model import Role
from tests.e2e.conftest import DESKTOP, PHONE, TABLET, Face, Faces
from tests.harness import World

PASSWORD = "office-pass-12345"
USERS = {Role.OFFICER: "officer", Role.VISIT_OFFICE: "clerk", Role.ADMIN: "chief"}
NAMES = {Role.OFFICER: "Olav Officer", Role.VISIT_OFFICE: "Vera Visit", Role.ADMIN: "Anne Admin"}
SIZES = {"desktop": DESKTOP, "tablet": TABLET, "phone": PHONE}
LOCALES = {"en": "en-GB", "nb": "nb-NO"}


async def add_staff(world: World) -> None:
    """One account per role, added by the admin through the staff API."""
    assert world.api is not None
    for role, username in USERS.items():
        await world.api.add_staff(username, NAMES[role], role.value, PASSWORD)


async def sign_in(
    faces: Faces, world: World, role: Role, name: str, lang: str = "en", size: str = "desktop"
) -> Face:
    face = await faces.open(
        f"{name}-{lang}-{size}", f"{world.web_url}/console/", viewport=SIZES[size],
        locale=LOCALES[lang],
    )  # fmt: skip
    page = face.page
    await expect(page.locator("#login-form")).to_be_visible()
    await page.fill("#login-username", USERS[role])
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#nav a").first).to_be_visible()
    return face


async def go(page: Page, path: str) -> None:
    await page.evaluate("(path) => { location.hash = path; }", "#/" + path)
    await expect(page.locator("main h1")).to_be_visible()
    await page.wait_for_load_state("networkidle")


async def api_get(world: World, path: str) -> Any:
    assert world.api is not None
    return await world.api.call("GET", path)
