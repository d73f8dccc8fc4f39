"""The switchboard's writes: one database transaction per event, with its audit entries.

A call's record, its booking used, a breach (R14) and every audit entry of
one event commit together or not at all. Audit subjects must be ids; a
value that cannot be one (an id a client made up) is left out and counted
in the entry's details rather than failing the write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.audit.chain import ID_RE
from kiosk.domain.model import BookingState, CallRecord
from kiosk.domain.reasons import EndReason
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard.calls import closed_out
from kiosk.signalling.context import ServerContext
from kiosk.store import calls as store_calls
from kiosk.store import cluster as store_cluster
from kiosk.store.bookings import set_booking_state
from kiosk.store.db import write_transaction


def audit_subjects(subjects: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The subjects that are ids, and the kinds of those that are not."""
    good = {k: v for k, v in subjects.items() if ID_RE.fullmatch(v)}
    return good, sorted(set(subjects) - set(good))


async def append_audit(
    ctx: ServerContext,
    actor: str,
    action: str,
    subjects: Mapping[str, str],
    details: Mapping[str, object],
    conn: AsyncConnection | None = None,
) -> None:
    good, bad = audit_subjects(subjects)
    extra = {"not_ids": bad} if bad else {}
    await ctx.audit.append(actor, action, good, {**details, **extra}, conn=conn)


@dataclass(frozen=True, slots=True)
class Fence:
    """A cluster's owner of the live calls: its node and lease epoch (issue 14). Its
    writes hold the lease and change only calls of its epoch (kiosk/store/cluster.py)."""

    node: str
    epoch: int


async def write(
    ctx: ServerContext, effects: Iterable[fx.Effect], now: datetime, fence: Fence | None = None
) -> None:
    """Apply the writes of one event in one transaction (only under the lease, if fenced)."""
    async with write_transaction(ctx.engine) as conn:
        if fence is not None:
            await store_cluster.hold_lease(conn, fence.epoch)
        for effect in effects:
            if isinstance(effect, fx.Persist):
                await _persist(conn, effect, fence)
            elif isinstance(effect, fx.RecordBreach):
                await _breach(ctx, conn, effect, now)
            elif isinstance(effect, fx.Audit):
                await append_audit(
                    ctx, effect.actor, effect.action, effect.subjects, effect.details, conn
                )


async def _persist(conn: AsyncConnection, effect: fx.Persist, fence: Fence | None = None) -> None:
    if fence is not None and effect.new:
        await store_cluster.insert_owned(conn, effect.call, fence.node, fence.epoch)
    elif fence is not None:
        await store_cluster.update_owned(conn, effect.call, fence.epoch)
    elif effect.new:
        await store_calls.insert_call(conn, effect.call)
    else:
        await store_calls.update_call(conn, effect.call)
    if effect.booking_used:
        await set_booking_state(conn, [effect.call.booking_id], BookingState.USED)


async def _breach(
    ctx: ServerContext, conn: AsyncConnection, effect: fx.RecordBreach, now: datetime
) -> None:
    breach_id = str(uuid.uuid4())
    call = effect.call
    await store_calls.record_breach(conn, breach_id, call, effect.staff_id, now, effect.note)
    await ctx.audit.append(
        f"staff:{effect.staff_id}",
        "call.breach_recorded",
        {"call": call.id, "inmate": call.inmate_id, "contact": call.contact_id}
        | {"breach": breach_id},
        conn=conn,
    )


async def close_out(ctx: ServerContext, now: datetime) -> list[CallRecord]:
    """At start-up: end the calls a previous process left live, with the right reason."""
    closed: list[CallRecord] = []
    async with write_transaction(ctx.engine) as conn:
        for call in await store_calls.unfinished_calls(conn):
            ended, used = closed_out(call, now)
            await _persist(conn, fx.Persist(ended, booking_used=used))
            assert ended.end_reason is not None
            await ctx.audit.append(
                "system",
                "call.closed_out",
                {"call": call.id, "device": call.device_id, "booking": call.booking_id},
                {"reason": ended.end_reason.value, "state": call.state.value},
                conn=conn,
            )
            closed.append(ended)
    return closed


async def sweep_overdue(
    ctx: ServerContext, node: str, grace: timedelta, now: datetime
) -> list[str]:
    """Issue 14: end the live calls past their end whose owner did not (it died, and no
    node has adopted them yet). Any node may; each call is closed by one of them, once."""
    ended: list[str] = []
    async with write_transaction(ctx.engine) as conn:
        for call in await store_cluster.overdue_calls(conn, grace):
            closed, used = closed_out(call, max(now, call.not_after))
            await _persist(conn, fx.Persist(closed, booking_used=used))
            await ctx.audit.append(
                "system",
                "call.ended",
                {"call": call.id, "device": call.device_id, "booking": call.booking_id},
                {
                    "reason": EndReason.TIME_UP.value,
                    "connected_seconds": closed.connected_seconds,
                    "swept_by": node,
                },
                conn=conn,
            )
            ended.append(call.id)
    return ended
