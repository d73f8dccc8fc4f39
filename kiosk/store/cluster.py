"""The lease over a cluster's live calls, and the writes only its holder may make (issue 14).

One row of ``cluster_leases`` names the node that owns the live calls, its
epoch and when the lease runs out. Times are the database's own (``now()``),
so the nodes' clocks need not agree. A node renews its lease or, once it has
run out, takes it with the next epoch; an owner's every write first holds the
lease row (``FOR SHARE``) and checks its epoch, so a node that lost the lease
writes nothing (fencing). Calls carry the epoch of the owner that may change
them; a change from any other epoch, or to a call already ended, is refused
(:class:`Fenced`), which keeps a call's end recorded once.

PostgreSQL only: a cluster refuses to start on SQLite.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import CallRecord
from kiosk.store import schema as t
from kiosk.store.rows import columns, record

LEASE = "calls"


class Fenced(Exception):
    """This node may not make the write: its lease epoch is not the current one,
    or the call has ended already (a sweep, or another owner, closed it)."""


async def take_lease(
    conn: AsyncConnection, node: str, held: int | None, seconds: float
) -> int | None:
    """Renew the lease held at epoch ``held``, or take it with the next epoch if it ran
    out; the epoch now held, or None when another node holds it."""
    c = t.cluster_leases.c
    until = func.now() + timedelta(seconds=seconds)
    ours = and_(c.node == node, c.epoch == (held if held is not None else -1))
    insert = pg_insert(t.cluster_leases).values(name=LEASE, node=node, epoch=1, expires_at=until)
    stmt = insert.on_conflict_do_update(
        index_elements=[c.name],
        set_={
            "node": node,
            "epoch": case((ours, c.epoch), else_=c.epoch + 1),
            "expires_at": until,
        },
        where=ours | (c.expires_at < func.now()),
    ).returning(t.cluster_leases.c.epoch)
    epoch = (await conn.execute(stmt)).scalar()
    return None if epoch is None else int(epoch)


async def release_lease(conn: AsyncConnection, node: str, epoch: int) -> None:
    """Let the lease run out now: a stopping owner hands its calls to the next node."""
    c = t.cluster_leases.c
    await conn.execute(
        update(t.cluster_leases)
        .where(c.name == LEASE, c.node == node, c.epoch == epoch)
        .values(expires_at=func.now() - timedelta(seconds=1))
    )


async def hold_lease(conn: AsyncConnection, epoch: int) -> None:
    """Inside an owner's write: the lease is still ours at ``epoch`` (or Fenced)."""
    c = t.cluster_leases.c
    row = (
        await conn.execute(
            select(c.epoch, c.expires_at > func.now())
            .where(c.name == LEASE)
            .with_for_update(read=True)
        )
    ).first()
    if row is None or row[0] != epoch or not row[1]:
        raise Fenced(f"the lease is no longer held at epoch {epoch}")


async def lease_holder(conn: AsyncConnection) -> tuple[str, int] | None:
    """The node holding the lease and its epoch, if it has not run out."""
    c = t.cluster_leases.c
    row = (
        await conn.execute(
            select(c.node, c.epoch).where(c.name == LEASE, c.expires_at > func.now())
        )
    ).first()
    return None if row is None else (str(row[0]), int(row[1]))


async def adopt_calls(conn: AsyncConnection, node: str, epoch: int) -> list[CallRecord]:
    """The live calls, now owned by ``node`` at ``epoch``: their previous owner may not
    change them any more."""
    c = t.calls.c
    rows = await conn.execute(
        update(t.calls)
        .where(c.ended_at.is_(None), c.lease_epoch < epoch)
        .values(owner_node=node, lease_epoch=epoch)
        .returning(*t.calls.c)
    )
    return [record(CallRecord, r) for r in rows.all()]


async def insert_owned(conn: AsyncConnection, call: CallRecord, node: str, epoch: int) -> None:
    await conn.execute(
        t.calls.insert().values(**columns(call), owner_node=node, lease_epoch=epoch)
    )


async def update_owned(conn: AsyncConnection, call: CallRecord, epoch: int) -> None:
    """What a transition moves, only by the call's owner and only while it is live."""
    moved = columns(call, "state", "connected_at", "ended_at", "end_reason", "connected_seconds")
    c = t.calls.c
    result = await conn.execute(
        update(t.calls)
        .where(c.id == call.id, c.lease_epoch == epoch, c.ended_at.is_(None))
        .values(**moved)
    )
    if result.rowcount != 1:
        raise Fenced(f"call {call.id} is not live under epoch {epoch}")


async def overdue_calls(conn: AsyncConnection, grace: timedelta) -> list[CallRecord]:
    """Live calls past their end by more than ``grace``, locked for this transaction;
    rows another node is closing are skipped (``FOR UPDATE SKIP LOCKED``)."""
    c = t.calls.c
    rows = await conn.execute(
        select(t.calls)
        .where(c.ended_at.is_(None), c.not_after < func.now() - grace)
        .order_by(c.not_after)
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    return [record(CallRecord, r) for r in rows.all()]
