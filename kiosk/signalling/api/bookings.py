"""Bookings: list (by day, inmate, state), create (R9, R10, R12, R15-R17), cancel,
and police clearance (R11)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain import policy
from kiosk.domain.access import Action
from kiosk.domain.model import Booking, BookingState, FacilitySettings, PoliceClearance
from kiosk.domain.reasons import Reason
from kiosk.domain.weeks import LIVE_BOOKING_STATES, week_bounds
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.invites import send_new_invite
from kiosk.signalling.api.work import Work, reading, writing
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.schemas import bookings as s
from kiosk.signalling.schemas.base import EARLIEST, LATEST
from kiosk.store import bookings as bookings_store
from kiosk.store.bookings import contact_categories, insert_booking, set_booking_state
from kiosk.store.contacts import get_contact
from kiosk.store.facility import get_facility, lock_facility
from kiosk.store.ids import new_id
from kiosk.store.inmates import get_inmate

table = OperationTable("bookings")

BOOKING_REFUSALS = (
    Reason.NOT_FOUND,  # the inmate or contact named in the body
    Reason.INMATE_INACTIVE,
    Reason.CONTACT_NOT_APPROVED,
    Reason.WINDOW_INVALID,
    Reason.OUTSIDE_WINDOW,
    Reason.FACILITY_CLOSED,
    Reason.ORDER_DEADLINE_PASSED,
    Reason.FACILITY_RESTRICTED,
    Reason.CAPACITY_TABLETS,
    Reason.CAPACITY_ROOM,
    Reason.CAPACITY_MONITORING,
    Reason.QUOTA_EXHAUSTED,
)


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) of ``day`` in the facility's time zone, in UTC."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


async def load_booking(work: Work, booking_id: str) -> Booking:
    return await work.load(
        bookings_store.get_booking, booking_id, "booking", reason=Reason.BOOKING_NOT_FOUND
    )


def still_open(booking: Booking) -> None:
    """A cancelled or used booking changes no more."""
    if booking.state not in (BookingState.BOOKED, BookingState.HELD):
        raise ApiError(Reason.BOOKING_NOT_ACTIVE, f"The booking is {booking.state.value}.")


@table.route(
    "GET",
    "/bookings",
    Action.BOOKING_READ,
    summary="List bookings by day (facility time zone) or span of time, inmate and state",
    query=s.BookingListQuery,
    response=s.BookingList,
)
async def list_bookings(req: ApiRequest) -> s.BookingList:
    q = req.query_as(s.BookingListQuery)
    async with reading(req) as work:
        conn = work.conn
        spans = [_span(q)] if q.ends_after or q.starts_before else []
        if q.day is not None:
            facility = await get_facility(conn)
            assert facility is not None
            try:
                spans.append(day_bounds(q.day, facility.timezone))
            except OverflowError:
                raise ApiError(Reason.INVALID_REQUEST, "query.day: out of range") from None
        # Each filter narrows: the bookings overlapping every span given.
        between = (max(s for s, _ in spans), min(e for _, e in spans)) if spans else None
        if between is not None and between[0] >= between[1]:
            return s.BookingList(items=[])
        bookings = await bookings_store.list_bookings(
            conn,
            between=between,
            inmate_id=q.inmate_id,
            states=[q.state] if q.state is not None else None,
            limit=q.limit,
        )
    return s.BookingList(items=[s.BookingOut.model_validate(b) for b in bookings])


def _span(q: s.BookingListQuery) -> tuple[datetime, datetime]:
    """[``ends_after``, ``starts_before``): either end may be left open."""
    return q.ends_after or EARLIEST, q.starts_before or LATEST


@table.route(
    "POST",
    "/bookings",
    Action.BOOKING_WRITE,
    summary="Book a window for one call; the visitor's invite goes out by e-mail with it",
    body=s.BookingCreate,
    response=s.BookingCreated,
    status=201,
    refusals=BOOKING_REFUSALS,
)
async def create_booking(req: ApiRequest) -> s.BookingCreated:
    """The policy checks, in order: inmate and contact, R10 window, R12 location,
    R15 closures (unless `override_closure`), R16 restrictions, R9 capacity, R17 quota.
    R11 police clearance may come with the booking or be added later.

    Unless `send_invite` is false, the contact's invite is mailed with the booking
    (issue 16); `invite_sent` says whether it went and `invite_not_sent_reason` why not."""
    body = req.body_as(s.BookingCreate)
    async with writing(req) as work:
        conn = work.conn
        await lock_facility(conn)  # R9: one capacity check at a time
        facility = await get_facility(conn)
        assert facility is not None
        inmate = await work.load(get_inmate, body.inmate_id, "inmate")
        contact = await work.load(get_contact, body.contact_id, "contact")
        clearance = (
            PoliceClearance(body.police_clearance.cleared_by, body.police_clearance.cleared_at)
            if body.police_clearance
            else None
        )
        request = policy.BookingRequest(
            inmate=inmate,
            contact=contact,
            start=body.start,
            end=body.end,
            location_kind=body.location_kind,
            location=body.location,
            initiation=body.initiation,
            police_clearance=clearance,
            override_closure=body.override_closure,
        )
        context = await booking_context(conn, request, facility.settings)
        work.check(policy.create_booking(request, context, req.now))
        booking = Booking(
            id=new_id(),
            inmate_id=inmate.id,
            contact_id=contact.id,
            start=body.start,
            end=body.end,
            location_kind=body.location_kind,
            location=body.location,
            initiation=body.initiation,
            police_clearance=clearance,
            control=contact.control,
        )
        await insert_booking(conn, booking, req.staff.staff_id, req.now)
        work.tablets_changed(inmates=[inmate.id])
        await work.audit(
            "booking.created",
            {"booking": booking.id, "inmate": inmate.id, "contact": contact.id},
            {
                "start": booking.start.isoformat(),
                "end": booking.end.isoformat(),
                "control": booking.control.value,
                "initiation": booking.initiation.value,
                "override_closure": body.override_closure,
                "police_cleared": clearance is not None,
                "send_invite": body.send_invite,  # issue 16: the clerk's choice
            },
        )
        not_sent: s.InviteNotSent | None = (
            "not_requested" if not body.send_invite else None if contact.email else "no_email"
        )
        if not_sent is None:
            await send_new_invite(work, booking, contact)
    out = s.BookingOut.model_validate(booking).model_dump()
    return s.BookingCreated(
        **out,
        invite_sent=not_sent is None,
        invite_sent_to=contact.email if not_sent is None else None,
        invite_not_sent_reason=not_sent,
    )


async def booking_context(
    conn: AsyncConnection, request: policy.BookingRequest, settings: FacilitySettings
) -> policy.BookingContext:
    """The facts R9 and R17 need: live bookings in the window and in the inmate's week."""
    overlapping = await bookings_store.list_bookings(
        conn, between=(request.start, request.end), states=LIVE_BOOKING_STATES
    )
    week = await bookings_store.list_bookings(
        conn,
        between=week_bounds(request.start),
        inmate_id=request.inmate.id,
        states=LIVE_BOOKING_STATES,
    )
    categories = await contact_categories(conn, [b.contact_id for b in week])
    return policy.BookingContext(
        settings=settings, overlapping=overlapping, week_bookings=week, categories=categories
    )


