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
from typing import Any

import pytest

from kiosk.signalling import auth
from tests.conftest import _LOOP_WATCH, BLOCKING_CPU_S


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(b"x" * 4096).digest()


@contextmanager
def watching() -> Iterator[list[tuple[float, str]]]:
    """The watch on, as during an unmarked test, and what it found; off again after (these
    tests are marked, so that the watch does not fail them for what they make it find)."""
    _LOOP_WATCH.found.clear()
    _LOOP_WATCH.active = True
    found: list[tuple[float, str]] = []
    try:
        yield found
    finally:
        _LOOP_WATCH.active = False
        found += _LOOP_WATCH.found
        _LOOP_WATCH.found.clear()


async def _cpu_on_the_loop() -> None:
    # A plain callback, as a protocol's data_received is (a test's own coroutines are not
    # counted: their CPU work is not the server's).
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: (_burn(BLOCKING_CPU_S * 2), done.set_result(1)))
    await done


async def _cpu_in_a_test_coroutine() -> None:
    _burn(BLOCKING_CPU_S * 2)


async def _cpu_on_a_thread() -> None:
    await asyncio.to_thread(_burn, BLOCKING_CPU_S * 2)


async def _waiting() -> None:
    time.sleep(BLOCKING_CPU_S * 2)  # blocks by the clock, but spends no CPU


# A coroutine of the code under test (outside tests/) that hashes on the loop.
_SERVER_CODE: dict[str, Any] = {"auth": auth}
exec(
    compile("async def check():\n    auth.verify_password(auth.hash_password('x'), 'x')\n",
            "kiosk/signalling/example.py", "exec"),
    _SERVER_CODE,
)


async def _argon2_on_the_loop() -> None:
    await _SERVER_CODE["check"]()


async def _argon2_by_a_test() -> None:
    auth.verify_password(auth.hash_password("x"), "x")  # a test setting up: its own business


async def _argon2_off_the_loop() -> None:
    assert await auth.verify_password_off_loop(await auth.hash_password_off_loop("x"), "x")


@pytest.mark.blocks_loop
def test_cpu_work_in_one_callback_is_caught() -> None:
    with watching() as found:
        asyncio.run(_cpu_on_the_loop())
    [(spent, what)] = found
    assert spent > BLOCKING_CPU_S
    assert "_cpu_on_the_loop" in what


@pytest.mark.blocks_loop
def test_known_blocking_work_on_the_loop_is_caught_however_short() -> None:
    with watching() as found:
        asyncio.run(_argon2_on_the_loop())
    whats = [what for _, what in found]
    assert [w.split(" on the event loop")[0] for w in whats] == [
        "PasswordHasher.hash", "PasswordHasher.verify"]
    assert all("_argon2_on_the_loop" in w for w in whats)
    with watching() as found:
        asyncio.run(_argon2_by_a_test())
    assert found == []


@pytest.mark.blocks_loop
def test_work_on_a_thread_time_spent_waiting_and_tests_own_work_are_not() -> None:
    with watching() as found:
        asyncio.run(_cpu_on_a_thread())
        asyncio.run(_waiting())
        asyncio.run(_cpu_in_a_test_coroutine())
        asyncio.run(_argon2_off_the_loop())
    assert found == []
