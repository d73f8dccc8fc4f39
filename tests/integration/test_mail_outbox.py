"""Mail is never lost (issue 12 item 11), on SQLite and PostgreSQL.

A real server process, a real SMTP server on loopback (aiosmtpd), and the
failures that lose mail when it is sent after the change, in memory: the
server SIGKILLed between the change and the send, and the mail server down
when the change is made. In both the mail arrives, once.

The outbox's timers are short here on purpose: ``timeout_seconds`` bounds
each SMTP exchange and so the lease of a claimed mail (a server killed while
sending leaves its mail to others for that long); the real values (20 s, and
retries from 30 s) are for a mail server on another machine.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from tests.harness import World, free_port, stays, wait_until
from tests.integration.conftest import ENGINES, _pg_url
from tests.integration.test_mail import Inbox, propose

pytestmark = pytest.mark.slow

QUICK_OUTBOX = "timeout_seconds = 2\nretry_seconds = 0.5\n"


class HeldInbox(Inbox):
    """An inbox that can hold the next mail transaction at MAIL FROM until released."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0  # MAIL FROM commands seen
        self.hold_at: int | None = None  # the MAIL FROM to hold
        self.release = threading.Event()

    def hold_next(self) -> int:
        self.release.clear()
        self.hold_at = self.started + 1
        return self.hold_at

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.started += 1
        if self.started == self.hold_at:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
        envelope.mail_from = address
        return "250 OK"


class Smtp:
    """A mail server on a fixed loopback port, up or down as the test says."""

    def __init__(self) -> None:
        self.inbox = HeldInbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        if self.controller is None:
            self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
            self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.inbox.release.set()
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module", params=ENGINES)
async def mail_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _postgres: Any
) -> AsyncIterator[tuple[World, Smtp]]:
    """One server per engine for the module, its mail going to ``Smtp``."""
    smtp = Smtp()
    config = (f'\n[mail]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\n'
              f'sender = "besok@fengsel.example"\n{QUICK_OUTBOX}')
    world = World(tmp_path_factory.mktemp("mail"), extra_config=config)
    database = None
    if request.param == "postgres":
        database = _postgres.migrated_database()
        world.deployment.database_url = _pg_url(database).render_as_string(hide_password=False)
    try:
        await world.start()
        yield world, smtp
    finally:
        smtp.stop()
        await world.close()
        if database is not None:
            _postgres.drop(database)


async def outbox_gauge(world: World, state: str) -> float:
    """``kiosk_mail_outbox{state=...}`` as the server's /metrics shows it (to loopback)."""
    async with aiohttp.ClientSession() as http, http.get(f"{world.web_url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(f'kiosk_mail_outbox{{state="{state}"}}'):
                return float(line.rsplit(" ", 1)[1])
    return -1.0


async def sent_once(world: World, inbox: Inbox, address: str, subject: str, sent: float) -> None:
    """The mail arrived, the outbox holds ``sent`` mails sent and none to send, and it
    stays one mail for as long as a retry would have taken to come."""
    await inbox.wait_for(address, subject)
    assert world.server is not None and world.server.alive()
    async def recorded() -> bool:
        return await outbox_gauge(world, "sent") == sent

    await wait_until(recorded, what="the mails recorded sent")
    assert await outbox_gauge(world, "pending") == 0 and await outbox_gauge(world, "dead") == 0

    def copies() -> int:
        return sum(subject in str(m["Subject"]) for m in inbox.to(address))

    await stays(lambda: copies() == 1, seconds=2, what="exactly one mail")


async def test_a_server_killed_between_the_change_and_the_send_sends_after_restart_once(
    mail_world: tuple[World, Smtp],
) -> None:
    world, smtp = mail_world
    inbox = smtp.inbox
    smtp.start()
    sent = await outbox_gauge(world, "sent")
    held = inbox.hold_next()
    inmate = await world.inmate()
    contact = await propose(world, inmate, "kari@example.org", cleared=True)
    assert contact["status"] == "awaiting_confirmation"  # the change is committed
    # The server is handing the mail over (the SMTP server holds it at MAIL FROM) ...
    await wait_until(lambda: inbox.started == held, what="the send under way")
    assert world.server is not None
    world.server.kill(signal.SIGKILL)  # ... and dies before the mail server has it.
    await wait_until(lambda: not world.server.alive(), what="the server gone")  # type: ignore[union-attr]
    inbox.release.set()
    assert inbox.to("kari@example.org") == []
    await world.start_server()
    await sent_once(world, inbox, "kari@example.org", "Bekreft", sent=sent + 1)


async def test_a_mail_server_that_is_down_gets_the_mail_later_once(
    mail_world: tuple[World, Smtp],
) -> None:
    world, smtp = mail_world
    inbox = smtp.inbox
    smtp.stop()  # the mail server is not there
    sent = await outbox_gauge(world, "sent")
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, email="liv@example.org")
    assert world.api is not None and world.server is not None
    server = world.server
    await world.booking(inmate, contact, start_in=3600, seconds=1800)  # mails the invite
    failed = server.output().count("mail not sent yet")
    await wait_until(lambda: server.output().count("mail not sent yet") >= failed + 3,
                     what="a mail tried and tried again")
    assert await outbox_gauge(world, "pending") >= 1
    smtp.start()
    # The contact's R3 confirmation (also waiting) and the invite.
    await sent_once(world, inbox, "liv@example.org", "Videosamtale", sent=sent + 2)
    [mail] = [m for m in inbox.to("liv@example.org") if "Videosamtale" in str(m["Subject"])]
    text = str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert f"{world.web_url}/visit/" in text
