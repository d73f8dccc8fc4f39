"""Shared test set-up.

``KIOSK_STRICT=1`` (set by ``.ci/run``) turns every skipped test into a
failure: in CI a skip would hide a broken promise, such as a missing tool.

Hypothesis profiles, registered here and nowhere else: ``dev`` (the default,
for the edit-test loop) runs few examples; ``ci`` (``.ci/run`` sets
``HYPOTHESIS_PROFILE=ci``; ``--hypothesis-profile ci`` does the same) runs
many, derandomized so that a run is repeatable and a red build is the code's
fault, not the seed's. Neither has a deadline: the machine that runs the suite
may be busy, and speed is measured in bench/, never asserted in a test.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import inspect
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import argon2
import pytest
from hypothesis import HealthCheck, settings

from kiosk.crypto import revocation
from tests.harness import World

settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    max_examples=300,
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def examples(at_most: int) -> int:
    """The profile's example count, capped for a test whose every example is costly
    (a round trip to a live server or a database)."""
    return min(at_most, settings.default.max_examples)

STRICT = os.environ.get("KIOSK_STRICT") == "1"

# The PostgreSQL server every machine of this project has (trust auth).
POSTGRES_URL = os.environ.get(
    "KIOSK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in strict mode (KIOSK_STRICT=1): {reason}"


# --- a test that hangs ends its worker, never the whole run ---------------------------------
#
# pytest-timeout fails a test after ``timeout`` seconds (pyproject.toml) by raising inside it;
# a test stuck where that cannot reach (a thread joined while its loop closes, C code that
# holds on) would hold the run until CI's own limit and leave no name behind. Past HANG_S
# the worker prints every thread's stack and exits: xdist reports the test as the one its
# worker crashed in, starts another worker, and the run goes on.
HANG_S = 480


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


# --- nothing blocks the event loop (issue 12) ------------------------------------------------
#
# As python-zeroconf's conftest does, a test fails when the code under test blocks the test's
# event loop, which the servers started in-process, their clients and the test share (on a
# server, a blocked loop stalls every call it forwards). Two rules, both strict about *what*
# blocks so that a busy machine (CI runs two workers on a shared one) never fails a test:
# - work known to block (argon2, signing the CRL) run on the loop fails, however fast it was;
# - one callback (a task's step, a timer, a protocol's data_received) of code outside tests/
#   that spends over BLOCKING_CPU_S of CPU fails. CPU time of the loop's thread
#   (time.thread_time), not wall time: a callback that waited for a core did not block. Not
#   counted: a callback that imports a module (start-up work, as are fixtures: servers
#   starting), the garbage collector's time (it runs wherever the process happens to
#   allocate), and the tests' own coroutines and what they call directly (their CPU work is
#   not the server's).
# A test that blocks the loop on purpose is marked ``blocks_loop``.
BLOCKING_CPU_S = 0.05
TESTS = str(Path(__file__).resolve().parent)


class _LoopWatch:
    def __init__(self) -> None:
        self.active = False  # during an unmarked test's call
        self.found: list[tuple[float, str]] = []  # (CPU seconds, what blocked)
        self.blockers: list[str] = []  # known blocking work seen in the running callback
        self.in_callback = False
        self.run = asyncio.events.Handle._run
        self.collecting = self.collected = 0.0  # the main thread's CPU time in the collector
        gc.callbacks.append(self.gc_phase)

    def gc_phase(self, phase: str, info: dict[str, int]) -> None:
        if threading.current_thread() is threading.main_thread():
            if phase == "start":
                self.collecting = time.thread_time()
            else:
                self.collected += time.thread_time() - self.collecting

    def timed_run(self, handle: asyncio.Handle) -> None:
        if not self.active or threading.current_thread() is not threading.main_thread():
            return self.run(handle)
        modules, collected, start = len(sys.modules), self.collected, time.thread_time()
        self.in_callback, self.blockers = True, []
        try:
            return self.run(handle)
        finally:
            self.in_callback = False
            spent = time.thread_time() - start - (self.collected - collected)
            if len(sys.modules) == modules:
                self.found += [(spent, f"{b} in {_callback_name(handle)}") for b in self.blockers]
                if spent > BLOCKING_CPU_S and not _test_code(handle):
                    self.found.append((spent, _callback_name(handle)))

    def forbid(self, owner: Any, name: str) -> None:
        """``owner.name`` is known to block: called from a loop callback, it fails the test."""
        blocking = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if (self.in_callback and threading.current_thread() is threading.main_thread()
                    and not _called_by_a_test(sys._getframe(1))):
                self.blockers.append(f"{blocking.__qualname__} on the event loop")
            return blocking(*args, **kwargs)

        setattr(owner, name, watched)


def _callback_name(handle: asyncio.Handle) -> str:
    callback = handle._callback  # type: ignore[attr-defined]
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        return f"a step of {task.get_coro()!r}"
    return repr(callback)


def _called_by_a_test(frame: Any) -> bool:
    """The nearest coroutine up the stack is a test's: a test setting things up (making a
    CA, revoking by hand), not the server doing it on the loop."""
    while frame is not None:
        if frame.f_code.co_flags & inspect.CO_COROUTINE:
            return bool(frame.f_code.co_filename.startswith(TESTS))
        frame = frame.f_back
    return False


def _test_code(handle: asyncio.Handle) -> bool:
    task = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
    code = getattr(task.get_coro(), "cr_code", None) if isinstance(task, asyncio.Task) else None
    return code is not None and code.co_filename.startswith(TESTS)


_LOOP_WATCH = _LoopWatch()
asyncio.events.Handle._run = lambda handle: _LOOP_WATCH.timed_run(handle)  # type: ignore[method-assign]
_LOOP_WATCH.forbid(argon2.PasswordHasher, "hash")
_LOOP_WATCH.forbid(argon2.PasswordHasher, "verify")
_LOOP_WATCH.forbid(revocation, "_write_crl")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    _LOOP_WATCH.found.clear()
    _LOOP_WATCH.active = item.get_closest_marker("blocks_loop") is None
    try:
        result = yield
    finally:
        _LOOP_WATCH.active = False
    if _LOOP_WATCH.found:
        spent, what = max(_LOOP_WATCH.found)
        pytest.fail(
            f"the event loop was blocked {len(_LOOP_WATCH.found)} time(s); the worst, "
            f"{spent * 1000:.0f} ms of CPU: {what}",
            pytrace=False,
        )
    return result


# --- worlds: a running server and its admin API, tablets and visitors on demand -------------


@asynccontextmanager
async def running_world(root: Path, extra_config: str = "") -> AsyncIterator[World]:
    """A world started from tests/harness.py's copy of a deployment, closed at the end."""
    w = World(root, extra_config=extra_config)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


