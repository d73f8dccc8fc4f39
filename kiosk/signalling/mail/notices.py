"""E-mail to contacts: R3 confirmation, R4 receipt, the invite, R16 notices (issue 4).

Mails are sent after the transaction that caused them has committed, in the
background, so that a slow or absent mail server never slows or fails a
staff request: the ``Outbox`` of the server process tries each mail a few
times and logs a failure by kind (never the address). ``MailSettings``
chooses the transport: ``smtp`` (aiosmtplib, optionally TLS or STARTTLS with
the system's trust store) or ``folder`` (one ``.eml`` file per mail; the
demo prints the links from there).

We do not know which language a contact reads, so every mail carries the
bokmål text first and the English text below it. The texts are in
``kiosk/signalling/web/texts/{nb,en}.json``, with the pages' texts.

The API modules call the event functions at the bottom (``contact_proposed``,
``application_recorded``, ``invite_issued``, ``bookings_stopped``) once
their transaction is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import ssl
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import aiosmtplib
from aiohttp import web

from kiosk.domain.model import Booking, Category, Contact, ControlLevel, Facility
from kiosk.runtime.config import MailSettings
from kiosk.runtime.logs import get_logger
from kiosk.signalling.context import ServerContext

log = get_logger(__name__)

TEXTS = Path(__file__).resolve().parent.parent / "web" / "texts"
LANGUAGES = ("nb", "en")
ATTEMPTS = 3
RETRY_DELAY = 2.0  # seconds, doubled after each failed attempt
SMTP_TIMEOUT = 20.0


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

# The placeholders of a mail in one language: values(language) -> {name: text}.
Values = Callable[[str], Mapping[str, str]]


class MailError(Exception):
    """A mail could not be handed to the mail server (or written to the folder)."""


@cache
def texts(language: str) -> Mapping[str, Any]:
    data: dict[str, Any] = json.loads((TEXTS / f"{language}.json").read_text(encoding="utf-8"))
    return data


def fill(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders, in one pass: a value (a name from a form) is never a template."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


# --- composing -------------------------------------------------------------------------


def local(at: datetime, facility: Facility) -> datetime:
    try:
        zone = ZoneInfo(facility.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("Europe/Oslo")
    return at.astimezone(zone)


def date_text(at: datetime, language: str) -> str:
    t = texts(language)
    return fill(
        t["date_format"],
        {"weekday": t["weekdays"][at.weekday()], "day": str(at.day),
         "month": t["months"][at.month - 1]},
    )


def control_text(category: Category, control: ControlLevel, language: str) -> str:
    if category.privileged:
        return str(texts(language)["control_privileged"])  # R13
    return str(texts(language)[f"control_{control.value}"])


def compose(
    settings: MailSettings,
    to: str,
    kind: str,
    values: Values,
    name: str = "",
    facility: str = "",
) -> EmailMessage:
    """One mail of ``kind`` (``confirm``, ``receipt``, ``invite``, ``held``, ``cancelled``).

    ``values(language)`` gives the placeholders in that language. The body
    is bokmål first, then English; the subject carries both.
    """
    parts: list[str] = []
    subjects: list[str] = []
    for language in LANGUAGES:
        t = texts(language)
        v = {"facility": facility, "name": name, **values(language)}
        subjects.append(fill(t[f"{kind}_subject"], v))
        block = [fill(t["greeting"], v) if name else "", fill(t[f"{kind}_body"], v),
                 fill(t["signature"], v), t["auto_note"]]
        parts.append("\n\n".join(b for b in block if b))
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = " / ".join(dict.fromkeys(subjects))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message["Content-Language"] = "nb, en"
    message["Auto-Submitted"] = "auto-generated"
    note = texts("nb")["other_language_note"]
    body = f"{note}\n\n" + "\n\n---\n\n".join(parts) + "\n"
    message.set_content(body, charset="utf-8")
    return message


# --- sending ---------------------------------------------------------------------------


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Mailer:
    """Hands one mail to the configured transport. Raises MailError on failure."""

    def __init__(self, settings: MailSettings) -> None:
        if settings.transport not in ("smtp", "folder"):
            raise ValueError(f"mail.transport must be smtp or folder, not {settings.transport!r}")
        if settings.transport == "folder" and settings.folder is None:
            raise ValueError("mail.transport folder needs mail.folder")
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        if self.settings.transport == "folder":
            await asyncio.to_thread(self._write, message)
            return
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=s.password or None,
                use_tls=s.use_tls,
                start_tls=s.starttls if not s.use_tls else False,
                tls_context=_tls_context() if (s.use_tls or s.starttls) else None,
                timeout=SMTP_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(type(exc).__name__) from exc

    def _write(self, message: EmailMessage) -> None:
        folder = self.settings.folder
        assert folder is not None
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        final = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = final.with_suffix(".part")
        # Mails carry links that are credentials: readable by the owner only.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes())
        partial.replace(final)


class Outbox:
    """Mails of one server process, sent in the background with a few retries."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def post(self, kind: str, message: EmailMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(kind, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, kind: str, message: EmailMessage) -> None:
        delay = RETRY_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.mailer.send(message)
            except MailError as exc:
                log.warning("mail not sent yet", kind=kind, attempt=attempt, error=str(exc))
                if attempt < ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
                continue
            self.sent += 1
            log.info("mail sent", kind=kind)
            return
        self.failed += 1
        log.error("mail could not be sent", kind=kind, attempts=ATTEMPTS)

    async def drain(self, within: float = 3.0) -> None:
        """Wait (a while) for the mails under way; at shutdown, then give up on the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=within)
        for task in pending:
            task.cancel()


_outboxes: weakref.WeakKeyDictionary[ServerContext, Outbox] = weakref.WeakKeyDictionary()


def outbox(ctx: ServerContext) -> Outbox:
    """The process's outbox (one per server context)."""
    box = _outboxes.get(ctx)
    if box is None:
        box = Outbox(Mailer(ctx.settings.mail))
        _outboxes[ctx] = box
    return box


