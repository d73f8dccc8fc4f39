"""What a booking would meet, asked before it is made: quota left, capacity left (issue 16)."""

from __future__ import annotations

from kiosk.domain import policy
from kiosk.domain.access import Action
from kiosk.domain.model import Initiation, LocationKind
from kiosk.domain.policy.outlook import outlook
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.bookings import booking_context
from kiosk.signalling.api.work import reading
from kiosk.signalling.schemas import bookings as s
from kiosk.store.contacts import get_contact
from kiosk.store.facility import get_facility
from kiosk.store.inmates import get_inmate

table = OperationTable("bookings")


@table.route(
    "GET",
    "/inmates/{inmate_id}/outlook",
    Action.BOOKING_READ,
    summary="Before booking: the inmate's weekly quota left with a contact (R17) and the "
    "capacity left in a window (R9)",
    query=s.OutlookQuery,
    response=s.OutlookOut,
    refusals=(Reason.WINDOW_INVALID,),
)
async def booking_outlook(req: ApiRequest) -> s.OutlookOut:
    """The counts the booking policy refuses by, so that the form can show them first."""
    q = req.query_as(s.OutlookQuery)
    if q.end <= q.start:
        raise ApiError(Reason.WINDOW_INVALID)
    async with reading(req) as work:
        facility = await get_facility(work.conn)
        assert facility is not None
        inmate = await work.load(get_inmate, req.params["inmate_id"], "inmate")
        contact = await work.load(get_contact, q.contact_id, "contact")
        if contact.inmate_id != inmate.id:
            raise ApiError(Reason.INVALID_REQUEST, "the contact belongs to another inmate")
        request = policy.BookingRequest(
            inmate=inmate, contact=contact, start=q.start, end=q.end,
            location_kind=LocationKind.CELL, location="", initiation=Initiation.STAFF,
        )  # fmt: skip
        ctx = await booking_context(work.conn, request, facility.settings)
    seen = outlook(
        facility.settings, inmate, contact, q.start, q.end,
        ctx.overlapping, ctx.week_bookings, ctx.categories,
    )  # fmt: skip
    return s.OutlookOut(
        quota_minutes=seen.quota_minutes,
        quota_used_minutes=seen.quota_used_minutes,
        quota_left_minutes=seen.quota_left_minutes,
        tablets=seen.tablets,
        tablets_taken=seen.tablets_taken,
        rooms_taken=list(seen.rooms_taken),
        monitoring_staff=seen.monitoring_staff,
        monitoring_taken=seen.monitoring_taken,
    )
