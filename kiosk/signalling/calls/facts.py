"""The typed facts loader: what the store knows about a call, for the switchboard's events.

Reads only; the switchboard decides. A tablet asking about another inmate's
booking learns nothing about it (``device_not_assigned`` before anything of
the booking is looked at).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import CallFacts, InviteFacts
from kiosk.domain.weeks import LIVE_BOOKING_STATES, week_bounds
from kiosk.signalling.visitors.invites import find_invite
from kiosk.store.bookings import contact_categories, get_booking, list_bookings
from kiosk.store.contacts import get_contact
from kiosk.store.devices import get_device
from kiosk.store.facility import get_facility
from kiosk.store.inmates import get_inmate


async def call_facts(engine: AsyncEngine, device_id: str, booking_id: str) -> CallFacts | Reason:
    """The facts of a dial or a set-up, or the reason there are none to speak of."""
    async with engine.connect() as conn:
        return await _call_facts(conn, device_id, booking_id)


async def _call_facts(conn: AsyncConnection, device_id: str, booking_id: str) -> CallFacts | Reason:
    record = await get_device(conn, device_id)
    if record is None:
        return Reason.DEVICE_NOT_ASSIGNED
    booking = await get_booking(conn, booking_id)
    if booking is None:
        return Reason.BOOKING_NOT_FOUND
    device = record.device
    if device.inmate_id != booking.inmate_id and not device.revoked:
        return Reason.DEVICE_NOT_ASSIGNED
    inmate = await get_inmate(conn, booking.inmate_id)
    contact = await get_contact(conn, booking.contact_id)
    facility = await get_facility(conn)
    if inmate is None or contact is None or facility is None:
        return Reason.BOOKING_NOT_FOUND
    start, end = week_bounds(booking.start)
    week = await list_bookings(
        conn, between=(start, end), inmate_id=inmate.id, states=LIVE_BOOKING_STATES
    )
    categories = await contact_categories(conn, [b.contact_id for b in week])
    return CallFacts(
        device=device,
        booking=booking,
        inmate=inmate,
        contact=contact,
        settings=facility.settings,
        week_bookings=tuple(week),
        categories=categories,
    )


async def invite_facts(engine: AsyncEngine, token: str) -> InviteFacts | None:
    """A visitor's invite with its booking and contact; None for a token that is no invite."""
    async with engine.connect() as conn:
        invite = await find_invite(conn, token)
        if invite is None:
            return None
        booking = await get_booking(conn, invite.booking_id)
        contact = await get_contact(conn, invite.contact_id)
    if booking is None or contact is None:
        return None
    return InviteFacts(
        invite_id=invite.id,
        booking=booking,
        contact=contact,
        valid_from=invite.valid_from,
        valid_until=invite.valid_until,
    )


async def device_inmate(engine: AsyncEngine, device_id: str) -> str | None:
    """The inmate a tablet is assigned to now (None: nobody, or revoked)."""
    async with engine.connect() as conn:
        record = await get_device(conn, device_id)
    if record is None or record.device.revoked:
        return None
    return record.device.inmate_id
