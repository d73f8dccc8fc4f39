"""Issue 16 in a browser: a new colleague sets their password by the one-time link, and
changes it later in the console with the current one. Every screen is checked with axe-core.
"""

from __future__ import annotations

import secrets

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import DESKTOP, PHONE, Faces
from tests.harness import World

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST = "my very own passphrase"
SECOND = "an even better passphrase"


async def test_a_new_colleague_sets_and_later_changes_their_own_password(
    world: World, faces: Faces
) -> None:
    assert world.api is not None
    username = f"vakt-{secrets.token_hex(3)}"
    staff = await world.api.call(
        "POST", "/staff", {"username": username, "display_name": "Vera Vakt", "role": "officer"}
    )
    link = (await world.api.call("POST", f"/staff/{staff['id']}/password-link"))["url"]

    # The link's page: like the login, in bokmål or English, no script.
    face = await faces.open("set-password", link, viewport=PHONE, locale="en-GB")
    page = face.page
    await expect(page.locator("h1")).to_have_text("Set your password")
    await expect(page.get_by_label("Username")).to_have_value(username)
    await faces.screen(face, "1-form")
    await page.click("a[lang=nb]")
    await expect(page.locator("h1")).to_have_text("Velg passordet ditt")
    await faces.screen(face, "1-form-nb")
    await page.click("a[lang=en]")
    await page.get_by_label("New password", exact=True).fill(FIRST)
    await page.get_by_label("The new password again").fill(FIRST + "?")
    await page.click("#setpw-submit")
    await expect(page.locator("#setpw-error")).to_have_text("The two passwords are not the same.")
    await faces.screen(face, "2-mismatch")
    await page.get_by_label("New password", exact=True).fill(FIRST)
    await page.get_by_label("The new password again").fill(FIRST)
    await page.click("#setpw-submit")
    await expect(page.locator("h1")).to_have_text("Your password is set", timeout=30000)
    await faces.screen(face, "3-done")

    # Used once: the same link says so, with its code.
    await page.goto(link + "?lang=en")
    await expect(page.locator("h1")).to_have_text("The link does not work")
    await expect(page.locator("#setpw-reason")).to_contain_text("used already")
    await expect(page.locator("body")).to_have_attribute("data-reason", "password_link_used")
    await faces.screen(face, "4-used")
    assert face.origins() <= {world.web_url}, face.origins()
    assert not face.csp_violations, face.csp_violations

    # In the console: log in with it, change it (the current one is asked for).
    console = await faces.open(
        "own-password", f"{world.web_url}/console/", viewport=DESKTOP, locale="en-GB"
    )
    page = console.page
    await page.fill("#login-username", username)
    await page.fill("#login-password", FIRST)
    await page.click("#login-submit")
    await expect(page.locator("#btn-password")).to_have_text("Change password", timeout=30000)
    await page.click("#btn-password")
    await expect(page.locator("#dialog-h")).to_have_text("Change your password")
    await page.fill("#own-current", "not my password")
    await page.fill("#own-new", SECOND)
    await page.fill("#own-again", SECOND)
    await page.click("#dialog-ok")
    await expect(page.locator("#dialog-error")).to_have_text(
        "The current password is wrong.", timeout=30000
    )
    await faces.screen(console, "1-wrong-current")
    await page.fill("#own-current", FIRST)
    await page.click("#dialog-ok")
    await expect(page.locator("#toast")).to_have_text(
        "Your password is changed. Your other sessions have ended.", timeout=30000
    )
    await faces.screen(console, "2-changed")

    # Logged out, only the new password lets in.
    await page.click("#btn-logout")
    await page.fill("#login-username", username)
    await page.fill("#login-password", FIRST)
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).not_to_be_empty(timeout=30000)
    await page.fill("#login-password", SECOND)
    await page.click("#login-submit")
    await expect(page.locator("#btn-password")).to_be_visible(timeout=30000)
    assert console.origins() <= {world.web_url}, console.origins()
    assert not console.csp_violations, console.csp_violations
    entries = (await world.api.call("GET", "/audit?limit=1000"))["items"]
    mine = [e["action"] for e in entries if e["subjects"].get("staff") == staff["id"]]
    assert {"staff.password_link_issued", "staff.password_set", "staff.password_changed"} <= set(
        mine
    )
