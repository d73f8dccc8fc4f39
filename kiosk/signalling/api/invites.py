"""Visitor invites: a link for the booking's contact (ARCHITECTURE.md, Trust).

Issuing a new invite makes the booking's earlier links stop working, so a
link sent to a wrong address can be withdrawn by sending a fresh one. The
token is shown once, in the response, and stored only hashed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from kiosk.domain.access import Action
from kiosk.domain.model import BookingState
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, not_found
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.visitors import invites as inv
from kiosk.store import schema as t
from kiosk.store.bookings import get_booking
from kiosk.store.db import write_transaction

table = OperationTable("bookings")


class InviteOut(s.Response):
    booking_id: str
    contact_id: str
    url: str
    valid_from: datetime
    valid_until: datetime


def visit_url(req: ApiRequest, token: str) -> str:
    base = req.ctx.settings.server.public_url.rstrip("/")
    if not base:
        base = f"{req.http.scheme}://{req.http.host}"
    return f"{base}/visit/{token}"


@table.route(
    "POST",
    "/bookings/{booking_id}/invites",
    Action.BOOKING_WRITE,
    summary="Issue the visitor's invite link for a booking (earlier links stop working)",
    response=InviteOut,
    status=201,
    refusals=(Reason.BOOKING_NOT_ACTIVE,),
)
async def issue_invite(req: ApiRequest) -> InviteOut:
    booking_id = req.params["booking_id"]
    async with write_transaction(req.ctx.engine) as conn:
        booking = await get_booking(conn, booking_id)
        if booking is None:
            raise not_found("booking")
        if booking.state is not BookingState.BOOKED or booking.end <= req.now:
            raise ApiError(Reason.BOOKING_NOT_ACTIVE)
        await conn.execute(delete(t.invites).where(t.invites.c.booking_id == booking.id))
        token, invite = await inv.issue_invite(conn, booking, req.now)
        await req.ctx.audit.append(
            f"staff:{req.staff.staff_id}",
            "invite.issued",
            {"booking": booking.id, "contact": booking.contact_id, "invite": invite.id},
            conn=conn,
        )
    url = visit_url(req, token)
    await mail.invite_issued(req.ctx, booking, url, invite.valid_from)  # the link by e-mail
    return InviteOut(
        booking_id=booking.id,
        contact_id=booking.contact_id,
        url=url,
        valid_from=invite.valid_from,
        valid_until=invite.valid_until,
    )
