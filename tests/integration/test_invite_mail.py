"""Invites go out by themselves (issue 16 item 6), with a real SMTP server on loopback.

A booking mails its contact the invite unless the clerk says not to, and says
whether it went. Sending it again mails the same link, which keeps working at
the visitor's endpoint; a new link is a separate action that kills the old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from tests.harness import World, free_port, wait_until
from tests.integration.test_mail import Inbox, links

pytestmark = pytest.mark.slow

INVITE = "Videosamtale"  # in the invite's subject


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
async def mail_world(
    sink: tuple[Inbox, int], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    config = (f'\n[mail]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink[1]}\n'
              'sender = "besok@fengsel.example"\n')
    world = World(tmp_path_factory.mktemp("invites"), extra_config=config)
    try:
        await world.start()
        yield world
    finally:
        await world.close()


async def book(world: World, email: str, hours: int, **extra: Any) -> dict[str, Any]:
    """A booking ``hours`` from now: each test its own slot (R9: the tablets are few)."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, email=email)
    return await world.booking(inmate, contact, start_in=hours * 3600, seconds=1800, **extra)


def invites_to(inbox: Inbox, address: str) -> list[EmailMessage]:
    return [m for m in inbox.to(address) if INVITE in str(m["Subject"])]


def invite_link(message: EmailMessage) -> str:
    [url] = set(links(message))  # the same link in both languages
    return url


async def standing(url: str) -> str:
    """What the visitor's endpoint says of the link: ``ahead`` or ``not_found``."""
    async with aiohttp.ClientSession() as http, http.get(url + "/status") as resp:
        assert resp.status == 200
        return str((await resp.json())["state"])


async def audit_actions(world: World, booking_id: str) -> list[str]:
    assert world.api is not None
    audit = await world.api.call("GET", "/audit?after_seq=0&limit=1000")
    return [e["action"] for e in audit["items"] if e["subjects"].get("booking") == booking_id]


async def test_a_booking_mails_the_invite_and_says_so(
    mail_world: World, sink: tuple[Inbox, int]
) -> None:
    inbox, _ = sink
    booking = await book(mail_world, "ada@example.org", hours=1)
    assert booking["invite_sent"] is True
    assert booking["invite_sent_to"] == "ada@example.org"
    assert booking["invite_not_sent_reason"] is None
    mail = await inbox.wait_for("ada@example.org", INVITE)
    url = invite_link(mail)
    assert url.startswith(mail_world.web_url + "/visit/")
    assert await standing(url) == "ahead"  # the link works: the window opens later
    assert "invite.sent" in await audit_actions(mail_world, booking["id"])


async def test_an_unticked_booking_mails_no_invite(
    mail_world: World, sink: tuple[Inbox, int]
) -> None:
    inbox, _ = sink
    assert mail_world.api is not None
    booking = await book(mail_world, "bo@example.org", hours=2, send_invite=False)
    assert booking["invite_sent"] is False
    assert booking["invite_sent_to"] is None
    assert booking["invite_not_sent_reason"] == "not_requested"
    # There is nothing to send again ...
    refused = await mail_world.api.call(
        "POST", f"/bookings/{booking['id']}/invites/resend", None, expect=409
    )
    assert refused["error"]["code"] == "no_valid_invite"
    # ... until a link is made; its mail, queued after the booking, is the only invite.
    made = await mail_world.api.call("POST", f"/bookings/{booking['id']}/invites", None)
    mail = await inbox.wait_for("bo@example.org", INVITE)
    assert invite_link(mail) == made["url"]
    assert len(invites_to(inbox, "bo@example.org")) == 1
    assert "invite.sent" not in await audit_actions(mail_world, booking["id"])


async def test_sending_again_mails_the_same_link_which_still_works(
    mail_world: World, sink: tuple[Inbox, int]
) -> None:
    inbox, _ = sink
    assert mail_world.api is not None
    booking = await book(mail_world, "cy@example.org", hours=3)
    first = invite_link(await inbox.wait_for("cy@example.org", INVITE))
    again = await mail_world.api.call("POST", f"/bookings/{booking['id']}/invites/resend", None)
    assert again["invite_sent"] is True and again["invite_sent_to"] == "cy@example.org"
    assert "url" not in again  # the link goes to the contact only
    sent = await wait_for_count(inbox, "cy@example.org", 2)
    assert [invite_link(m) for m in sent] == [first, first]
    assert await standing(first) == "ahead"
    actions = await audit_actions(mail_world, booking["id"])
    assert "invite.sent" in actions and "invite.resent" in actions


async def test_a_new_link_kills_the_old_one(
    mail_world: World, sink: tuple[Inbox, int]
) -> None:
    inbox, _ = sink
    assert mail_world.api is not None
    booking = await book(mail_world, "di@example.org", hours=4)
    old = invite_link(await inbox.wait_for("di@example.org", INVITE))
    made = await mail_world.api.call("POST", f"/bookings/{booking['id']}/invites", None)
    new = made["url"]
    assert new != old and made["invite_sent"] is True
    sent = await wait_for_count(inbox, "di@example.org", 2)
    assert invite_link(sent[1]) == new
    assert await standing(old) == "not_found"
    assert await standing(new) == "ahead"
    # Sending again now sends the new link.
    await mail_world.api.call("POST", f"/bookings/{booking['id']}/invites/resend", None)
    sent = await wait_for_count(inbox, "di@example.org", 3)
    assert invite_link(sent[2]) == new
    assert "invite.issued" in await audit_actions(mail_world, booking["id"])


async def test_a_contact_without_an_address_gets_no_invite_and_is_told_why(
    mail_world: World, sink: tuple[Inbox, int]
) -> None:
    assert mail_world.api is not None
    inmate = await mail_world.inmate()
    contact = await mail_world.approved_contact(inmate, email="ed@example.org")
    # No API leaves a contact without an address (it is required); the database can.
    erase_address(mail_world.deployment.data_dir / "kiosk.sqlite3", contact)
    booking = await mail_world.booking(inmate, contact, start_in=5 * 3600, seconds=1800)
    assert booking["invite_sent"] is False
    assert booking["invite_not_sent_reason"] == "no_email"
    path = f"/bookings/{booking['id']}/invites"
    made = await mail_world.api.call("POST", path, None)
    assert made["invite_sent"] is False and made["invite_sent_to"] is None
    refused = await mail_world.api.call("POST", path + "/resend", None, expect=409)
    assert refused["error"]["code"] == "no_email"
    assert await standing(made["url"]) == "ahead"  # staff may hand the link on themselves


def erase_address(database: Path, contact_id: str) -> None:
    with sqlite3.connect(database) as db:
        db.execute("UPDATE contacts SET email = '' WHERE id = ?", (contact_id,))


async def wait_for_count(inbox: Inbox, address: str, n: int) -> list[EmailMessage]:
    await wait_until(lambda: len(invites_to(inbox, address)) >= n, timeout=20,
                     what=f"{n} invite mails")
    sent = invites_to(inbox, address)
    assert len(sent) == n
    return sent
