"""Bookings (R9-R12, R15-R17).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Booking, BookingState, Category, PoliceClearance
from kiosk.store import schema as t
from kiosk.store.rows import columns, record


def _booking(row: Row[Any]) -> Booking:
    clearance = None
    if row.police_cleared_by is not None and row.police_cleared_at is not None:
        clearance = PoliceClearance(row.police_cleared_by, row.police_cleared_at)  # R11
    return record(Booking, row, police_clearance=clearance)


async def insert_booking(
    conn: AsyncConnection, booking: Booking, created_by: str, now: datetime
) -> None:
    clearance = booking.police_clearance
    await conn.execute(
        insert(t.bookings).values(
            **columns(booking, exclude=("police_clearance",)),
            police_cleared_by=clearance.cleared_by if clearance else None,
            police_cleared_at=clearance.cleared_at if clearance else None,
            created_by=created_by,
            created_at=now,
        )
    )


async def get_booking(conn: AsyncConnection, booking_id: str) -> Booking | None:
    row = (await conn.execute(select(t.bookings).where(t.bookings.c.id == booking_id))).first()
    return None if row is None else _booking(row)


async def list_bookings(
    conn: AsyncConnection,
    *,
    between: tuple[datetime, datetime] | None = None,
    inmate_id: str | None = None,
    states: Iterable[BookingState] | None = None,
    limit: int = 1000,
) -> list[Booking]:
    """Bookings overlapping ``between``, of ``inmate_id``, in ``states``; by start."""
    query = select(t.bookings)
    if between is not None:
        start, end = between
        query = query.where(and_(t.bookings.c.start < end, t.bookings.c.end > start))
    if inmate_id is not None:
        query = query.where(t.bookings.c.inmate_id == inmate_id)
    if states is not None:
        query = query.where(t.bookings.c.state.in_([s.value for s in states]))
    query = query.order_by(t.bookings.c.start, t.bookings.c.id).limit(limit)
    return [_booking(r) for r in (await conn.execute(query)).all()]


async def set_booking_state(
    conn: AsyncConnection, booking_ids: Iterable[str], state: BookingState
) -> None:
    ids = list(booking_ids)
    if ids:
        await conn.execute(
            update(t.bookings).where(t.bookings.c.id.in_(ids)).values(state=state.value)
        )


async def set_police_clearance(
    conn: AsyncConnection, booking_id: str, clearance: PoliceClearance
) -> None:
    """R11: record who at the police cleared the call, and when."""
    await conn.execute(
        update(t.bookings)
        .where(t.bookings.c.id == booking_id)
        .values(police_cleared_by=clearance.cleared_by, police_cleared_at=clearance.cleared_at)
    )


async def contact_categories(
    conn: AsyncConnection, contact_ids: Iterable[str]
) -> dict[str, Category]:
    ids = list(set(contact_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(t.contacts.c.id, t.contacts.c.category).where(t.contacts.c.id.in_(ids))
    )
    return {r.id: Category(r.category) for r in rows.all()}
