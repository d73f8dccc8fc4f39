"""The visit office's work queue: what waits for staff, read across the aggregates.

Contacts awaiting confirmation or assessment (R3, R4), appeals not yet decided
(R8), bookings of remand inmates without police clearance (R11) and bookings
held by a restriction (R16), each with the inmate's name, optionally narrowed
to a name or an inmate's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import AppealState, BookingState, ContactStatus
from kiosk.store import schema as t

WAITING_CONTACT = (ContactStatus.AWAITING_CONFIRMATION, ContactStatus.AWAITING_ASSESSMENT)


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One thing that waits: its kind, what it is about and since when."""

    kind: str  # contact_confirmation, contact_assessment, appeal, police_clearance, held
    inmate_id: str
    inmate_name: str
    contact_id: str
    contact_name: str
    since: datetime
    booking_id: str | None = None
    appeal_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def _matching(search: str) -> ColumnElement[bool]:
    """A name (inmate's or contact's, any case, any part) or the start of the inmate's id."""
    if not search:
        return ~false()
    needle = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(
        func.lower(t.inmates.c.name).like(f"%{needle}%", escape="\\"),
        func.lower(t.contacts.c.name).like(f"%{needle}%", escape="\\"),
        func.lower(t.inmates.c.id).like(f"{needle}%", escape="\\"),
    )


async def waiting(conn: AsyncConnection, now: datetime, search: str = "") -> list[QueueItem]:
    """Everything that waits for the visit office, oldest first within each kind."""
    people = t.contacts.join(t.inmates, t.contacts.c.inmate_id == t.inmates.c.id)
    named = (t.inmates.c.id, t.inmates.c.name, t.contacts.c.id, t.contacts.c.name)
    found: list[QueueItem] = []

    contacts = await conn.execute(
        select(*named, t.contacts.c.status, t.contacts.c.created_at)
        .select_from(people)
        .where(t.contacts.c.status.in_([s.value for s in WAITING_CONTACT]), _matching(search))
        .order_by(t.contacts.c.created_at, t.contacts.c.id)
    )
    for row in list[Any](contacts.all()):
        kind = (
            "contact_confirmation"
            if row[4] == ContactStatus.AWAITING_CONFIRMATION
            else "contact_assessment"
        )
        found.append(QueueItem(kind, row[0], row[1], row[2], row[3], row[5]))

    appeals = await conn.execute(
        select(*named, t.appeals.c.id, t.appeals.c.filed_at)
        .select_from(t.appeals.join(people, t.appeals.c.contact_id == t.contacts.c.id))
        .where(t.appeals.c.state == AppealState.PENDING.value, _matching(search))
        .order_by(t.appeals.c.filed_at, t.appeals.c.id)
    )
    for row in list[Any](appeals.all()):
        found.append(QueueItem("appeal", row[0], row[1], row[2], row[3], row[5], appeal_id=row[4]))

    booked = t.bookings.join(people, t.bookings.c.contact_id == t.contacts.c.id)
    bookings = await conn.execute(
        select(*named, t.bookings.c.id, t.bookings.c.state, t.bookings.c.start, t.bookings.c.end)
        .select_from(booked)
        .where(
            t.bookings.c.end > now,
            or_(
                t.bookings.c.state == BookingState.HELD.value,  # R16
                and_(  # R11
                    t.bookings.c.state == BookingState.BOOKED.value,
                    t.inmates.c.remand.is_(True),
                    t.bookings.c.police_cleared_at.is_(None),
                ),
            ),
            _matching(search),
        )
        .order_by(t.bookings.c.start, t.bookings.c.id)
    )
    for row in list[Any](bookings.all()):
        kind = "held" if row[5] == BookingState.HELD else "police_clearance"
        found.append(
            QueueItem(
                kind,
                row[0],
                row[1],
                row[2],
                row[3],
                row[6],
                booking_id=row[4],
                start=row[6],
                end=row[7],
            )
        )
    return found
