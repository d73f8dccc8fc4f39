"""Visitor invites: a link for the booking's contact (ARCHITECTURE.md, Trust).

Issuing a new invite makes the booking's earlier links stop working
(kiosk/signalling/visitors/invites.py). The token is shown once, in the
response, and stored only hashed.
"""

from __future__ import annotations

from datetime import datetime

from kiosk.domain.access import Action
from kiosk.domain.model import BookingState
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import writing
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.visitors import invites as inv
from kiosk.store.bookings import get_booking

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
    async with writing(req) as work:
        booking = await work.load(get_booking, req.params["booking_id"], "booking")
        if booking.state is not BookingState.BOOKED or booking.end <= req.now:
            raise ApiError(Reason.BOOKING_NOT_ACTIVE)
        token, invite = await inv.issue_invite(work.conn, booking, req.now)
        await work.audit(
            "invite.issued",
            {"booking": booking.id, "contact": booking.contact_id, "invite": invite.id},
        )
        url = visit_url(req, token)
        await work.mail(mail.invite_issued, booking, url, invite.valid_from)  # the link
    return InviteOut(
        booking_id=booking.id,
        contact_id=booking.contact_id,
        url=url,
        valid_from=invite.valid_from,
        valid_until=invite.valid_until,
    )
