"""The verification code in real browsers (ARCHITECTURE.md principle 2, issue 5 item 4).

A lawyer call between a visitor in Chromium and the tablet agent: the
visitor's page and the tablet's kiosk page show the same code, computed by
each end from the DTLS fingerprints of its own connection. The page's code is
the same function as kiosk/wire/verification.py (checked on a pinned pair).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import DESKTOP, TABLET, Faces, lawyer_booking
from tests.harness import World, wait_until
from tests.unit.test_verification import KNOWN

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_lawyer_and_inmate_see_the_same_code(world: World, faces: Faces) -> None:
    booking, url, tablet = await lawyer_booking(world, "TAB-VERIFY")

    visitor = await faces.open("visitor-lawyer", url, viewport=DESKTOP, locale="en-GB")
    page = visitor.page
    # The page's function is the server's: the pinned pair gives the pinned code.
    pinned = await page.evaluate(
        "() => window.kioskVisitor.verificationCode("
        "Array(32).fill('AB').join(':'), Array(32).fill('01').join(':'))"
    )
    assert pinned == KNOWN
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await page.click("#btn-wait")
    await expect(page.locator("body")).to_have_attribute("data-screen", "waiting")
    await expect(page.locator("#waiting-control")).to_contain_text("never")

    kiosk = await faces.open("kiosk-lawyer", tablet.ui_url, viewport=TABLET, locale="en-GB")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    # The page is the camera once its loopback probe passed and it said so to the agent.
    await wait_until(lambda: _page_open(tablet), timeout=30, what="the page takes the media")
    button = kiosk.page.locator(f"li[data-booking='{booking['id']}'] button")
    await expect(button).to_be_enabled(timeout=10000)
    await button.click()

    await expect(page.locator("#verify")).to_be_visible(timeout=30000)
    await expect(kiosk.page.locator("#verify")).to_be_visible(timeout=30000)
    code = (await page.locator("#verify-code").text_content() or "").strip()
    assert len(code.replace(" ", "")) == 6 and code.replace(" ", "").isdigit()
    await expect(kiosk.page.locator("#verify-code")).to_have_text(code)
    # The kiosk page's own media goes through the agent; the code is the agent's DTLS.
    await expect(kiosk.page.locator("body")).to_have_attribute("data-media", "connected")
    state = await tablet.state()
    assert state["call"]["verification_code"] == code
    await faces.screen(visitor, "6-lawyer-call-code")
    await faces.screen(kiosk, "5-lawyer-call-code")


async def _page_open(tablet: Any) -> bool:
    state = await tablet.state()
    return bool(state["media"].get("page_open"))
