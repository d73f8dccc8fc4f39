"""Calls: the list of live and past calls.

Setting up, ending and monitoring calls are the switchboard's operations (api/live.py);
it adds them with its own :class:`OperationTable` (``build_app(operations=...)``).
"""

from __future__ import annotations

from kiosk.domain.access import Action
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.bookings import day_bounds
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
    async with req.ctx.engine.connect() as conn:
        between = None
        if q.day is not None:
            facility = await get_facility(conn)
            assert facility is not None
            try:
                between = day_bounds(q.day, facility.timezone)
            except OverflowError:
                raise ApiError(Reason.INVALID_REQUEST, "query.day: out of range") from None
        calls = await calls_store.list_calls(
            conn, live=q.live, inmate_id=q.inmate_id, between=between, limit=q.limit
        )
    return s.CallList(items=[s.CallOut.model_validate(c) for c in calls])
