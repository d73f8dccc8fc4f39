"""The visit office's work queue: what waits for staff, with counts per kind (issue 16)."""

from __future__ import annotations

from collections import Counter
from typing import get_args

from kiosk.domain.access import Action
from kiosk.signalling.api.base import ApiRequest, OperationTable
from kiosk.signalling.api.work import reading
from kiosk.signalling.schemas import queue as s
from kiosk.store.queue import waiting

table = OperationTable("queue")


@table.route(
    "GET",
    "/queue",
    Action.CONTACT_READ,
    summary="What waits for staff: contacts to confirm or assess, appeals, police clearances, "
    "held bookings",
    query=s.QueueQuery,
    response=s.QueueOut,
)
async def read_queue(req: ApiRequest) -> s.QueueOut:
    """Counts are of what matches the search; with no search, of everything that waits."""
    q = req.query_as(s.QueueQuery)
    async with reading(req) as work:
        items = await waiting(work.conn, req.now, q.q)
    counts = Counter(i.kind for i in items)
    return s.QueueOut(
        items=[s.QueueItemOut.model_validate(i) for i in items],
        counts={k: counts.get(k, 0) for k in get_args(s.QueueKind)},
        total=len(items),
    )
