"""Real processes on loopback for integration tests: server, tablet agent, visitors.

Everything here starts the same commands an operator runs (``kiosk server``,
``kiosk agent``, ``kiosk admin …``) in subprocesses, with configuration
files in a temporary directory, and talks to them over their real sockets.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.visitor_client import Visitor

ROOT = Path(__file__).resolve().parent.parent
KIOSK = [sys.executable, "-m", "kiosk"]


# Ports for the servers a test starts come from below the kernel's ephemeral range
# (32768-60999 here): a port the kernel handed out as free is just as soon some client
# connection's own, and a server started a moment later then finds it taken. Picked at
# random and checked free on every address, never twice in one run: a second run beside
# this one meets the same port only by chance.
_PORTS = (12000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(*_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORTS}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_kiosk(
    args: Sequence[str], env: dict[str, str] | None = None, check: bool = True, timeout: float = 180
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


def spawn(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> Proc:
    """``kiosk ARGS`` in a subprocess, its output in ``log_dir/NAME.log``; ``prefix`` runs
    it inside another command (tests/systemd_sandbox.py: a unit's seccomp filters)."""
    log = log_dir / f"{name}.log"
    fh = log.open("ab")
    popen = subprocess.Popen(
        [*prefix, *KIOSK, *args], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT
    )
    fh.close()
    return Proc(name, popen, log)


async def wait_for_port(port: int, proc: Proc | None = None, timeout: float = 180) -> None:
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
    predicate: Any, timeout: float = 30, what: str = "condition", interval: float = 0.1
) -> Any:
    """Wait for a state: ``predicate()`` (sync or async) true, at most ``timeout`` s.

    The bound only turns a hang into a failure that names ``what``; a test never
    waits for time itself, so a slow machine costs time, not a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def stays(predicate: Any, seconds: float, what: str = "condition") -> None:
    """Something that must NOT happen: ``predicate()`` holds all through ``seconds``.

    The only place a test watches the clock: an absence can be seen only over a
    span of time. It fails as soon as the predicate breaks.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        assert value, f"{what} stopped holding"
        await asyncio.sleep(0.05)


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

    def setup_as_copy(self) -> str:
        """The same as ``setup`` and ``admin_token``: a copy of one deployment made with
        the real commands once per test process (its database, CA and keys). Making it
        takes four processes and an argon2 hash; a copy takes a millisecond. Returns the
        admin's bearer token."""
        assert not self.database_url, "the copy is of the default SQLite deployment"
        template, token = _template()
        shutil.copytree(template.data_dir, self.data_dir)
        self.write_config()
        return token

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
        args = [
            "admin",
            "device",
            "enrol-local",
            "--config",
            str(self.config),
            "--serial",
            serial,
            "--out",
            str(out),
        ]
        if inmate_id:
            args += ["--inmate", inmate_id]
        result = run_kiosk(args, env=self.env())
        line = result.stdout.strip().splitlines()[-1]
        return line.split(" as device ", 1)[1].split(";", 1)[0]


_TEMPLATE: list[tuple[Deployment, str]] = []


def _template() -> tuple[Deployment, str]:
    if not _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="kiosk-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        deployment = Deployment(root)
        deployment.setup()
        _TEMPLATE.append((deployment, deployment.admin_token()))
    return _TEMPLATE[0]


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

    async def add_staff(
        self, username: str, display_name: str, role: str, password: str
    ) -> dict[str, Any]:
        """A staff account whose owner sets ``password`` through its one-time link, as
        people do: the admin API never takes another person's password (issue 16)."""
        staff: dict[str, Any] = await self.call(
            "POST", "/staff", {"username": username, "display_name": display_name, "role": role}
        )
        link = await self.call("POST", f"/staff/{staff['id']}/password-link")
        await set_password_by_link(self.session, link["url"], password)
        return staff


async def set_password_by_link(http: aiohttp.ClientSession, url: str, password: str) -> None:
    """The owner's side of a set-password link: the form, filled in and sent."""
    async with http.post(url, data={"password": password, "again": password}) as resp:
        text = await resp.text()
        assert resp.status == 200 and 'id="setpw-done"' in text, (resp.status, text[-600:])


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


# --- a whole world: server, tablets and an admin's API (shared by the browser tests) ------


class Tablet:
    """A tablet agent process (``--synthetic-media``) and its loopback kiosk API."""

    def __init__(
        self, deployment: Deployment, out: Path, device_id: str, prefix: Sequence[str] = ()
    ) -> None:
        self.deployment = deployment
        self.prefix = prefix
        self.dir = out
        self.device_id = device_id
        self.ui_port = free_port()
        self.proc: Proc | None = None
        self.http = aiohttp.ClientSession()

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}/"

    def env(self) -> dict[str, str]:
        env = self.deployment.env()
        env["KIOSK_AGENT__UI_PORT"] = str(self.ui_port)
        env["KIOSK_LOG__FORMAT"] = "json"
        return env

    async def start(self) -> None:
        self.proc = spawn(
            f"agent-{self.device_id[:8]}",
            ["agent", "--config", str(self.dir / "agent.toml"), "--synthetic-media"],
            self.deployment.root,
            env=self.env(),
            prefix=self.prefix,
        )
        await wait_for_port(self.ui_port, self.proc)

    async def state(self) -> dict[str, Any]:
        async with self.http.get(f"http://127.0.0.1:{self.ui_port}/api/state") as resp:
            data: dict[str, Any] = await resp.json()
            return data

    async def dial(self, booking_id: str) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"http://127.0.0.1:{self.ui_port}/api/dial", json={"booking_id": booking_id}
        ) as resp:
            return resp.status, await resp.json()

    async def online(self) -> bool:
        state = await self.state()
        return state.get("link") == "online" and state.get("device_id") is not None

    async def callable(self, booking_id: str) -> bool:
        state = await self.state()
        return any(c["booking_id"] == booking_id and c["callable_now"] for c in state["contacts"])

    async def close(self) -> None:
        if self.proc is not None:
            self.proc.kill(signal.SIGTERM)
        await self.http.close()