@table.route(
    "GET",
    "/bookings/{booking_id}",
    Action.BOOKING_READ,
    summary="Read a booking",
    response=s.BookingOut,
    refusals=(Reason.BOOKING_NOT_FOUND,),
)
async def get_booking(req: ApiRequest) -> s.BookingOut:
    async with reading(req) as work:
        return s.BookingOut.model_validate(await load_booking(work, req.params["booking_id"]))


@table.route(
    "POST",
    "/bookings/{booking_id}/cancel",
    Action.BOOKING_WRITE,
    summary="Cancel a booking",
    response=s.BookingOut,
    refusals=(Reason.BOOKING_NOT_FOUND, Reason.BOOKING_NOT_ACTIVE),
)
async def cancel_booking(req: ApiRequest) -> s.BookingOut:
    async with writing(req) as work:
        booking = await load_booking(work, req.params["booking_id"])
        still_open(booking)
        cancelled = replace(booking, state=BookingState.CANCELLED)
        await set_booking_state(work.conn, [booking.id], cancelled.state)
        work.tablets_changed(inmates=[booking.inmate_id])
        await work.audit(
            "booking.cancelled",
            {"booking": booking.id, "inmate": booking.inmate_id, "contact": booking.contact_id},
        )
        await work.mail(mail.bookings_stopped, [booking], "cancelled")  # the contact is told
    return s.BookingOut.model_validate(cancelled)


@table.route(
    "PUT",
    "/bookings/{booking_id}/police-clearance",
    Action.BOOKING_WRITE,
    summary="Record the police clearance of a remand inmate's call (R11)",
    body=s.PoliceClearanceIn,
    response=s.BookingOut,
    refusals=(Reason.BOOKING_NOT_FOUND, Reason.BOOKING_NOT_ACTIVE),
)
async def set_police_clearance(req: ApiRequest) -> s.BookingOut:
    body = req.body_as(s.PoliceClearanceIn)
    async with writing(req) as work:
        booking = await load_booking(work, req.params["booking_id"])
        still_open(booking)
        clearance = PoliceClearance(body.cleared_by, body.cleared_at)  # R11
        await bookings_store.set_police_clearance(work.conn, booking.id, clearance)
        await work.audit(
            "booking.police_cleared",
            {"booking": booking.id, "inmate": booking.inmate_id},
            {"cleared_at": body.cleared_at.isoformat()},
        )
    return s.BookingOut.model_validate(replace(booking, police_clearance=clearance))
