"""Calls: the one record of a call, live or past, and the writes that move it.

Live-call state is persisted on every transition so that a restarted server
can close out the calls it lost with the right reason (issue 3). The same
record is what the staff API shows (``CallOut`` is validated from it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import CallRecord, CallState
from kiosk.domain.reasons import EndReason
from kiosk.store import schema as t
from kiosk.store.rows import columns, record


async def insert_call(conn: AsyncConnection, call: CallRecord) -> None:
    await conn.execute(insert(t.calls).values(**columns(call)))


async def update_call(conn: AsyncConnection, call: CallRecord) -> None:
    """Write what a transition moves: the state, the connection and the end."""
    moved = columns(call, "state", "connected_at", "ended_at", "end_reason", "connected_seconds")
    await conn.execute(update(t.calls).where(t.calls.c.id == call.id).values(**moved))


async def set_call_state(
    conn: AsyncConnection, call_id: str, state: CallState, connected_at: datetime | None = None
) -> None:
    values: dict[str, object] = {"state": state.value}
    if connected_at is not None:
        values["connected_at"] = connected_at
    await conn.execute(update(t.calls).where(t.calls.c.id == call_id).values(**values))


async def end_call(
    conn: AsyncConnection, call_id: str, reason: EndReason, ended_at: datetime, seconds: int
) -> None:
    await conn.execute(
        update(t.calls)
        .where(t.calls.c.id == call_id)
        .values(
            state=CallState.ENDED.value,
            end_reason=reason.value,
            ended_at=ended_at,
            connected_seconds=seconds,
        )
    )


async def get_call(conn: AsyncConnection, call_id: str) -> CallRecord | None:
    row = (await conn.execute(select(t.calls).where(t.calls.c.id == call_id))).first()
    return None if row is None else record(CallRecord, row)


async def list_calls(
    conn: AsyncConnection,
    *,
    live: bool | None = None,
    inmate_id: str | None = None,
    between: tuple[datetime, datetime] | None = None,
    limit: int | None = 1000,
) -> list[CallRecord]:
    """Calls, newest first: live or ended ones, of an inmate, overlapping ``between``."""
    query = select(t.calls)
    if live is True:
        query = query.where(t.calls.c.ended_at.is_(None))
    elif live is False:
        query = query.where(t.calls.c.ended_at.is_not(None))
    if inmate_id is not None:
        query = query.where(t.calls.c.inmate_id == inmate_id)
    if between is not None:
        start, end = between
        query = query.where(and_(t.calls.c.not_before < end, t.calls.c.not_after > start))
    query = query.order_by(t.calls.c.created_at.desc(), t.calls.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [record(CallRecord, r) for r in (await conn.execute(query)).all()]


async def unfinished_calls(conn: AsyncConnection) -> list[CallRecord]:
    """Calls a previous process left live (to be closed out at start-up)."""
    return await list_calls(conn, live=True, limit=None)


async def record_breach(
    conn: AsyncConnection,
    breach_id: str,
    call: CallRecord,
    staff_id: str,
    now: datetime,
    note: str,
) -> None:
    """R14: the breach is recorded against the contact and the inmate."""
    await conn.execute(
        insert(t.breaches).values(
            id=breach_id,
            inmate_id=call.inmate_id,
            contact_id=call.contact_id,
            call_id=call.id,
            recorded_by=staff_id,
            recorded_at=now,
            note=note,
        )
    )
    await conn.execute(
        update(t.contacts)
        .where(t.contacts.c.id == call.contact_id)
        .values(breaches=t.contacts.c.breaches + 1)
    )


async def last_ended_call(conn: AsyncConnection, booking_id: str) -> CallRecord | None:
    """The booking's most recent call that has ended (its receipt, issue 18)."""
    row = (
        await conn.execute(
            select(t.calls)
            .where(t.calls.c.booking_id == booking_id, t.calls.c.ended_at.is_not(None))
            .order_by(t.calls.c.ended_at.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else record(CallRecord, row)