def install(app: web.Application) -> None:
    """Let the mails under way finish when the server stops."""
    from kiosk.signalling.context import CONTEXT

    async def drain(app: web.Application) -> None:
        with contextlib.suppress(KeyError):
            box = _outboxes.get(app[CONTEXT])
            if box is not None:
                await box.drain()

    app.on_shutdown.append(drain)


def public_base(ctx: ServerContext, request: web.Request | None) -> str:
    """Where visitors reach this server: ``server.public_url``, else the request's own origin."""
    base = ctx.settings.server.public_url.rstrip("/")
    if base or request is None:
        return base
    return f"{request.scheme}://{request.host}"


# --- the events ------------------------------------------------------------------------
#
# Called after the request's transaction committed: a failure here is logged
# and never turns a done change into an error for the caller.

_Event = TypeVar("_Event", bound=Callable[..., Awaitable[None]])


def _never_raises(event: _Event) -> _Event:
    @functools.wraps(event)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            await event(*args, **kwargs)
        except Exception:
            log.exception("mail could not be prepared", event=event.__name__)

    return cast(_Event, guarded)



async def _facility(ctx: ServerContext) -> Facility:
    from kiosk.store.facility import get_facility

    async with ctx.engine.connect() as conn:
        facility = await get_facility(conn)
    assert facility is not None
    return facility


@_never_raises
async def contact_proposed(ctx: ServerContext, contact: Contact, base_url: str) -> None:
    """R3: a contact already cleared for visits confirms wish and address by link.

    A contact not yet cleared files the visit application instead (R4); the
    receipt goes out when staff record it (``application_recorded``).
    """
    if not contact.cleared_for_visits:
        return
    from kiosk.signalling.web import confirm
    from kiosk.store.db import write_transaction

    async with write_transaction(ctx.engine) as conn:
        token = await confirm.issue_token(conn, contact.id, ctx.clock())
    facility = await _facility(ctx)
    link = f"{base_url}/confirm/{token}"
    days = str(confirm.TOKEN_LIFETIME.days)
    message = compose(
        ctx.settings.mail, contact.email, "confirm",
        lambda _lang: {"link": link, "days": days},
        name=contact.name, facility=facility.name,
    )
    outbox(ctx).post("confirm", message)


@_never_raises
async def application_recorded(ctx: ServerContext, contact: Contact) -> None:
    """R4: a receipt of the visit application."""
    facility = await _facility(ctx)
    message = compose(
        ctx.settings.mail, contact.email, "receipt", lambda _lang: {},
        name=contact.name, facility=facility.name,
    )
    outbox(ctx).post("receipt", message)


def _window_values(
    booking: Booking, facility: Facility, extra: Mapping[str, str] | None = None
) -> Values:
    start, end = local(booking.start, facility), local(booking.end, facility)

    def values(language: str) -> dict[str, str]:
        return {"date": date_text(start, language), "start": start.strftime("%H:%M"),
                "end": end.strftime("%H:%M"), **(extra or {})}

    return values


@_never_raises
async def invite_issued(
    ctx: ServerContext, booking: Booking, url: str, valid_from: datetime
) -> None:
    """The visitor's link and window, and the control stated plainly."""
    from kiosk.store.contacts import get_contact

    async with ctx.engine.connect() as conn:
        contact = await get_contact(conn, booking.contact_id)
    if contact is None:
        return
    facility = await _facility(ctx)
    opens = local(valid_from, facility).strftime("%H:%M")
    window = _window_values(booking, facility, {"link": url, "valid_from": opens})

    def values(language: str) -> dict[str, str]:
        return {**window(language),
                "control": control_text(contact.category, contact.control, language)}

    message = compose(
        ctx.settings.mail, contact.email, "invite", values,
        name=contact.name, facility=facility.name,
    )
    outbox(ctx).post("invite", message)


@_never_raises
async def bookings_stopped(ctx: ServerContext, booking_ids: Iterable[str], kind: str) -> None:
    """R16: the people affected are told; ``kind`` is ``held`` or ``cancelled``."""
    if kind not in ("held", "cancelled"):
        raise ValueError(kind)
    from kiosk.store.bookings import get_booking
    from kiosk.store.contacts import get_contact

    ids = list(booking_ids)
    if not ids:
        return
    facility = await _facility(ctx)
    async with ctx.engine.connect() as conn:
        for booking_id in ids:
            booking = await get_booking(conn, booking_id)
            if booking is None or booking.end <= ctx.clock() - timedelta(minutes=1):
                continue
            contact = await get_contact(conn, booking.contact_id)
            if contact is None:
                continue
            message = compose(
                ctx.settings.mail, contact.email, kind, _window_values(booking, facility),
                name=contact.name, facility=facility.name,
            )
            outbox(ctx).post(kind, message)
