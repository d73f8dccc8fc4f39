"""Appeals against decisions (R8).
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import (
    Appeal,
    AppealBy,
    AppealState,
)
from kiosk.store import schema as t

# Appeals --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppealRecord:
    appeal: Appeal
    result_decision_id: str | None
    decided_at: datetime | None


def _appeal(row: Row[Any]) -> AppealRecord:
    return AppealRecord(
        appeal=Appeal(
            id=row.id,
            contact_id=row.contact_id,
            decision_id=row.decision_id,
            by=AppealBy(row.by),
            filed_at=row.filed_at,
            text=row.text,
            state=AppealState(row.state),
        ),
        result_decision_id=row.result_decision_id,
        decided_at=row.decided_at,
    )


async def insert_appeal(conn: AsyncConnection, appeal: Appeal) -> None:
    await conn.execute(
        insert(t.appeals).values(
            id=appeal.id,
            contact_id=appeal.contact_id,
            decision_id=appeal.decision_id,
            by=appeal.by.value,
            filed_at=appeal.filed_at,
            text=appeal.text,
            state=appeal.state.value,
        )
    )


async def get_appeal(conn: AsyncConnection, appeal_id: str) -> AppealRecord | None:
    row = (await conn.execute(select(t.appeals).where(t.appeals.c.id == appeal_id))).first()
    return None if row is None else _appeal(row)


async def list_appeals(conn: AsyncConnection, contact_id: str) -> list[AppealRecord]:
    rows = (
        await conn.execute(
            select(t.appeals)
            .where(t.appeals.c.contact_id == contact_id)
            .order_by(t.appeals.c.filed_at, t.appeals.c.id)
        )
    ).all()
    return [_appeal(r) for r in rows]


async def close_appeal(
    conn: AsyncConnection,
    appeal_id: str,
    state: AppealState,
    result_decision_id: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        update(t.appeals)
        .where(t.appeals.c.id == appeal_id)
        .values(state=state.value, result_decision_id=result_decision_id, decided_at=now)
    )
