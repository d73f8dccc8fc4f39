"""E-mail to contacts: R3 confirmation, R4 receipt, the invite, R16 notices (issues 4, 12);
to staff: their set-password link (issue 16).

Each event composes its mail and puts it in the outbox **in the transaction
of the change that caused it** (the caller's connection): the mail exists
exactly when the change does, and the outbox's worker (``outbox.py``) sends it
once the change is committed, however long the mail server is away. The
staff API queues them through ``Work.mail`` (kiosk/signalling/api/work.py),
which wakes the worker after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Booking, Contact, Facility
from kiosk.signalling.context import ServerContext
from kiosk.signalling.mail.compose import Values, compose, control_text, date_text, local
from kiosk.signalling.web import confirm
from kiosk.store import outbox
from kiosk.store.contacts import get_contact
from kiosk.store.facility import get_facility
from kiosk.store.ids import new_id
from kiosk.store.staff import StaffRecord


def public_base(ctx: ServerContext, request: web.Request | None) -> str:
    """Where visitors reach this server: ``server.public_url``, else the request's own origin."""
    base = ctx.settings.server.public_url.rstrip("/")
    if base or request is None:
        return base
    return f"{request.scheme}://{request.host}"


async def _facility(conn: AsyncConnection) -> Facility:
    facility = await get_facility(conn)
    assert facility is not None
    return facility


async def _queue(
    ctx: ServerContext, conn: AsyncConnection, kind: str, message: EmailMessage
) -> None:
    await outbox.enqueue(conn, new_id(), kind, message.as_bytes(), ctx.clock())


async def contact_proposed(
    ctx: ServerContext, conn: AsyncConnection, contact: Contact, base_url: str
) -> None:
    """R3: a contact already cleared for visits confirms wish and address by link.

    A contact not yet cleared files the visit application instead (R4); the
    receipt goes out when staff record it (``application_recorded``).
    """
    if not contact.cleared_for_visits:
        return
    token = await confirm.issue_token(conn, contact.id, ctx.clock())
    facility = await _facility(conn)
    link = f"{base_url}/confirm/{token}"
    days = str(confirm.TOKEN_LIFETIME.days)
    message = compose(
        ctx.settings.mail, contact.email, "confirm",
        lambda _lang: {"link": link, "days": days},
        name=contact.name, facility=facility.name,
    )
    await _queue(ctx, conn, "confirm", message)


async def application_recorded(
    ctx: ServerContext, conn: AsyncConnection, contact: Contact
) -> None:
    """R4: a receipt of the visit application."""
    facility = await _facility(conn)
    message = compose(
        ctx.settings.mail, contact.email, "receipt", lambda _lang: {},
        name=contact.name, facility=facility.name,
    )
    await _queue(ctx, conn, "receipt", message)


def _window_values(
    booking: Booking, facility: Facility, extra: Mapping[str, str] | None = None
) -> Values:
    start, end = local(booking.start, facility), local(booking.end, facility)

    def values(language: str) -> dict[str, str]:
        return {"date": date_text(start, language), "start": start.strftime("%H:%M"),
                "end": end.strftime("%H:%M"), **(extra or {})}

    return values


async def invite_issued(
    ctx: ServerContext, conn: AsyncConnection, booking: Booking, url: str, valid_from: datetime
) -> None:
    """The visitor's link and window, and the control stated plainly."""
    contact = await get_contact(conn, booking.contact_id)
    if contact is None or not contact.email:
        return
    facility = await _facility(conn)
    opens = local(valid_from, facility).strftime("%H:%M")
    window = _window_values(booking, facility, {"link": url, "valid_from": opens})

    def values(language: str) -> dict[str, str]:
        return {**window(language),
                "control": control_text(contact.category, contact.control, language)}

    message = compose(
        ctx.settings.mail, contact.email, "invite", values,
        name=contact.name, facility=facility.name,
    )
    await _queue(ctx, conn, "invite", message)


async def bookings_stopped(
    ctx: ServerContext, conn: AsyncConnection, bookings: Iterable[Booking], kind: str
) -> None:
    """R16: the people affected are told; ``kind`` is ``held`` or ``cancelled``."""
    if kind not in ("held", "cancelled"):
        raise ValueError(kind)
    facility: Facility | None = None
    for booking in bookings:
        if booking.end <= ctx.clock() - timedelta(minutes=1):
            continue
        contact = await get_contact(conn, booking.contact_id)
        if contact is None:
            continue
        facility = facility or await _facility(conn)
        message = compose(
            ctx.settings.mail, contact.email, kind, _window_values(booking, facility),
            name=contact.name, facility=facility.name,
        )
        await _queue(ctx, conn, kind, message)


async def staff_password_link(
    ctx: ServerContext, conn: AsyncConnection, staff: StaffRecord, url: str, until: datetime
) -> None:
    """Issue 16: a staff member's one-time link to set their own password."""
    facility = await get_facility(conn)  # none yet on a new installation: no name then
    ends = until.strftime("%Y-%m-%d %H:%M")
    message = compose(
        ctx.settings.mail, staff.email, "staff_password",
        lambda _lang: {"link": url, "until": ends, "username": staff.username},
        name=staff.display_name, facility=facility.name if facility else "",
    )
    await _queue(ctx, conn, "staff_password", message)