class World:
    """A deployment with its server running and an admin's API; tablets on demand."""

    def __init__(
        self,
        root: Path,
        extra_config: str = "",
        server_prefix: Sequence[str] = (),
        agent_prefix: Sequence[str] = (),
    ) -> None:
        self.deployment = Deployment(root, extra=extra_config)
        self.server_prefix = server_prefix  # see spawn()
        self.agent_prefix = agent_prefix
        self.server: Proc | None = None
        self.api: Api | None = None
        self.tablets: list[Tablet] = []
        self.visitors: list[Visitor] = []

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.deployment.web_port}"

    async def start(self) -> None:
        if self.deployment.database_url:  # a database of the test's own: made afresh
            self.deployment.setup()
            token = self.deployment.admin_token()
        else:
            token = self.deployment.setup_as_copy()
        await self.start_server()
        self.api = Api(self.deployment.api, token)

    async def start_server(self) -> None:
        self.server = spawn(
            "server",
            ["server", "--config", str(self.deployment.config)],
            self.deployment.root,
            env=self.deployment.env(),
            prefix=self.server_prefix,
        )
        await wait_for_port(self.deployment.web_port, self.server)
        await wait_for_port(self.deployment.device_port, self.server)

    async def inmate(self, name: str = "Ola Nordmann", remand: bool = False) -> str:
        assert self.api is not None
        body = await self.api.call("POST", "/inmates", {"name": name, "remand": remand})
        return str(body["id"])

    async def approved_contact(
        self,
        inmate_id: str,
        category: str = "personal",
        control: str = "none",
        relation: str = "sibling",
        name: str = "Kari Nordmann",
        email: str = "kari@example.org",
    ) -> str:
        assert self.api is not None
        contact = await self.api.call(
            "POST",
            f"/inmates/{inmate_id}/contacts",
            {
                "name": name,
                "email": email,
                "category": category,
                "relation": relation,
                "cleared_for_visits": True,
            },
        )
        await self.api.call("POST", f"/contacts/{contact['id']}/email-confirmation", None)
        decision: dict[str, Any] = {"outcome": "approve", "control": control}
        if control != "none":
            decision["grounds"] = ["threats"]
        await self.api.call("POST", f"/contacts/{contact['id']}/decision", decision)
        return str(contact["id"])

    async def booking(
        self,
        inmate_id: str,
        contact_id: str,
        start_in: float = 2.0,
        seconds: float = 600,
        clearance: bool = False,
        send_invite: bool = True,
    ) -> dict[str, Any]:
        assert self.api is not None
        start = utc_now() + timedelta(seconds=start_in)
        body: dict[str, Any] = {
            "inmate_id": inmate_id,
            "contact_id": contact_id,
            "start": iso(start),
            "end": iso(start + timedelta(seconds=seconds)),
            "location_kind": "cell",
            "location": "A-101",
            "initiation": "staff",
        }
        if not send_invite:  # issue 16: by default the invite goes out with the booking
            body["send_invite"] = False
        if clearance:  # R11
            body["police_clearance"] = {
                "cleared_by": "Officer Hansen, Oslo PD",
                "cleared_at": iso(utc_now() - timedelta(minutes=5)),
            }
        result: dict[str, Any] = await self.api.call("POST", "/bookings", body, expect=201)
        return result

    async def invite_url(self, booking_id: str) -> str:
        assert self.api is not None
        invite = await self.api.call("POST", f"/bookings/{booking_id}/invites", None, expect=201)
        return str(invite["url"])

    async def invite_token(self, booking_id: str) -> str:
        return (await self.invite_url(booking_id)).rsplit("/", 1)[1]

    async def visitor(self, token: str, answer: bool = True) -> Visitor:
        """An aiortc visitor joined with ``token`` (tests/visitor_client.py)."""
        visitor = Visitor(self.deployment.visit_ws, token, answer=answer)
        await visitor.join()
        self.visitors.append(visitor)
        return visitor

    async def tablet(self, inmate_id: str | None, serial: str) -> Tablet:
        out = self.deployment.root / f"tablet-{serial}"
        device_id = self.deployment.enrol_tablet(serial, inmate_id, out)
        tablet = Tablet(self.deployment, out, device_id, self.agent_prefix)
        await tablet.start()
        self.tablets.append(tablet)
        await wait_until(tablet.online, timeout=30, what="tablet online")
        return tablet

    async def close(self) -> None:
        for visitor in self.visitors:
            await visitor.close()
        for tablet in self.tablets:
            await tablet.close()
        if self.api is not None:
            await self.api.close()
        if self.server is not None:
            self.server.kill(signal.SIGTERM)
