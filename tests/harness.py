"""Real processes on loopback for integration tests: server, tablet agent, visitors.

Everything here starts the same commands an operator runs (``kiosk server``,
``kiosk agent``, ``kiosk admin …``) in subprocesses, with configuration
files in a temporary directory, and talks to them over their real sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
KIOSK = [sys.executable, "-m", "kiosk"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_kiosk(
    args: Sequence[str], env: dict[str, str] | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*KIOSK, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kiosk {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def spawn(name: str, args: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> Proc:
    log = log_dir / f"{name}.log"
    fh = log.open("ab")
    popen = subprocess.Popen(
        [*KIOSK, *args], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT
    )
    fh.close()
    return Proc(name, popen, log)


async def wait_for_port(port: int, proc: Proc | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError(f"{proc.name} exited early:\n{proc.output()[-4000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"port {port} did not open in {timeout} s")


async def wait_until(
    predicate: Any, timeout: float = 30, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Deployment:
    """A server's data directory, configuration and PKI, made with the real commands."""

    root: Path
    web_port: int = field(default_factory=free_port)
    device_port: int = field(default_factory=free_port)
    database_url: str = ""
    extra: str = ""

    @property
    def data_dir(self) -> Path:
        return self.root / "server"

    @property
    def config(self) -> Path:
        return self.root / "server.toml"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/api/v1"

    @property
    def visit_ws(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/visit/v1"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        return env

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        db = f'url = "{self.database_url}"\n' if self.database_url else ""
        self.config.write_text(
            f"""
[server]
data_dir = "{self.data_dir}"
web_host = "127.0.0.1"
web_port = {self.web_port}
device_host = "127.0.0.1"
device_port = {self.device_port}

[database]
{db}
[log]
level = "info"
format = "json"
{self.extra}
"""
        )

    def setup(self) -> None:
        self.write_config()
        run_kiosk(["admin", "db", "upgrade", "--config", str(self.config)], env=self.env())
        run_kiosk(["admin", "ca", "init", "--config", str(self.config)], env=self.env())

    def admin_token(self, username: str = "admin", role: str = "admin") -> str:
        run_kiosk(
            ["admin", "staff", "add", username, "--role", role, "--config", str(self.config)],
            env=self.env(),
        )
        result = run_kiosk(
            ["admin", "token", "create", username, "--config", str(self.config)], env=self.env()
        )
        return result.stdout.strip().splitlines()[-1]

    def enrol_tablet(self, serial: str, inmate_id: str | None, out: Path) -> str:
        """Enrol a tablet locally; returns its device id. Agent files land in ``out``."""
        args = ["admin", "device", "enrol-local", "--config", str(self.config),
                "--serial", serial, "--out", str(out)]
        if inmate_id:
            args += ["--inmate", inmate_id]
        result = run_kiosk(args, env=self.env())
        line = result.stdout.strip().splitlines()[-1]
        return line.split(" as device ", 1)[1].split(";", 1)[0]


class Api:
    """The staff API with a bearer token, as automation uses it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def call(
        self, method: str, path: str, body: Any = None, expect: int | Sequence[int] = (200, 201)
    ) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            data = await resp.json(content_type=None)
            allowed = (expect,) if isinstance(expect, int) else tuple(expect)
            if resp.status not in allowed:
                raise AssertionError(f"{method} {path} -> {resp.status}: {data}")
            return data


def client_ssl(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def window(start_in: float, minutes: float) -> tuple[datetime, datetime]:
    start = utc_now() + timedelta(seconds=start_in)
    return start, start + timedelta(minutes=minutes)


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
