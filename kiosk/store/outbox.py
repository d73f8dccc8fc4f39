"""The mail outbox (issue 12): mails stored with the change that caused them.

A mail is inserted in the transaction of its change, so it exists exactly when
the change does. A sender *claims* a due mail by moving its ``next_attempt_at``
forward by a lease, in a compare-and-set that one sender wins on both engines
(several server processes may share PostgreSQL); it then sends and records
the outcome. A sender killed while sending leaves the mail pending, due again
when the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.store import schema as t
from kiosk.store.rows import record

PENDING, SENT, DEAD = "pending", "sent", "dead"
STATES = (PENDING, SENT, DEAD)
ERROR_LENGTH = 200


@dataclass(frozen=True, slots=True)
class OutboxMail:
    id: str
    kind: str
    state: str
    message: bytes | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None


async def enqueue(
    conn: AsyncConnection, mail_id: str, kind: str, message: bytes, now: datetime
) -> None:
    """A mail to send, due at once; in the caller's transaction."""
    await conn.execute(
        insert(t.outbox).values(
            id=mail_id, kind=kind, state=PENDING, message=message, attempts=0,
            created_at=now, next_attempt_at=now,
        )
    )


async def claim_next(
    conn: AsyncConnection, now: datetime, lease_until: datetime
) -> OutboxMail | None:
    """The pending mail due first at ``now``, claimed until ``lease_until`` and counted as
    an attempt; None when none is due. A mail another sender claims first is passed by."""
    o = t.outbox
    due = (o.c.state == PENDING) & (o.c.next_attempt_at <= now)
    candidates = (
        await conn.execute(select(o.c.id).where(due).order_by(o.c.next_attempt_at).limit(8))
    ).scalars().all()
    for mail_id in candidates:
        won = await conn.execute(
            update(o)
            .where(due & (o.c.id == mail_id))
            .values(next_attempt_at=lease_until, attempts=o.c.attempts + 1)
        )
        if won.rowcount == 1:
            row = (await conn.execute(select(o).where(o.c.id == mail_id))).one()
            return record(OutboxMail, row)
    return None


async def mark_sent(conn: AsyncConnection, mail_id: str, now: datetime) -> None:
    """Sent: the message goes (its links are credentials), the row stays as a record."""
    await conn.execute(
        update(t.outbox)
        .where(t.outbox.c.id == mail_id)
        .values(state=SENT, sent_at=now, message=None, last_error=None)
    )


async def mark_failed(
    conn: AsyncConnection, mail_id: str, error: str, retry_at: datetime | None
) -> None:
    """A failed attempt: due again at ``retry_at``, or ``dead`` when there is none."""
    values: dict[str, object] = {"last_error": error[:ERROR_LENGTH]}
    if retry_at is None:
        values["state"] = DEAD
    else:
        values["next_attempt_at"] = retry_at
    await conn.execute(update(t.outbox).where(t.outbox.c.id == mail_id).values(**values))


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending mail is due (or its lease runs out)."""
    o = t.outbox
    query = (
        select(o.c.next_attempt_at)
        .where(o.c.state == PENDING)
        .order_by(o.c.next_attempt_at)
        .limit(1)
    )
    value: datetime | None = (await conn.execute(query)).scalar()
    return value


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """Mails by state, every state present."""
    o = t.outbox
    rows = (await conn.execute(select(o.c.state, func.count()).group_by(o.c.state))).all()
    found = {state: 0 for state in STATES}
    found.update({state: int(n) for state, n in rows})
    return found


async def list_mails(conn: AsyncConnection, state: str | None = None) -> list[OutboxMail]:
    """Mails, newest first (for the operator: kinds, states, attempts, errors)."""
    o = t.outbox
    query = select(o).order_by(o.c.created_at.desc())
    if state is not None:
        query = query.where(o.c.state == state)
    return [record(OutboxMail, row) for row in (await conn.execute(query)).all()]


async def retry_dead(conn: AsyncConnection, now: datetime, mail_id: str | None = None) -> int:
    """Dead mails (or one) pending again with fresh attempts, once the cause is fixed."""
    o = t.outbox
    where = o.c.state == DEAD
    if mail_id is not None:
        where = where & (o.c.id == mail_id)
    result = await conn.execute(
        update(o).where(where).values(state=PENDING, attempts=0, next_attempt_at=now)
    )
    return int(result.rowcount)