class _ModuleWorlds:
    """The module's shared world, started when a test first asks for it."""

    def __init__(self, module: Any, root: Path) -> None:
        self.module = module
        self.root = root
        self.shared: World | None = None

    def config(self, root: Path) -> str:
        make = getattr(self.module, "world_config", None)
        return make(root) if make is not None else ""

    async def ready(self, w: World) -> None:
        hook = getattr(self.module, "world_ready", None)
        if hook is not None:
            await hook(w)

    async def get(self) -> World:
        if self.shared is None:
            w = World(self.root, extra_config=self.config(self.root))
            await w.start()
            self.shared = w
            # R9: a facility with room for the calls of every test that shares it; the
            # calls of one test never take another's tablet or monitoring officer.
            # (Capacity itself is checked where it is the point: a fresh world.)
            assert w.api is not None
            await w.api.call("PATCH", "/facility", {"tablets": 1000, "monitoring_staff": 1000})
            await self.ready(w)
        return self.shared


@pytest.fixture(scope="module")
async def _module_worlds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[_ModuleWorlds]:
    worlds = _ModuleWorlds(request.module, tmp_path_factory.mktemp("world"))
    try:
        yield worlds
    finally:
        if worlds.shared is not None:
            await worlds.shared.close()


@pytest.fixture
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, _module_worlds: _ModuleWorlds
) -> AsyncIterator[World]:
    """A running server with an admin's API; tablets and visitors on demand.

    One per module, shared by its tests: each test makes its own inmates, tablet
    serials and bookings, and what it leaves behind is tidied after it (its tablets
    and visitors closed, facility closures and restrictions it added lifted, the
    server started again if it stopped it). A module whose tests assert on the
    server's totals (metrics, the whole audit chain, capacity) is marked
    ``fresh_world`` and gets a world of its own for each test. A module may define
    ``world_config(root) -> str`` (extra TOML) and ``async world_ready(world)``.
    """
    if request.node.get_closest_marker("fresh_world") is not None:
        async with running_world(tmp_path, _module_worlds.config(tmp_path)) as w:
            await _module_worlds.ready(w)
            yield w
        return
    w = await _module_worlds.get()
    await _running(w)
    tablets, visitors = len(w.tablets), len(w.visitors)
    before = await _facility_periods(w)
    try:
        yield w
    finally:
        for visitor in w.visitors[visitors:]:
            await visitor.close()
        for tablet in w.tablets[tablets:]:
            await tablet.close()
        del w.visitors[visitors:], w.tablets[tablets:]
        await _running(w)
        for path in sorted(await _facility_periods(w) - before):
            await w.api.call("DELETE", path)  # type: ignore[union-attr]


async def _running(w: World) -> None:
    if w.server is None or not w.server.alive():
        await w.start_server()


async def _facility_periods(w: World) -> set[str]:
    """The facility's closures and restrictions (R15, R16), as the paths that lift them."""
    assert w.api is not None
    facility = await w.api.call("GET", "/facility")
    return {f"/facility/closures/{c['id']}" for c in facility["closures"]} | {
        f"/facility/restrictions/{r['id']}" for r in facility["restrictions"]
    }


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A service manager's notify socket (abstract, datagrams) and its NOTIFY_SOCKET value."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"kiosk-notify-{uuid.uuid4().hex}"
    sock.bind(b"\0" + name.encode())
    sock.setblocking(False)
    try:
        yield sock, "@" + name
    finally:
        sock.close()
