"""Calls: the list of live and past calls, and one call.

Setting up, ending and monitoring calls are the switchboard's operations (api/live.py);
it adds them with its own :class:`OperationTable` (``build_app(operations=...)``).
"""

from __future__ import annotations

from kiosk.domain.access import Action
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.bookings import day_bounds
from kiosk.signalling.api.work import reading
from kiosk.signalling.schemas import calls as s
from kiosk.store import calls as calls_store
from kiosk.store.facility import get_facility

table = OperationTable("calls")


@table.route(
    "GET",
    "/calls",
    Action.CALL_READ,
    summary="List live and past calls",
    query=s.CallListQuery,
    response=s.CallList,
)
async def list_calls(req: ApiRequest) -> s.CallList:
    q = req.query_as(s.CallListQuery)
    async with reading(req) as work:
        between = None
        if q.day is not None:
            facility = await get_facility(work.conn)
            assert facility is not None
            try:
                between = day_bounds(q.day, facility.timezone)
            except OverflowError:
                raise ApiError(Reason.INVALID_REQUEST, "query.day: out of range") from None
        calls = await calls_store.list_calls(
            work.conn, live=q.live, inmate_id=q.inmate_id, between=between, limit=q.limit
        )
    return s.CallList(items=[s.CallOut.model_validate(c) for c in calls])


@table.route(
    "GET",
    "/calls/{call_id}",
    Action.CALL_READ,
    summary="Read a call, live or past",
    response=s.CallOut,
)
async def get_call(req: ApiRequest) -> s.CallOut:
    async with reading(req) as work:
        call = await work.load(calls_store.get_call, req.params["call_id"], "call")
    return s.CallOut.model_validate(call)
