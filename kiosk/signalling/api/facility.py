"""The facility: settings (R2, R9, R10, R17), closures (R15) and restrictions (R16).

R16 choice: a new restriction puts the booked calls it covers on HOLD (a
suspension holds every booking it overlaps; a limit holds those longer than
it allows). Removing a restriction books again the held calls that no other
restriction still covers and whose window has not passed. Telling the people
affected is the mail notice's job.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kiosk.domain.access import Action
from kiosk.domain.model import (
    Booking,
    BookingState,
    Closure,
    Facility,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, not_found
from kiosk.signalling.api.work import Work, reading, writing
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.schemas import facility as s
from kiosk.signalling.schemas.base import Empty
from kiosk.store import facility as facility_store
from kiosk.store.bookings import list_bookings, set_booking_state
from kiosk.store.devices import count_in_service
from kiosk.store.facility import (
    delete_closure,
    delete_restriction,
    get_restriction,
    insert_closure,
    insert_restriction,
    lock_facility,
)
from kiosk.store.ids import new_id

table = OperationTable("facility")


def holds(restriction: Restriction, booking: Booking) -> bool:
    """Does ``restriction`` stop ``booking`` (R16)? A limit without minutes stops all."""
    if not booking.overlaps(restriction.start, restriction.end):
        return False
    if restriction.kind is RestrictionKind.SUSPEND:
        return True
    return booking.duration > timedelta(minutes=restriction.limit_minutes or 0)


def _check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ApiError(Reason.WINDOW_INVALID)


async def _out(work: Work) -> s.FacilityOut:
    """The settings, and the tablets really in service beside the setting (R9)."""
    out = s.FacilityOut.model_validate(await _facility(work))
    return out.model_copy(update={"tablets_in_service": await count_in_service(work.conn)})


async def _facility(work: Work) -> Facility:
    facility = await facility_store.get_facility(work.conn)
    if facility is None:
        # The server creates it at start-up (open_context): missing is a bug.
        raise RuntimeError("no facility row")
    return facility


@table.route(
    "GET",
    "/facility",
    Action.FACILITY_READ,
    summary="The facility and its settings",
    response=s.FacilityOut,
)
async def get_facility(req: ApiRequest) -> s.FacilityOut:
    async with reading(req) as work:
        return await _out(work)


@table.route(
    "PATCH",
    "/facility",
    Action.FACILITY_WRITE,
    summary="Change settings (contact limit, quotas, capacity, call length); omitted stay",
    body=s.FacilityUpdate,
    response=s.FacilityOut,
)
async def update_facility(req: ApiRequest) -> s.FacilityOut:
    body = req.body_as(s.FacilityUpdate)
    changes = body.model_dump(exclude_none=True)
    async with writing(req) as work:
        facility = await _facility(work)
        if changes:
            await facility_store.update_facility(work.conn, facility.id, changes)
            await work.audit(
                "facility.updated",
                {"facility": facility.id},
                {k: v for k, v in changes.items() if k != "name"},
            )
        return await _out(work)


@table.route(
    "POST",
    "/facility/closures",
    Action.FACILITY_WRITE,
    summary="Close the visit office for a period, with an order deadline (R15)",
    body=s.ClosureCreate,
    response=s.ClosureOut,
    status=201,
    refusals=(Reason.WINDOW_INVALID,),
)
async def add_closure(req: ApiRequest) -> s.ClosureOut:
    body = req.body_as(s.ClosureCreate)
    _check_window(body.start, body.end)
    closure = Closure(
        id=new_id(),
        start=body.start,
        end=body.end,
        order_deadline=body.order_deadline,
        note=body.note,
    )
    async with writing(req) as work:
        facility = await _facility(work)
        await insert_closure(work.conn, facility.id, closure)
        await work.audit(
            "facility.closure_added",
            {"facility": facility.id, "closure": closure.id},
            {"start": closure.start.isoformat(), "end": closure.end.isoformat()},
        )
    return s.ClosureOut.model_validate(closure)


@table.route(
    "DELETE",
    "/facility/closures/{closure_id}",
    Action.FACILITY_WRITE,
    summary="Remove a closure",
    response=Empty,
)
async def remove_closure(req: ApiRequest) -> Empty:
    async with writing(req) as work:
        facility = await _facility(work)
        closure_id = req.params["closure_id"]
        if not await delete_closure(work.conn, closure_id):
            raise not_found("closure")
        await work.audit(
            "facility.closure_removed", {"facility": facility.id, "closure": closure_id}
        )
    return Empty()


@table.route(
    "POST",
    "/facility/restrictions",
    Action.FACILITY_WRITE,
    summary="Suspend or limit calls for a period; booked calls inside are held (R16)",
    body=s.RestrictionCreate,
    response=s.RestrictionCreated,
    status=201,
    refusals=(Reason.WINDOW_INVALID,),
)
async def add_restriction(req: ApiRequest) -> s.RestrictionCreated:
    body = req.body_as(s.RestrictionCreate)
    _check_window(body.start, body.end)
    if (body.kind is RestrictionKind.LIMIT) != (body.limit_minutes is not None):
        raise ApiError(
            Reason.INVALID_REQUEST,
            "body.limit_minutes: required for a limit, and only for a limit",
        )
    restriction = Restriction(
        id=new_id(),
        start=body.start,
        end=body.end,
        kind=body.kind,
        limit_minutes=body.limit_minutes,
        note=body.note,
    )
    async with writing(req) as work:
        await lock_facility(work.conn)
        facility = await _facility(work)
        await insert_restriction(work.conn, facility.id, restriction)
        booked = await list_bookings(
            work.conn, between=(restriction.start, restriction.end), states=[BookingState.BOOKED]
        )
        held = [b.id for b in booked if holds(restriction, b)]
        await set_booking_state(work.conn, held, BookingState.HELD)
        await work.audit(
            "facility.restriction_added",
            {"facility": facility.id, "restriction": restriction.id},
            {
                "kind": restriction.kind.value,
                "start": restriction.start.isoformat(),
                "end": restriction.end.isoformat(),
                "limit_minutes": restriction.limit_minutes,
                "held_bookings": held,
            },
        )
    await req.ctx.restrictions_changed()
    await mail.bookings_stopped(req.ctx, held, "held")  # R16: the people affected are told
    return s.RestrictionCreated(
        restriction=s.RestrictionOut.model_validate(restriction), held_bookings=held
    )


@table.route(
    "DELETE",
    "/facility/restrictions/{restriction_id}",
    Action.FACILITY_WRITE,
    summary="Remove a restriction; bookings it alone held are booked again",
    response=s.RestrictionRemoved,
)
async def remove_restriction(req: ApiRequest) -> s.RestrictionRemoved:
    async with writing(req) as work:
        await lock_facility(work.conn)
        facility = await _facility(work)
        restriction = await work.load(get_restriction, req.params["restriction_id"], "restriction")
        await delete_restriction(work.conn, restriction.id)
        others = [r for r in facility.settings.restrictions if r.id != restriction.id]
        held = await list_bookings(
            work.conn, between=(restriction.start, restriction.end), states=[BookingState.HELD]
        )
        released = [
            b.id
            for b in held
            if b.end > req.now and holds(restriction, b) and not any(holds(r, b) for r in others)
        ]
        await set_booking_state(work.conn, released, BookingState.BOOKED)
        await work.audit(
            "facility.restriction_removed",
            {"facility": facility.id, "restriction": restriction.id},
            {"released_bookings": released},
        )
    await req.ctx.restrictions_changed()
    return s.RestrictionRemoved(released_bookings=released)
