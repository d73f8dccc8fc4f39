"""The suite's check that nothing blocks the event loop (tests/conftest.py, issue 12).

It must catch CPU work done in one loop callback, and only that: a callback
that waits (the machine is busy, or it sleeps on a thread) or hands its work
to a thread is not blocking the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import _LOOP_WATCH, BLOCKING_CPU_S


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(b"x" * 4096).digest()


@contextmanager
def watching() -> Iterator[list[tuple[float, str]]]:
    """The watch on, as during an unmarked test, and what it found; off again after (these
    tests are marked, so that the watch does not fail them for what they make it find)."""
    _LOOP_WATCH.slow.clear()
    _LOOP_WATCH.active = True
    found: list[tuple[float, str]] = []
    try:
        yield found
    finally:
        _LOOP_WATCH.active = False
        found += _LOOP_WATCH.slow
        _LOOP_WATCH.slow.clear()


async def _cpu_on_the_loop() -> None:
    _burn(BLOCKING_CPU_S * 2)


async def _cpu_on_a_thread() -> None:
    await asyncio.to_thread(_burn, BLOCKING_CPU_S * 2)


async def _waiting() -> None:
    time.sleep(BLOCKING_CPU_S * 2)  # blocks by the clock, but spends no CPU


@pytest.mark.blocks_loop
def test_cpu_work_in_one_callback_is_caught_with_its_coroutine() -> None:
    with watching() as found:
        asyncio.run(_cpu_on_the_loop())
    [(spent, what)] = found
    assert spent > BLOCKING_CPU_S
    assert "_cpu_on_the_loop" in what


@pytest.mark.blocks_loop
def test_work_on_a_thread_and_time_spent_waiting_are_not() -> None:
    with watching() as found:
        asyncio.run(_cpu_on_a_thread())
        asyncio.run(_waiting())
    assert found == []
