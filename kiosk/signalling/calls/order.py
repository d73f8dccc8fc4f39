"""Per-call ordering of effects: what the switchboard decided in order is done in order.

The switchboard decides synchronously, so two transitions of one call never
interleave; but carrying out their effects awaits (a transaction, a send,
the bridge). Each batch of effects names what it touches (calls, tablets,
visitors); a batch waits for the batches before it that touch the same
things, and unrelated calls go on side by side. The order is fixed when the
batch is queued, which is right after the transition, with no await between.

A batch runs in a task of its own: a caller that goes away (a visitor's
socket closing) cannot leave half of a decision undone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class KeyedOrder:
    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}
        self._running: set[asyncio.Task[object]] = set()

    def queue(self, keys: Iterable[str], work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``work`` after every earlier batch touching any of ``keys``."""
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[None] = loop.create_future()
        keys = set(keys)
        before = {id(f): f for k in keys if (f := self._tails.get(k)) is not None}
        for key in keys:
            self._tails[key] = mine

        async def run() -> T:
            try:
                if before:
                    await asyncio.gather(*before.values(), return_exceptions=True)
                return await work()
            finally:
                mine.set_result(None)
                for key in keys:
                    if self._tails.get(key) is mine:
                        del self._tails[key]

        task: asyncio.Task[T] = loop.create_task(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def drain(self) -> None:
        """Wait until every queued batch is done (a clean stop, tests)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
