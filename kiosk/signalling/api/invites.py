"""Visitor invites: a link for the booking's contact (ARCHITECTURE.md, Trust).

The invite goes out by e-mail with the booking (``send_invite``, issue 16).
Sending it again sends the same link; a new link is a separate, explicit
action that makes the booking's earlier links stop working
(kiosk/signalling/visitors/invites.py). A link is shown to staff only when
they make a new one; the token is stored only hashed.
"""

from __future__ import annotations

from datetime import datetime

from kiosk.domain.access import Action
from kiosk.domain.model import Booking, BookingState, Contact
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import Work, writing
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.visitors import invites as inv
from kiosk.store.bookings import get_booking
from kiosk.store.contacts import get_contact

table = OperationTable("bookings")


class InviteSent(s.Response):
    booking_id: str
    contact_id: str
    valid_from: datetime
    valid_until: datetime
    invite_sent: bool  # by e-mail, to the contact's address
    invite_sent_to: str | None


class InviteOut(InviteSent):
    url: str  # shown once: staff who made the link may hand it on themselves


def visit_url(req: ApiRequest, token: str) -> str:
    base = req.ctx.settings.server.public_url.rstrip("/")
    if not base:
        base = f"{req.http.scheme}://{req.http.host}"
    return f"{base}/visit/{token}"


async def send_new_invite(work: Work, booking: Booking, contact: Contact) -> None:
    """A new booking's invite, by e-mail to its contact (issue 16); the caller checked
    that the contact has an address."""
    req = work.req
    token, invite = await inv.issue_invite(work.conn, req.ctx.invite_key, booking, req.now)
    await work.audit(
        "invite.sent",
        {"booking": booking.id, "contact": contact.id, "invite": invite.id},
    )
    await work.mail(mail.invite_issued, booking, visit_url(req, token), invite.valid_from)


async def _open_booking(work: Work, req: ApiRequest) -> tuple[Booking, Contact]:
    booking = await work.load(get_booking, req.params["booking_id"], "booking")
    if booking.state is not BookingState.BOOKED or booking.end <= req.now:
        raise ApiError(Reason.BOOKING_NOT_ACTIVE)
    contact = await work.load(get_contact, booking.contact_id, "contact")
    return booking, contact


@table.route(
    "POST",
    "/bookings/{booking_id}/invites",
    Action.BOOKING_WRITE,
    summary=(
        "Revoke the booking's invite link and issue a new one, mailed to the contact "
        "(the old link stops working; to send the same link again, use /invites/resend)"
    ),
    response=InviteOut,
    status=201,
    refusals=(Reason.BOOKING_NOT_ACTIVE,),
)
async def issue_invite(req: ApiRequest) -> InviteOut:
    async with writing(req) as work:
        booking, contact = await _open_booking(work, req)
        token, invite = await inv.issue_invite(work.conn, req.ctx.invite_key, booking, req.now)
        await work.audit(
            "invite.issued",
            {"booking": booking.id, "contact": booking.contact_id, "invite": invite.id},
        )
        url = visit_url(req, token)
        if contact.email:
            await work.mail(mail.invite_issued, booking, url, invite.valid_from)  # the link
    return InviteOut(
        booking_id=booking.id,
        contact_id=booking.contact_id,
        url=url,
        valid_from=invite.valid_from,
        valid_until=invite.valid_until,
        invite_sent=bool(contact.email),
        invite_sent_to=contact.email or None,
    )


@table.route(
    "POST",
    "/bookings/{booking_id}/invites/resend",
    Action.BOOKING_WRITE,
    summary="Send the booking's invite again: the same link, which keeps working, in a new mail",
    response=InviteSent,
    refusals=(
        Reason.BOOKING_NOT_ACTIVE,
        Reason.NO_VALID_INVITE,
        Reason.NO_EMAIL,
    ),
)
async def resend_invite(req: ApiRequest) -> InviteSent:
    async with writing(req) as work:
        booking, contact = await _open_booking(work, req)
        current = await inv.current_token(work.conn, req.ctx.invite_key, booking, req.now)
        if current is None:
            raise ApiError(Reason.NO_VALID_INVITE)
        if not contact.email:
            raise ApiError(Reason.NO_EMAIL)
        token, invite = current
        await work.audit(
            "invite.resent",
            {"booking": booking.id, "contact": contact.id, "invite": invite.id},
        )
        await work.mail(mail.invite_issued, booking, visit_url(req, token), invite.valid_from)
    return InviteSent(
        booking_id=booking.id,
        contact_id=booking.contact_id,
        valid_from=invite.valid_from,
        valid_until=invite.valid_until,
        invite_sent=True,
        invite_sent_to=contact.email,
    )
