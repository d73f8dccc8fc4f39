"""Appeals against decisions (R8).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Appeal
from kiosk.store import schema as t
from kiosk.store.rows import columns, record


async def insert_appeal(conn: AsyncConnection, appeal: Appeal) -> None:
    await conn.execute(insert(t.appeals).values(**columns(appeal)))


async def get_appeal(conn: AsyncConnection, appeal_id: str) -> Appeal | None:
    row = (await conn.execute(select(t.appeals).where(t.appeals.c.id == appeal_id))).first()
    return None if row is None else record(Appeal, row)


async def list_appeals(conn: AsyncConnection, contact_id: str) -> list[Appeal]:
    rows = (
        await conn.execute(
            select(t.appeals)
            .where(t.appeals.c.contact_id == contact_id)
            .order_by(t.appeals.c.filed_at, t.appeals.c.id)
        )
    ).all()
    return [record(Appeal, r) for r in rows]


async def close_appeal(conn: AsyncConnection, appeal: Appeal) -> None:
    """Store the decided appeal: upheld, or changed with its new decision."""
    await conn.execute(
        update(t.appeals)
        .where(t.appeals.c.id == appeal.id)
        .values(**columns(appeal, "state", "result_decision_id", "decided_at"))
    )
