"""Live calls: set up, end and monitor (the switchboard's operations).

Mounted only in a server process that runs the switchboard (``kiosk server``):
``operations(calls)`` gives the table. R12: staff set a booked call up on the
tablet, now or in advance, under the same policy as the tablet's dial (the
same refusals, the same reason codes). R14: staff end a call with a reason; a
breach is recorded against the contact and the inmate. R6/R13: a monitor
receives only the media the decision allows, and never on a privileged call.
Every refused request on a call is recorded in the audit chain (issue 12).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from kiosk.domain.access import Action
from kiosk.domain.model import MediaKind
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, Operation, OperationTable
from kiosk.signalling.calls.runner import CallRefused, CallsHolder
from kiosk.signalling.schemas.calls import CallOut
from kiosk.store.calls import get_call

Id = Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9-]+$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=60000)]


class CallSetUp(s.Request):
    booking_id: Id
    device_id: Id


class CallEnd(s.Request):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
    breach: bool = False  # R14


class MonitorAttach(s.Request):
    kinds: Annotated[list[MediaKind], Field(min_length=1, max_length=2)]


class MonitorOffer(s.Response):
    monitor_id: str
    call_id: str
    kinds: list[MediaKind]
    sdp: str


class MonitorAnswer(s.Request):
    sdp: Sdp


class MonitorAccepted(s.Response):
    monitor_id: str
    call_id: str


class WaitingVisitor(s.Response):
    booking_id: str
    contact_id: str
    inmate_id: str
    in_call: bool  # the waiting room's visitor is on the call now


class WaitingRoom(s.Response):
    """Issue 16: the visitors whose page has joined, so staff see who is there."""

    items: list[WaitingVisitor]


# What policy.place_call can refuse, for a dial and a set-up alike.
_SET_UP_REFUSALS = (
    Reason.BOOKING_NOT_FOUND,
    Reason.BOOKING_NOT_ACTIVE,
    Reason.DEVICE_NOT_ASSIGNED,
    Reason.DEVICE_REVOKED,
    Reason.INMATE_INACTIVE,
    Reason.CONTACT_NOT_APPROVED,
    Reason.OUTSIDE_WINDOW,
    Reason.POLICE_CLEARANCE_MISSING,
    Reason.FACILITY_RESTRICTED,
    Reason.QUOTA_EXHAUSTED,
    Reason.CALL_ALREADY_LIVE,
    Reason.BRIDGE_UNAVAILABLE,
)
_MONITOR_REFUSALS = (
    Reason.CALL_NOT_LIVE,
    Reason.PRIVILEGED_NO_MONITOR,
    Reason.NOT_CONTROLLED,
    Reason.MEDIA_KIND_FORBIDDEN,
    Reason.BRIDGE_UNAVAILABLE,
    Reason.MONITOR_LIMIT_REACHED,
)


def _api_error(exc: CallRefused) -> ApiError:
    return ApiError(exc.reason, exc.detail, audited=exc.audited)


async def _call_out(req: ApiRequest, call_id: str) -> CallOut | None:
    async with req.ctx.engine.connect() as conn:
        call = await get_call(conn, call_id)
    return CallOut.model_validate(call) if call is not None else None


async def _written_call(req: ApiRequest, call_id: str) -> CallOut:
    """The call the switchboard has just written (its effects are applied before it answers)."""
    call = await _call_out(req, call_id)
    assert call is not None, "the switchboard answered before writing the call"
    return call


def operations(calls: CallsHolder) -> list[Operation]:
    table = OperationTable("calls")

    @table.route(
        "POST",
        "/calls",
        Action.CALL_SET_UP,
        summary="Set up a booked call on a tablet (R12)",
        body=CallSetUp,
        response=CallOut,
        status=201,
        refusals=_SET_UP_REFUSALS,
        audit_refusals="call.set_up_refused",
    )
    async def set_up_call(req: ApiRequest) -> CallOut:
        body = req.body_as(CallSetUp)
        try:
            call_id = await calls().set_up(body.booking_id, body.device_id, req.staff.staff_id)
        except CallRefused as exc:
            raise _api_error(exc) from None
        return await _written_call(req, call_id)

    @table.route(
        "POST",
        "/calls/{call_id}/end",
        Action.CALL_END,
        summary="End a live call now, with a reason; a breach is recorded (R14)",
        body=CallEnd,
        response=CallOut,
        refusals=(Reason.CALL_NOT_LIVE,),
        audit_refusals="call.end_refused",
    )
    async def end_call(req: ApiRequest) -> CallOut:
        body = req.body_as(CallEnd)
        call_id = req.params["call_id"]
        if await _call_out(req, call_id) is None:
            raise ApiError(Reason.NOT_FOUND)  # never was; one that ended is not live (below)
        try:
            await calls().end(call_id, req.staff.staff_id, body.note, body.breach)
        except CallRefused as exc:
            raise _api_error(exc) from None
        return await _written_call(req, call_id)

    @table.route(
        "POST",
        "/calls/{call_id}/monitors",
        Action.CALL_MONITOR,
        summary="Attach a staff monitor: the bridge offers only the media the decision allows",
        body=MonitorAttach,
        response=MonitorOffer,
        status=201,
        refusals=_MONITOR_REFUSALS,
        audit_refusals="monitor.refused",
    )
    async def attach_monitor(req: ApiRequest) -> MonitorOffer:
        body = req.body_as(MonitorAttach)
        call_id = req.params["call_id"]
        try:
            monitor_id, sdp = await calls().attach_monitor(
                call_id, req.staff.staff_id, frozenset(body.kinds)
            )
        except CallRefused as exc:
            raise _api_error(exc) from None
        return MonitorOffer(
            monitor_id=monitor_id, call_id=call_id, kinds=sorted(set(body.kinds)), sdp=sdp
        )

    @table.route(
        "POST",
        "/calls/{call_id}/monitors/{monitor_id}/answer",
        Action.CALL_MONITOR,
        summary="Complete a monitor's connection with its SDP answer",
        body=MonitorAnswer,
        response=MonitorAccepted,
        refusals=(Reason.CALL_NOT_LIVE, Reason.INVALID_REQUEST),
        audit_refusals="monitor.answer_refused",
    )
    async def answer_monitor(req: ApiRequest) -> MonitorAccepted:
        body = req.body_as(MonitorAnswer)
        call_id, monitor_id = req.params["call_id"], req.params["monitor_id"]
        try:
            await calls().monitor_answer(call_id, monitor_id, req.staff.staff_id, body.sdp)
        except CallRefused as exc:
            raise _api_error(exc) from None
        return MonitorAccepted(monitor_id=monitor_id, call_id=call_id)

    @table.route(
        "GET",
        "/waiting-room",
        Action.CALL_READ,
        summary="The visitors in the waiting room or on a call now, by booking",
        response=WaitingRoom,
    )
    async def waiting_room(req: ApiRequest) -> WaitingRoom:
        seats = await calls().waiting_visitors()
        return WaitingRoom(items=[WaitingVisitor.model_validate(seat) for seat in seats])

    return table.operations
