"""A privileged call's receipt in a real browser (issue 18).

A lawyer in Chromium takes a call from the tablet agent and leaves it; the
visitor page offers "Download receipt", and the download is the receipt.
The static verification page, with the network switched off after it has
loaded, says "Verified" for it with the prison's published key and "Not
verified" for a copy with one entry changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import DESKTOP, PHONE, Faces, lawyer_booking
from tests.harness import World, run_kiosk, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_the_receipt_downloads_and_the_offline_page_verifies_it(
    world: World, faces: Faces, tmp_path: Path
) -> None:
    booking, url, tablet = await lawyer_booking(world, "TAB-RECEIPT-WEB")

    visitor = await faces.open("visitor-receipt", url, viewport=DESKTOP, locale="en-GB")
    page = visitor.page
    await expect(page.locator("#receipt")).to_be_hidden()
    await page.click("#btn-check")
    await expect(page.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await page.click("#btn-wait")
    await expect(page.locator("body")).to_have_attribute("data-screen", "waiting")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=30, what="window open")
    await tablet.dial(booking["id"])
    await expect(page.locator("#verify")).to_be_visible(timeout=40000)
    await page.click("#btn-hangup")
    await expect(page.locator("body")).to_have_attribute("data-screen", "end")

    link = page.locator("#receipt-link")
    await expect(link).to_be_visible(timeout=30000)
    await expect(link).to_have_text("Download receipt")
    await faces.screen(visitor, "7-lawyer-receipt")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    saved = tmp_path / "receipt.json"
    await download.save_as(saved)
    receipt = json.loads(saved.read_text())
    assert receipt["format"] == "kiosk-call-receipt/v1"
    actions = [json.loads(item["entry"])[3] for item in receipt["entries"]]
    assert actions[0] == "call.granted" and actions[-1] == "call.ended"

    # The invite link keeps offering it after the call.
    again = await faces.open("visitor-receipt-later", url, viewport=PHONE, locale="en-GB")
    await expect(again.page.locator("#receipt-link")).to_be_visible(timeout=15000)

    tampered = json.loads(saved.read_text())
    item = tampered["entries"][0]
    item["entry"] = item["entry"].replace('"p2p"', '"bridge"')
    tampered_path = tmp_path / "receipt-tampered.json"
    tampered_path.write_text(json.dumps(tampered))

    key = run_kiosk(["admin", "audit", "key", "--config", str(world.deployment.config)],
                    env=world.deployment.env()).stdout.strip()
    checker = await faces.open("verify-page", world.web_url + "/verify", viewport=DESKTOP,
                               locale="en-GB")
    cpage = checker.page
    await checker.context.set_offline(True)  # everything from here happens in the browser
    await cpage.fill("#key", key)
    await cpage.set_input_files("#receipt-file", str(saved))
    await cpage.click("#check")
    await expect(cpage.locator("#result")).to_have_attribute("data-verdict", "verified")
    await expect(cpage.locator("#verdict")).to_have_text("Verified")
    await expect(cpage.locator("#details")).to_contain_text(
        "This call was peer to peer; nobody was attached"
    )
    await faces.screen(checker, "1-verified")

    await cpage.set_input_files("#receipt-file", str(tampered_path))
    await cpage.click("#check")
    await expect(cpage.locator("#result")).to_have_attribute("data-verdict", "not-verified")
    await expect(cpage.locator("#verdict")).to_have_text("Not verified")
    seq = tampered["entries"][0]["seq"]
    await expect(cpage.locator("#details")).to_contain_text(
        f"entry {seq} is not in the log the checkpoint signed"
    )
    await faces.screen(checker, "2-not-verified")

    # The prison's PEM key (audit.pub) works the same; another key does not.
    pem = (world.deployment.data_dir / "pki" / "audit.pub").read_text()
    await cpage.fill("#key", pem)
    await cpage.set_input_files("#receipt-file", str(saved))
    await cpage.click("#check")
    await expect(cpage.locator("#result")).to_have_attribute("data-verdict", "verified")
    await cpage.fill("#key", (world.deployment.data_dir / "pki" / "grant.pub").read_text())
    await cpage.click("#check")
    await expect(cpage.locator("#result")).to_have_attribute("data-verdict", "not-verified")
    await expect(cpage.locator("#details")).to_contain_text("does not verify with the prison's key")
    assert not checker.csp_violations and not visitor.csp_violations
