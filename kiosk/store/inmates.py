"""Inmates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Inmate
from kiosk.store import schema as t
from kiosk.store.rows import columns, record


async def list_inmates(conn: AsyncConnection, active: bool | None = None) -> list[Inmate]:
    query = select(t.inmates).order_by(t.inmates.c.name, t.inmates.c.id)
    if active is not None:
        query = query.where(t.inmates.c.active.is_(active))
    return [record(Inmate, r) for r in (await conn.execute(query)).all()]


async def get_inmate(
    conn: AsyncConnection, inmate_id: str, *, for_update: bool = False
) -> Inmate | None:
    """``for_update`` locks the row on PostgreSQL (SQLite's write transaction already does),
    so that two requests counting the inmate's contacts (R2) cannot both pass."""
    query = select(t.inmates).where(t.inmates.c.id == inmate_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else record(Inmate, row)


async def insert_inmate(conn: AsyncConnection, inmate: Inmate, now: datetime) -> None:
    await conn.execute(insert(t.inmates).values(**columns(inmate), created_at=now))


async def update_inmate(conn: AsyncConnection, inmate_id: str, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(update(t.inmates).where(t.inmates.c.id == inmate_id).values(**values))
