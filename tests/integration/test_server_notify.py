"""``kiosk server`` and ``kiosk agent`` as systemd runs them: notify socket, watchdog, SIGTERM.

systemd itself cannot run as PID 1 on these machines, so the test plays the
service manager's part of the protocol (sd_notify(3), systemd.service(5)):
it binds the datagram socket, passes ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``
as systemd does for ``Type=notify`` with ``WatchdogSec=``, starts the command
of kiosk-server.service with a test configuration, and expects READY=1, then
WATCHDOG=1 pings at half the interval, then STOPPING=1 and exit 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from tests.harness import Deployment, free_port, spawn, wait_for_port

WATCHDOG_USEC = 1_000_000  # 1 s: pings every 0.5 s (the unit has 30 s)


@pytest.fixture
def manager(notify_socket: tuple[socket.socket, str]) -> tuple[socket.socket, str]:
    return notify_socket


async def _next(sock: socket.socket, timeout: float) -> list[str]:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
    return data.decode().split("\n")


async def _until(sock: socket.socket, field: str, timeout: float) -> list[list[str]]:
    """Datagrams up to and including the first that carries ``field``."""
    seen: list[list[str]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {field} within {timeout} s; got {seen}")
        try:
            fields = await _next(sock, remaining)
        except TimeoutError:
            raise AssertionError(f"no {field} within {timeout} s; got {seen}") from None
        seen.append(fields)
        if field in fields:
            return seen


async def test_server_reports_ready_watchdog_and_stopping(
    tmp_path: Path, manager: tuple[socket.socket, str]
) -> None:
    sock, address = manager
    deployment = Deployment(tmp_path)
    deployment.setup()
    env = deployment.env()
    env["NOTIFY_SOCKET"] = address
    env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
    server = spawn("server", ["server", "--config", str(deployment.config)], tmp_path, env)
    try:
        await _until(sock, "READY=1", timeout=60)
        # READY is sent once the web listener takes connections.
        with socket.create_connection(("127.0.0.1", deployment.web_port), timeout=5):
            pass
        started = time.monotonic()
        await _until(sock, "WATCHDOG=1", timeout=10)
        await _until(sock, "WATCHDOG=1", timeout=10)
        # Two pings within a few intervals: the pace follows WATCHDOG_USEC.
        assert time.monotonic() - started < 5 * WATCHDOG_USEC / 1e6

        server.popen.send_signal(signal.SIGTERM)
        await _until(sock, "STOPPING=1", timeout=30)
        code = await asyncio.to_thread(server.popen.wait, 30)
        assert code == 0, server.output()[-4000:]
    finally:
        server.kill()


async def test_metrics_endpoint_is_served(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path)
    deployment.setup()
    server = spawn("server", ["server", "--config", str(deployment.config)], tmp_path,
                   deployment.env())
    try:
        await wait_for_port(deployment.web_port, server)
        url = f"http://127.0.0.1:{deployment.web_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
            assert response.status == 200, text
        assert "kiosk_live_calls " in text
        assert 'kiosk_refusals_total{reason="outside_window"} 0.0' in text
    finally:
        server.kill(signal.SIGTERM)


async def test_agent_reports_ready_watchdog_and_stopping(
    tmp_path: Path, manager: tuple[socket.socket, str]
) -> None:
    # kiosk-agent.service is Type=notify with WatchdogSec=30 too: without pings
    # systemd would kill the agent every 30 s.
    sock, address = manager
    deployment = Deployment(tmp_path)
    deployment.setup()
    out = tmp_path / "tablet"
    deployment.enrol_tablet("TAB-NOTIFY", None, out)
    env = deployment.env()
    ui_port = free_port()
    env.update(
        NOTIFY_SOCKET=address,
        WATCHDOG_USEC=str(WATCHDOG_USEC),
        KIOSK_AGENT__UI_PORT=str(ui_port),
    )
    agent = spawn(
        "agent",
        ["agent", "--config", str(out / "agent.toml"), "--synthetic-media"],
        tmp_path,
        env,
    )
    try:
        await _until(sock, "READY=1", timeout=60)
        with socket.create_connection(("127.0.0.1", ui_port), timeout=5):
            pass
        await _until(sock, "WATCHDOG=1", timeout=10)
        await _until(sock, "WATCHDOG=1", timeout=10)
        agent.popen.send_signal(signal.SIGTERM)
        await _until(sock, "STOPPING=1", timeout=30)
        code = await asyncio.to_thread(agent.popen.wait, 30)
        assert code == 0, agent.output()[-4000:]
    finally:
        agent.kill()
