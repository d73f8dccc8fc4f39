"""The outbox's worker: one per server process, sending what the store's outbox holds.

A mail is in the ``outbox`` table from the transaction of the change that
caused it (kiosk/store/outbox.py), so a server killed after the change still
sends it when it starts again. The worker claims one due mail at a time
(under a lease, so that several processes sharing PostgreSQL never send the
same one), hands it to the mail server and records the outcome: sent (the
message is cleared: its links are credentials), due again after a delay that
doubles each time, or dead after ``[mail] attempts`` tries or a permanent
refusal. Dead mails are counted in ``kiosk_mail_outbox{state="dead"}``, logged
with their id (never the address) and kept for ``kiosk admin mail retry``.

A mail is sent exactly once when the server dies anywhere before the mail
server has taken it. If it dies in the instant between the mail server's
"250 OK" and the record of it, the mail goes again after the lease, with the
same Message-ID, which mail systems use to tell a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from email.message import EmailMessage

from aiohttp import web

from kiosk.runtime.config import MailSettings
from kiosk.runtime.logs import get_logger
from kiosk.signalling.context import CONTEXT, ServerContext
from kiosk.signalling.mail.transport import Mailer, MailError
from kiosk.signalling.metrics import Metrics
from kiosk.store import outbox as store
from kiosk.store.db import write_transaction

log = get_logger(__name__)

POLL_SECONDS = 30.0  # mails other processes queued, and a wake-up that was missed
RETRY_CAP = 3600.0  # seconds: retries at least once an hour
STOP_WITHIN = 3.0  # seconds a send under way may finish in at shutdown


def retry_delay(settings: MailSettings, attempts: int) -> timedelta | None:
    """After ``attempts`` failed tries: how long until the next one, or None (it is dead)."""
    if attempts >= settings.attempts:
        return None
    return timedelta(seconds=min(settings.retry_seconds * 2 ** (attempts - 1), RETRY_CAP))


def send_within(settings: MailSettings) -> float:
    """The most one send may take: a few SMTP exchanges, each within the timeout."""
    return 3 * settings.timeout_seconds


def lease(settings: MailSettings) -> timedelta:
    """How long a claimed mail is left to its sender before another may take it."""
    return timedelta(seconds=send_within(settings) + settings.timeout_seconds)


class OutboxWorker:
    """Drains the outbox: woken after a commit that queued mail, and every POLL_SECONDS."""

    def __init__(
        self, ctx: ServerContext, mailer: Mailer | None = None, metrics: Metrics | None = None
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings.mail
        self.mailer = mailer if mailer is not None else Mailer(self.settings)
        self.metrics = metrics
        self.counts: dict[str, int] = {state: 0 for state in store.STATES}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mail outbox")

    async def stop(self) -> None:
        """Let a send under way finish (a while); a mail cut short goes after its lease."""
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is None:
            return
        _, pending = await asyncio.wait({task}, timeout=STOP_WITHIN)
        if pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                wait = await self.drain()
            except Exception:  # the database away for a moment: the mails wait in it
                log.exception("mail outbox could not be read")
                wait = POLL_SECONDS
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def drain(self) -> float:
        """Send every mail that is due; the seconds until the next one is."""
        engine, clock = self.ctx.engine, self.ctx.clock
        while not self._stopping:
            now = clock()
            async with write_transaction(engine) as conn:
                mail = await store.claim_next(conn, now, now + lease(self.settings))
            if mail is None:
                break
            await self._send(mail)
        async with engine.connect() as conn:
            due = await store.next_due(conn)
            self.counts = await store.counts(conn)
        if due is None:
            return POLL_SECONDS
        return min(max((due - clock()).total_seconds(), 0.0), POLL_SECONDS)

    async def _send(self, mail: store.OutboxMail) -> None:
        try:
            message = _parse(mail.message)
            await asyncio.wait_for(self.mailer.send(message), send_within(self.settings))
        except (MailError, TimeoutError, ValueError) as exc:
            await self._failed(mail, exc)
            return
        async with write_transaction(self.ctx.engine) as conn:
            await store.mark_sent(conn, mail.id, self.ctx.clock())
        log.info("mail sent", kind=mail.kind, mail_id=mail.id, attempt=mail.attempts)
        self._count("mails_sent")

    async def _failed(self, mail: store.OutboxMail, exc: Exception) -> None:
        error = str(exc) or type(exc).__name__
        permanent = isinstance(exc, ValueError) or (isinstance(exc, MailError) and exc.permanent)
        delay = None if permanent else retry_delay(self.settings, mail.attempts)
        now = self.ctx.clock()
        async with write_transaction(self.ctx.engine) as conn:
            await store.mark_failed(conn, mail.id, error, None if delay is None else now + delay)
        if delay is None:
            log.error("mail given up", kind=mail.kind, mail_id=mail.id,
                      attempts=mail.attempts, error=error)
            self._count("mails_dead")
        else:
            log.warning("mail not sent yet", kind=mail.kind, mail_id=mail.id,
                        attempt=mail.attempts, retry_in=delay.total_seconds(), error=error)
            self._count("mail_attempts_failed")

    def _count(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.count(name)

    def read_counts(self) -> Mapping[str, int]:
        return self.counts


def _parse(raw: bytes | None) -> EmailMessage:
    if not raw:
        raise ValueError("no message")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def install(app: web.Application, metrics: Metrics | None = None) -> None:
    """The process's worker: started with the server, drained a while at shutdown."""

    async def worker(app: web.Application) -> AsyncIterator[None]:
        ctx = app[CONTEXT]
        box = OutboxWorker(ctx, metrics=metrics)
        ctx.on_mail_queued.append(box.wake)
        if metrics is not None:
            metrics.bind_outbox(box.read_counts)
        box.start()
        try:
            yield
        finally:
            await box.stop()

    app.cleanup_ctx.append(worker)
