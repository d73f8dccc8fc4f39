"""Queries for live and past calls, used by the call supervisor.

Live-call state is persisted on every transition so that a restarted server
can close out the calls it lost with the right reason (issue 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import CallState, Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.store import schema as t


@dataclass(frozen=True, slots=True)
class StoredCall:
    id: str
    booking_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: Category
    route: Route
    control: ControlLevel
    state: CallState
    not_before: datetime
    not_after: datetime
    connected_at: datetime | None


async def insert_call(conn: AsyncConnection, call: StoredCall, now: datetime) -> None:
    await conn.execute(
        insert(t.calls).values(
            id=call.id,
            booking_id=call.booking_id,
            device_id=call.device_id,
            inmate_id=call.inmate_id,
            contact_id=call.contact_id,
            category=call.category.value,
            route=call.route.value,
            control=call.control.value,
            state=call.state.value,
            not_before=call.not_before,
            not_after=call.not_after,
            created_at=now,
        )
    )


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


async def unfinished_calls(conn: AsyncConnection) -> list[StoredCall]:
    rows = await conn.execute(select(t.calls).where(t.calls.c.ended_at.is_(None)))
    return [
        StoredCall(
            id=r.id,
            booking_id=r.booking_id,
            device_id=r.device_id,
            inmate_id=r.inmate_id,
            contact_id=r.contact_id,
            category=Category(r.category),
            route=Route(r.route),
            control=ControlLevel(r.control),
            state=CallState(r.state),
            not_before=r.not_before,
            not_after=r.not_after,
            connected_at=r.connected_at,
        )
        for r in rows.all()
    ]


async def call_end_reason(conn: AsyncConnection, call_id: str) -> EndReason | None:
    row = (await conn.execute(select(t.calls.c.end_reason).where(t.calls.c.id == call_id))).first()
    return None if row is None or row.end_reason is None else EndReason(row.end_reason)


async def record_breach(
    conn: AsyncConnection,
    breach_id: str,
    call: StoredCall,
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


async def insert_tamper_event(
    conn: AsyncConnection,
    event_id: str,
    device_id: str,
    kind: str,
    details: dict[str, str],
    now: datetime,
) -> None:
    await conn.execute(
        insert(t.tamper_events).values(
            id=event_id, device_id=device_id, at=now, kind=kind, details=details
        )
    )


@dataclass(frozen=True, slots=True)
class TamperEvent:
    id: str
    device_id: str
    at: datetime
    kind: str
    details: dict[str, str]


async def list_tamper_events(
    conn: AsyncConnection, device_id: str, limit: int = 200
) -> list[TamperEvent]:
    """A tablet's tamper reports, newest first."""
    rows = await conn.execute(
        select(t.tamper_events)
        .where(t.tamper_events.c.device_id == device_id)
        .order_by(t.tamper_events.c.at.desc(), t.tamper_events.c.id)
        .limit(limit)
    )
    return [
        TamperEvent(
            id=r.id,
            device_id=r.device_id,
            at=r.at,
            kind=r.kind,
            details={str(k): str(v) for k, v in dict(r.details or {}).items()},
        )
        for r in rows
    ]


# Calls ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    booking_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: str
    route: str
    control: str
    state: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    connected_seconds: int


def _call(row: Row[Any]) -> CallRecord:
    return CallRecord(**{f: getattr(row, f) for f in CallRecord.__slots__})


async def get_call(conn: AsyncConnection, call_id: str) -> CallRecord | None:
    row = (await conn.execute(select(t.calls).where(t.calls.c.id == call_id))).first()
    return None if row is None else _call(row)


async def list_calls(
    conn: AsyncConnection,
    *,
    live: bool | None = None,
    inmate_id: str | None = None,
    between: tuple[datetime, datetime] | None = None,
    limit: int = 1000,
) -> list[CallRecord]:
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
    query = query.order_by(t.calls.c.created_at.desc(), t.calls.c.id).limit(limit)
    return [_call(r) for r in (await conn.execute(query)).all()]


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
    return None if row is None else _call(row)
