"""Tablets' last-seen times, written to the database in batches.

A write per tablet per minute is 166 transactions a second for 10,000
tablets, and a forced write on every connect and disconnect made a mass
reconnection (a server restart) a queue of thousands of transactions. Here
the listener notes each tablet it hears from (a dictionary assignment) and
one task writes them all every ``interval`` seconds, in chunks of
``CHUNK`` rows per transaction so that no one transaction holds SQLite's
write lock for long. ``devices.last_seen_at`` is therefore at most
``interval`` seconds behind (plus the write itself), and exact to the frame
when written: the time noted is when the tablet was heard, not when the
batch was written. A failed write keeps its times for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.runtime.logs import get_logger
from kiosk.signalling.devices import registry

log = get_logger(__name__)

CHUNK = 500  # rows per transaction
MIN_INTERVAL = 0.05  # seconds; an interval of 0 (tests) must not spin


class LastSeen:
    """Noted sightings (device id -> monotonic time) and the task that writes them."""

    def __init__(
        self,
        engine: AsyncEngine,
        interval: Callable[[], float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.interval = interval  # read each round: tests change the hub's timers
        self.monotonic = monotonic
        self.now = now
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # rows written so far (metrics, tests)

    def note(self, device_id: str, at: float) -> None:
        self._pending[device_id] = at

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="device last-seen writer")

    async def stop(self) -> None:
        """Stop the task and write what is noted (a last batch at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(self.interval(), MIN_INTERVAL))
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        mono, wall = self.monotonic(), self.now()
        seen = [(d, wall - timedelta(seconds=max(0.0, mono - at))) for d, at in batch.items()]
        for first in range(0, len(seen), CHUNK):
            chunk = seen[first : first + CHUNK]
            try:
                await registry.touch_many(self.engine, chunk)
            except BaseException as exc:
                # Kept for the next batch (or the last one at shutdown), unless heard since.
                for device_id, _ in seen[first:]:
                    self._pending.setdefault(device_id, batch[device_id])
                if not isinstance(exc, Exception):
                    raise
                log.exception("device last-seen update failed", devices=len(seen) - first)
                return
            self.written += len(chunk)
