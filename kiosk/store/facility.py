"""The facility: settings, closures (R15) and restrictions (R16).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Closure, Facility, FacilitySettings, Restriction
from kiosk.store import schema as t
from kiosk.store.ids import new_id
from kiosk.store.rows import columns, record

SETTING_COLUMNS = (
    "contact_limit",
    "weekly_quota_minutes",
    "parent_weekly_quota_minutes",
    "tablets",
    "rooms",
    "monitoring_staff",
    "max_call_minutes",
    "visitor_phone",
    "visitor_email",
    "visitor_hours",
)


async def get_facility(conn: AsyncConnection) -> Facility | None:
    """The deployment's facility (one per server) with its closures and restrictions."""
    row = (await conn.execute(select(t.facilities).order_by(t.facilities.c.id).limit(1))).first()
    if row is None:
        return None
    closures = (
        await conn.execute(
            select(t.closures)
            .where(t.closures.c.facility_id == row.id)
            .order_by(t.closures.c.start, t.closures.c.id)
        )
    ).all()
    restrictions = (
        await conn.execute(
            select(t.restrictions)
            .where(t.restrictions.c.facility_id == row.id)
            .order_by(t.restrictions.c.start, t.restrictions.c.id)
        )
    ).all()
    settings = FacilitySettings(
        contact_limit=row.contact_limit,
        weekly_quota_minutes=row.weekly_quota_minutes,
        parent_weekly_quota_minutes=row.parent_weekly_quota_minutes,
        tablets=row.tablets,
        rooms=tuple(row.rooms),
        monitoring_staff=row.monitoring_staff,
        max_call_minutes=row.max_call_minutes,
        visitor_phone=row.visitor_phone,
        visitor_email=row.visitor_email,
        visitor_hours=row.visitor_hours,
        closures=tuple(record(Closure, r) for r in closures),
        restrictions=tuple(record(Restriction, r) for r in restrictions),
    )
    return Facility(id=row.id, name=row.name, timezone=row.timezone, settings=settings)


async def lock_facility(conn: AsyncConnection) -> None:
    """Serialise facility-wide checks (R9 capacity) between writers on PostgreSQL."""
    await conn.execute(select(t.facilities.c.id).with_for_update())


async def ensure_facility(conn: AsyncConnection, name: str = "Facility") -> Facility:
    """The facility, created with default settings when the database has none."""
    facility = await get_facility(conn)
    if facility is not None:
        return facility
    defaults = FacilitySettings()
    await conn.execute(
        insert(t.facilities).values(
            id=new_id(),
            name=name,
            rooms=list(defaults.rooms),
            **{c: getattr(defaults, c) for c in SETTING_COLUMNS if c != "rooms"},
        )
    )
    facility = await get_facility(conn)
    assert facility is not None
    return facility


async def update_facility(
    conn: AsyncConnection, facility_id: str, values: Mapping[str, Any]
) -> None:
    if values:
        await conn.execute(
            update(t.facilities).where(t.facilities.c.id == facility_id).values(**values)
        )


async def insert_closure(conn: AsyncConnection, facility_id: str, closure: Closure) -> None:
    await conn.execute(insert(t.closures).values(**columns(closure), facility_id=facility_id))


async def delete_closure(conn: AsyncConnection, closure_id: str) -> bool:
    result = await conn.execute(delete(t.closures).where(t.closures.c.id == closure_id))
    return bool(result.rowcount)


async def insert_restriction(
    conn: AsyncConnection, facility_id: str, restriction: Restriction
) -> None:
    await conn.execute(
        insert(t.restrictions).values(**columns(restriction), facility_id=facility_id)
    )


async def get_restriction(conn: AsyncConnection, restriction_id: str) -> Restriction | None:
    row = (
        await conn.execute(select(t.restrictions).where(t.restrictions.c.id == restriction_id))
    ).first()
    return None if row is None else record(Restriction, row)


async def delete_restriction(conn: AsyncConnection, restriction_id: str) -> bool:
    result = await conn.execute(delete(t.restrictions).where(t.restrictions.c.id == restriction_id))
    return bool(result.rowcount)
