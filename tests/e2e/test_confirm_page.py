"""R3 in a browser: the confirmation link from the mail, the page, the button (issue 4).

The server writes its mails to a folder (the demo's transport); the test
takes the link from the mail file, as a person would click it.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import PHONE, Faces
from tests.harness import World, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def world_config(root: Path) -> str:
    return f'\n[mail]\ntransport = "folder"\nfolder = "{root / "mail"}"\n'


def mails(folder: Path) -> list[EmailMessage]:
    out = []
    for path in sorted(folder.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out.append(parsed)
    return out  # type: ignore[return-value]


async def test_a_visitor_confirms_by_the_link_in_the_mail(world: World, faces: Faces) -> None:
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.api.call(
        "POST", f"/inmates/{inmate}/contacts",
        {"name": "Kari Nordmann", "email": "kari@example.org", "category": "personal",
         "relation": "sibling", "cleared_for_visits": True},
    )
    folder = world.deployment.root / "mail"
    [mail] = await wait_until(lambda: mails(folder) if folder.exists() else [], timeout=20,
                              what="the confirmation mail")
    body = mail.get_body(("plain",))
    assert body is not None
    link = re.findall(r"(https?://\S+/confirm/\S+)", str(body.get_content()))[0]

    face = await faces.open("confirm", link, viewport=PHONE, locale="nb-NO")
    await expect(face.page.locator("h1")).to_have_text("Bekreft at du vil ha videosamtaler")
    await expect(face.page.locator("dd")).to_have_text("kari@example.org")
    await faces.screen(face, "1-ask")
    await face.page.click("a[lang=en]")
    await expect(face.page.locator("h1")).to_have_text("Confirm that you want video calls")
    await faces.screen(face, "1-ask-en")
    await face.page.click("button[type=submit]")
    await expect(face.page.locator("h1")).to_have_text("Thank you, you have confirmed")
    await faces.screen(face, "2-done")
    got = await world.api.call("GET", f"/contacts/{contact['id']}")
    assert got["email_confirmed"] is True and got["status"] == "awaiting_assessment"
    # Used once: the same link now says so.
    await face.page.goto(link)
    await expect(face.page.locator("h1")).to_have_text("Lenken virker ikke")
    await faces.screen(face, "3-used")
    assert face.origins() <= {world.web_url}, face.origins()
    assert not face.csp_violations, face.csp_violations
