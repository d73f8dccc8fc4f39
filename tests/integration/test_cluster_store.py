"""The lease over a cluster's live calls on PostgreSQL (issue 14): only the current epoch
changes a call, a call ends once, and overdue calls are swept by one node each."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.domain.model import CallState
from kiosk.domain.reasons import EndReason
from kiosk.store import calls
from kiosk.store import cluster as lease
from kiosk.store.db import write_transaction
from tests.integration.test_store_records import a_booked_contact, a_call

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("migrated_url", ["postgres"], indirect=True),
]


async def _take(engine: AsyncEngine, node: str, held: int | None, seconds: float) -> int | None:
    async with write_transaction(engine) as conn:
        return await lease.take_lease(conn, node, held, seconds)


async def test_a_lease_is_renewed_by_its_holder_and_taken_by_another_only_when_it_runs_out(
    engine: AsyncEngine,
) -> None:
    assert await _take(engine, "a", None, 60) == 1
    assert await _take(engine, "b", None, 60) is None
    assert await _take(engine, "a", 1, 60) == 1
    async with write_transaction(engine) as conn:
        await lease.release_lease(conn, "a", 1)  # a stopping owner hands over
    assert await _take(engine, "b", None, 60) == 2
    assert await _take(engine, "a", 1, 60) is None  # the old epoch renews nothing


async def test_only_the_current_epoch_changes_a_call_and_an_end_is_written_once(
    engine: AsyncEngine,
) -> None:
    async with write_transaction(engine) as conn:
        booking, device_id = await a_booked_contact(conn)
    first = await _take(engine, "a", None, 60)
    assert first == 1
    call = a_call(booking, device_id)
    async with write_transaction(engine) as conn:
        await lease.hold_lease(conn, first)
        await lease.insert_owned(conn, call, "a", first)
    async with write_transaction(engine) as conn:
        await lease.release_lease(conn, "a", first)
    second = await _take(engine, "b", None, 60)
    assert second == 2
    async with write_transaction(engine) as conn:
        [adopted] = await lease.adopt_calls(conn, "b", second)
    assert adopted.id == call.id
    ended = replace(
        call, state=CallState.ENDED, ended_at=call.not_after, end_reason=EndReason.TIME_UP
    )
    with pytest.raises(lease.Fenced):  # the old owner: its lease is gone
        async with write_transaction(engine) as conn:
            await lease.hold_lease(conn, first)
    with pytest.raises(lease.Fenced):  # and the call is not its epoch's any more
        async with write_transaction(engine) as conn:
            await lease.update_owned(conn, ended, first)
    async with write_transaction(engine) as conn:
        await lease.hold_lease(conn, second)
        await lease.update_owned(conn, ended, second)
    with pytest.raises(lease.Fenced):  # ended once: a second end changes nothing
        async with write_transaction(engine) as conn:
            await lease.update_owned(conn, ended, second)
    async with engine.connect() as conn:
        stored = await calls.get_call(conn, call.id)
    assert stored is not None and stored.end_reason is EndReason.TIME_UP


async def test_two_nodes_sweeping_at_once_close_an_overdue_call_once(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        booking, device_id = await a_booked_contact(conn)
        past = datetime.now(UTC) - timedelta(minutes=5)
        call = replace(
            a_call(booking, device_id), not_before=past - timedelta(minutes=10), not_after=past
        )
        await calls.insert_call(conn, call)

    async def sweep() -> list[str]:
        async with write_transaction(engine) as conn:
            found = await lease.overdue_calls(conn, timedelta(seconds=1))
            await asyncio.sleep(0.2)  # hold the row while the other sweeps
            for c in found:
                await calls.end_call(conn, c.id, EndReason.TIME_UP, c.not_after, 0)
            return [c.id for c in found]

    first, second = await asyncio.gather(sweep(), sweep())
    assert sorted(first + second) == [call.id]
