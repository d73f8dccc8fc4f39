"""The real ``kiosk server`` process with many tablets: open files, graceful stop, last seen.

A server meant for thousands of tablets must not be capped by the soft
open-file limit of 1024 it is usually started with (systemd's default for
services): it raises the limit, or refuses to start with one line that says
why. With hundreds of tablets connected, SIGINT stops it cleanly: every
tablet is told (close 1001, going away) and their last sightings are
written. Tablets here are real: each its own key and certificate from the
deployment's CA, mutual TLS 1.3, a WebSocket, hello and pings.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from kiosk.crypto import keys
from kiosk.crypto import tls as tlsconfig
from kiosk.crypto.authority import certificate_serial_text, load_ca
from kiosk.crypto.pki import issue_device_certificate, make_device_csr, new_ec_key, pem
from kiosk.runtime.open_files import needed
from kiosk.signalling.devices.registry import register_device
from kiosk.store import schema as t
from kiosk.store.db import make_engine
from tests.harness import KIOSK, ROOT, Deployment, spawn, wait_for_port

pytestmark = pytest.mark.timeout(600)

HELLO = json.dumps({"type": "hello", "version": 1, "agent_version": "test", "calls": []})
GOING_AWAY = 1001


def _limit_open_files(soft: int, hard: int | None = None) -> None:
    """Runs in the child before exec: the limits a service gets from systemd by default."""
    _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))


def _open_files_of(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    d = Deployment(tmp_path)
    d.setup()
    return d


def test_the_server_raises_a_soft_limit_of_1024_to_the_hard_limit(
    deployment: Deployment,
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    capacity = 2000
    if hard != resource.RLIM_INFINITY and hard < needed(capacity):
        pytest.skip(f"this machine's hard open-file limit ({hard}) is below {needed(capacity)}")
    env = {**deployment.env(), "KIOSK_SERVER__DEVICE_CAPACITY": str(capacity)}
    log = deployment.root / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*KIOSK, "server", "--config", str(deployment.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            preexec_fn=lambda: _limit_open_files(1024),
        )
    try:
        asyncio.run(wait_for_port(deployment.device_port))
        assert server.poll() is None, log.read_text()
        soft_now, hard_now = _open_files_of(server.pid)
        assert soft_now == hard_now == hard, log.read_text()
        assert '"open-file limit"' in log.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def test_the_server_refuses_to_start_when_its_limit_cannot_hold_its_tablets(
    deployment: Deployment,
) -> None:
    result = subprocess.run(
        [*KIOSK, "server", "--config", str(deployment.config)],
        capture_output=True,
        text=True,
        env=deployment.env(),  # device_capacity: the default, 10,000 tablets
        cwd=ROOT,
        timeout=120,
        preexec_fn=lambda: _limit_open_files(1024, 1024),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kiosk: cannot start the server: the open-file limit (1024")
    assert "device_capacity = 10000" in lines[0] and "LimitNOFILE" in lines[0]


# --- many tablets at once ------------------------------------------------------------------


def _issue(deployment: Deployment, n: int) -> list[tuple[str, Path]]:
    """``n`` tablets: each its own key, CSR and certificate; the PEM files and serials."""
    ca = load_ca(deployment.data_dir / "pki")
    out = keys.ensure_private_dir(deployment.root / "tablets")
    tablets = []
    for i in range(n):
        serial = f"TAB-{i:04d}"
        key = new_ec_key()
        cert = issue_device_certificate(ca, make_device_csr(key, serial), serial)
        path = out / f"{serial}.pem"
        keys.write_secret(path, keys.private_key_pem(key) + pem(cert))
        tablets.append((certificate_serial_text(cert), path))
    return tablets


async def _register(deployment: Deployment, tablets: list[tuple[str, Path]]) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{deployment.data_dir / 'kiosk.sqlite3'}")
    try:
        async with engine.begin() as conn:
            for cert_serial, path in tablets:
                await register_device(conn, path.stem, cert_serial, datetime.now(UTC))
    finally:
        await engine.dispose()


async def _seen(deployment: Deployment) -> int:
    engine = make_engine(f"sqlite+aiosqlite:///{deployment.data_dir / 'kiosk.sqlite3'}")
    try:
        async with engine.connect() as conn:
            query = select(func.count()).where(t.devices.c.last_seen_at.is_not(None))
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_a_graceful_stop_with_500_tablets_tells_every_one(deployment: Deployment) -> None:
    n = 500
    tablets = _issue(deployment, n)
    await _register(deployment, tablets)
    server = spawn(
        "server", ["server", "--config", str(deployment.config)], deployment.root, deployment.env()
    )
    url = f"wss://127.0.0.1:{deployment.device_port}/device/v1"
    ca = deployment.data_dir / "pki" / "ca.pem"
    gate = asyncio.Semaphore(32)
    links: list[aiohttp.ClientWebSocketResponse] = []
    try:
        await wait_for_port(deployment.device_port, server)
        # No connector limit: each tablet's WebSocket holds its connection.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def connect(pem_file: Path) -> None:
                ctx = tlsconfig.agent_client_context(ca, pem_file, pem_file)
                async with gate:
                    ws = await session.ws_connect(url, ssl=ctx, timeout=aiohttp.ClientWSTimeout(60))
                    await ws.send_str(HELLO)
                    await ws.send_str(json.dumps({"type": "ping", "seq": 1}))
                    while (reply := await ws.receive(timeout=60)).type == aiohttp.WSMsgType.TEXT:
                        if json.loads(reply.data)["type"] == "pong":
                            break
                    else:
                        raise AssertionError(f"no pong: {reply}")
                links.append(ws)

            await asyncio.gather(*(connect(path) for _, path in tablets))
            assert len(links) == n
            server.popen.send_signal(signal.SIGINT)

            async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
                while True:
                    msg = await ws.receive(timeout=120)
                    if msg.type == aiohttp.WSMsgType.CLOSE:
                        return int(msg.data)
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return ws.close_code

            codes = await asyncio.gather(*(close_code(ws) for ws in links))
            assert codes == [GOING_AWAY] * n
            returncode = await asyncio.to_thread(server.popen.wait, 120)
        assert returncode == 0, server.output()[-3000:]
        assert "device listener stopped" in server.output()
        # The last sightings went out in the final batch, before the process ended.
        assert await _seen(deployment) == n
    finally:
        server.kill()
