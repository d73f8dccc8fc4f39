"""What a visitor's invite stands for now, before any camera check (issue 16).

``GET /visit/{token}/status`` answers the visitor page's first question: can
this call still take place? A cancelled, held or used booking, or a window
that has closed, is said on the first page in plain words, with the visit
office's contact details (a facility setting), so that nobody checks their
camera and waits for a call that will not come. The answer carries the
same reason codes the waiting room's join is refused with
(``booking_cancelled``, ``facility_restricted`` for a held booking,
``booking_used``, ``outside_window``, ``not_found``); the join stays the
judge, this only says it earlier. It tells nothing the page does not show
after joining.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from kiosk.domain.model import Booking, BookingState, Contact, FacilitySettings
from kiosk.domain.reasons import Reason
from kiosk.signalling.context import CONTEXT
from kiosk.signalling.visitors.invites import find_invite
from kiosk.signalling.web.pages import TOKEN_PATTERN, page_headers
from kiosk.store.bookings import get_booking
from kiosk.store.contacts import get_contact
from kiosk.store.facility import get_facility

_BOOKING_REASONS = {
    BookingState.CANCELLED: Reason.BOOKING_CANCELLED,
    BookingState.HELD: Reason.FACILITY_RESTRICTED,  # R16: held by a restriction
    BookingState.USED: Reason.BOOKING_USED,
}


def standing(booking: Booking, valid_from: datetime, valid_until: datetime, now: datetime) -> str:
    """``open``, ``ahead`` (too early to join) or the reason code the join is refused with."""
    reason = _BOOKING_REASONS.get(booking.state)
    if reason is not None:
        return reason.value
    if now >= valid_until:
        return Reason.OUTSIDE_WINDOW.value
    return "ahead" if now < valid_from else "open"


def office(name: str, settings: FacilitySettings) -> dict[str, str]:
    """Where a visitor turns to: the facility's name and its visit office's details."""
    return {
        "name": name,
        "phone": settings.visitor_phone,
        "email": settings.visitor_email,
        "hours": settings.visitor_hours,
    }


def _call(booking: Booking, contact: Contact) -> dict[str, Any]:
    return {
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
        "category": contact.category.value,
        "privileged": contact.category.privileged,  # R13
        "control": contact.control.value,
    }


async def invite_status(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    async with ctx.engine.connect() as conn:
        facility = await get_facility(conn)
        invite = await find_invite(conn, request.match_info["token"])
        booking = await get_booking(conn, invite.booking_id) if invite else None
        contact = await get_contact(conn, invite.contact_id) if invite else None
    body: dict[str, Any] = {
        "server_time": now.isoformat(),
        "facility": office(facility.name, facility.settings) if facility else None,
    }
    if invite is None or booking is None or contact is None:
        body["state"] = Reason.NOT_FOUND.value
    else:
        body["state"] = standing(booking, invite.valid_from, invite.valid_until, now)
        body["call"] = _call(booking, contact)
    headers = page_headers()
    return web.json_response(body, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/visit/{token:" + TOKEN_PATTERN + "}/status", invite_status)
