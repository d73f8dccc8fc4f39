"""sd_notify client against a real unix datagram socket, as systemd would bind it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.runtime import sdnotify


class Receiver:
    """The service manager's end: a bound datagram socket we read from."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def recv(self, timeout: float = 5.0) -> list[str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        return data.decode().split("\n")

    def pending(self) -> list[list[str]]:
        out: list[list[str]] = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            pass
        return out


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = tmp_path / "notify"
        sock.bind(str(path))
        env_value = str(path)
    else:
        name = f"kiosk-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        env_value = "@" + name
    try:
        yield Receiver(sock, env_value)
    finally:
        sock.close()


@pytest.fixture
def env(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env_value)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    return receiver


def test_ready_reaches_the_socket(env: Receiver) -> None:
    assert sdnotify.ready("listening") is True
    assert env.recv() == ["READY=1", "STATUS=listening"]


def test_stopping_and_status(env: Receiver) -> None:
    assert sdnotify.stopping() is True
    assert env.recv() == ["STOPPING=1"]
    assert sdnotify.status("3 live calls") is True
    assert env.recv() == ["STATUS=3 live calls"]


def test_notify_many_fields_in_one_datagram(env: Receiver) -> None:
    assert sdnotify.notify("READY=1", "STATUS=up", "MAINPID=1") is True
    assert env.recv() == ["READY=1", "STATUS=up", "MAINPID=1"]


def test_malformed_field_is_refused(env: Receiver) -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        sdnotify.notify("READY")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        sdnotify.notify("STATUS=a\nREADY=1")
    assert env.pending() == []


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.notify("WATCHDOG=1") is False


def test_unreachable_socket_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    # Meant for another process (a child that inherited the environment): no pings.
    other = str(os.getpid() + 1)
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": other}) is None
    mine = str(os.getpid())
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}) == 1.0


async def test_watchdog_pings_while_healthy(env: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # 0.1 s: pings every 0.05 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    watchdog = sdnotify.Watchdog(lambda: True)
    assert watchdog.interval == pytest.approx(0.05)
    async with watchdog:
        first = await asyncio.to_thread(env.recv)
        second = await asyncio.to_thread(env.recv)
    assert first == ["WATCHDOG=1"]
    assert second == ["WATCHDOG=1"]
    assert watchdog.pings >= 2


async def test_watchdog_withholds_pings_when_unhealthy(env: Receiver) -> None:
    healthy = True

    async def health() -> bool:
        return healthy

    watchdog = sdnotify.Watchdog(health, interval=0.02)
    async with watchdog:
        assert await asyncio.to_thread(env.recv) == ["WATCHDOG=1"]
        healthy = False
        await asyncio.sleep(0.1)  # let a ping in flight land
        env.pending()
        before = watchdog.pings
        await asyncio.sleep(0.2)
        assert env.pending() == []
        assert watchdog.pings == before
        healthy = True
        assert await asyncio.to_thread(env.recv) == ["WATCHDOG=1"]


async def test_watchdog_health_that_raises_counts_as_unhealthy(env: Receiver) -> None:
    def health() -> bool:
        raise RuntimeError("database gone")

    async with sdnotify.Watchdog(health, interval=0.02) as watchdog:
        await asyncio.sleep(0.15)
    assert watchdog.pings == 0
    assert env.pending() == []


async def test_watchdog_without_configuration_does_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    watchdog = sdnotify.Watchdog(lambda: True)
    assert watchdog.enabled is False
    assert watchdog.start() is False
    await watchdog.stop()
