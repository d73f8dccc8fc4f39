"""E-mail flows (issue 4 item 2) with a real SMTP server on loopback (aiosmtpd).

The server process is started with the operator's command and its
``[mail]`` settings pointing at the SMTP server; the tests follow the links
in the mails they receive, as a visitor would.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from kiosk.runtime.config import MailSettings
from kiosk.signalling.mail.compose import compose
from kiosk.signalling.mail.transport import Mailer
from tests.conftest import running_world
from tests.harness import World, free_port, iso, utc_now, wait_until

pytestmark = pytest.mark.slow

LINK = re.compile(r"(https?://\S+)")


class Inbox:
    """Every message the SMTP server accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parsed["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, subject_part: str) -> EmailMessage:
        def find() -> EmailMessage | None:
            for m in self.to(address):
                if subject_part in str(m["Subject"]):
                    return m
            return None

        found: EmailMessage = await wait_until(find, timeout=20, what=f"mail {subject_part!r}")
        return found


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def links(message: EmailMessage) -> list[str]:
    return LINK.findall(body(message))


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def world(tmp_path: Path, smtp: tuple[Inbox, int]) -> AsyncIterator[World]:
    _, port = smtp
    config = (
        f'\n[mail]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
        'sender = "besok@fengsel.example"\n'
    )
    async with running_world(tmp_path, config) as w:
        yield w


async def propose(world: World, inmate: str, email_address: str, cleared: bool) -> dict[str, Any]:
    assert world.api is not None
    contact: dict[str, Any] = await world.api.call(
        "POST",
        f"/inmates/{inmate}/contacts",
        {"name": "Kari Nordmann", "email": email_address, "category": "personal",
         "relation": "sibling", "cleared_for_visits": cleared},
    )
    return contact


async def test_r3_the_link_in_the_mail_confirms_wish_and_address(
    world: World, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    assert world.api is not None
    inmate = await world.inmate()
    contact = await propose(world, inmate, "kari@example.org", cleared=True)
    assert contact["status"] == "awaiting_confirmation"
    mail = await inbox.wait_for("kari@example.org", "Bekreft")
    assert mail["From"] == "besok@fengsel.example"
    text = body(mail)
    assert "Hei Kari Nordmann" in text and "Hello Kari Nordmann" in text  # bokmål and English
    [link] = set(links(mail))  # the same link in both languages
    assert link.startswith(world.web_url + "/confirm/")
    async with aiohttp.ClientSession() as http:
        # Opening the link (as a mail scanner would) changes nothing.
        async with http.get(link, headers={"Accept-Language": "en"}) as resp:
            page = await resp.text()
            assert resp.status == 200
            assert "kari@example.org" in page and "Confirm that you want video calls" in page
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        still = await world.api.call("GET", f"/contacts/{contact['id']}")
        assert still["status"] == "awaiting_confirmation"
        # Pressing the button confirms, through the same policy as the staff endpoint.
        async with http.post(link, data={"lang": "nb"}) as resp:
            assert resp.status == 200
            assert "Takk, du har bekreftet" in await resp.text()
        confirmed = await world.api.call("GET", f"/contacts/{contact['id']}")
        assert confirmed["status"] == "awaiting_assessment"
        assert confirmed["email_confirmed"] is True
        # The link works once.
        async with http.post(link) as resp:
            assert resp.status == 404
        # A made-up token is refused the same way and confirms nothing.
        async with http.post(world.web_url + "/confirm/" + "x" * 43) as resp:
            assert resp.status == 404
    audit = await world.api.call("GET", "/audit?after_seq=0&limit=500")
    actions = [(e["actor"], e["action"]) for e in audit["items"]]
    assert (f"visitor:{contact['id']}", "contact.email_confirmed") in actions


async def test_r4_an_application_gets_a_receipt_and_no_confirmation_link(
    world: World, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    assert world.api is not None
    inmate = await world.inmate()
    contact = await propose(world, inmate, "per@example.org", cleared=False)
    await world.api.call("POST", f"/contacts/{contact['id']}/application", None)
    receipt = await inbox.wait_for("per@example.org", "mottatt")
    assert "received your application" in body(receipt)
    assert not links(receipt)
    assert len(inbox.to("per@example.org")) == 1  # no R3 confirmation for an uncleared person


async def test_the_invite_mail_carries_the_link_and_the_window(
    world: World, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, email="liv@example.org")
    await world.booking(inmate, contact, start_in=3600, seconds=1800)  # mails the invite
    mail = await inbox.wait_for("liv@example.org", "Videosamtale")
    [url] = set(links(mail))  # the same link in both languages
    assert url.startswith(world.web_url + "/visit/")
    text = body(mail)
    assert "ikke kontrollert" in text and "not monitored" in text
    # The link in the mail opens the visitor page.
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        assert "/static/visitor/visitor.js" in await resp.text()


async def test_r16_a_restriction_and_a_cancellation_tell_the_contact(
    world: World, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, email="nils@example.org")
    held = await world.booking(inmate, contact, start_in=7200, seconds=1800)
    start = utc_now() + timedelta(hours=1)
    await world.api.call(
        "POST", "/facility/restrictions",
        {"start": iso(start), "end": iso(start + timedelta(hours=3)), "kind": "suspend",
         "note": "outbreak"},
        expect=201,
    )
    notice = await inbox.wait_for("nils@example.org", "satt på vent")
    assert "on hold" in body(notice)
    other = await world.booking(inmate, contact, start_in=6 * 3600, seconds=1800)
    await world.api.call("POST", f"/bookings/{other['id']}/cancel", None)
    cancelled = await inbox.wait_for("nils@example.org", "avlyst")
    assert "cancelled" in body(cancelled)
    assert held["id"] != other["id"]


async def test_the_folder_transport_writes_private_eml_files(tmp_path: Path) -> None:
    settings = MailSettings(transport="folder", folder=tmp_path / "mail")
    message = compose(settings, "a@example.org", "receipt", lambda _l: {}, name="A", facility="F")
    await Mailer(settings).send(message)
    [written] = list((tmp_path / "mail").glob("*.eml"))
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "a@example.org"


async def test_a_mail_server_that_is_down_never_fails_the_request(tmp_path: Path) -> None:
    w = World(tmp_path, extra_config=f'\n[mail]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    await w.start()
    try:
        inmate = await w.inmate()
        contact = await propose(w, inmate, "x@example.org", cleared=True)
        assert contact["status"] == "awaiting_confirmation"
        assert w.server is not None
        server = w.server
        # The sending failed (and will be tried again), and the server is still there.
        await wait_until(lambda: "mail not sent yet" in server.output(), what="a failed send")
        assert server.alive()
    finally:
        await w.close()
