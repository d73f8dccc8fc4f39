"""Three real ``kiosk server`` nodes on one PostgreSQL database and a real nats-server.

The database is the test run's own (a fresh one per cluster, dropped after),
so parallel runs never meet. Every node has its own configuration and port;
they share the database and the PKI (the deployment's CA and keys).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import asyncpg

from tests.conftest import POSTGRES_URL
from tests.harness import (
    Api,
    Deployment,
    Proc,
    Tablet,
    World,
    free_port,
    spawn,
    wait_for_port,
    wait_until,
)
from tests.visitor_client import Visitor

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
LEASE = 3.0  # seconds: a dead owner's calls are adopted this soon


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


class Nats:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        log = (self.root / "nats.log").open("ab")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log
        )
        await wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


class Cluster:
    def __init__(self, root: Path, names: tuple[str, ...] = ("a", "b", "c")) -> None:
        self.root = root
        self.db = f"kiosk_cluster_{uuid.uuid4().hex[:12]}"
        base, _ = POSTGRES_URL.rsplit("/", 1)
        self.database_url = f"{base}/{self.db}"
        self.nats = Nats(root)
        self.names = names
        self.nodes: dict[str, Deployment] = {}
        self.procs: dict[str, Proc] = {}
        self.api: Api | None = None
        self.tablets: list[Tablet] = []
        self.visitors: list[Visitor] = []

    def _extra(self, name: str, pki: Path | None) -> str:
        pki_line = f'[pki]\ndir = "{pki}"\n' if pki is not None else ""
        mail = f'[mail]\ntransport = "folder"\nfolder = "{self.root / name / "mail"}"\n'
        return (
            f'{pki_line}{mail}[cluster]\nnats_url = "{self.nats.url}"\nnode = "{name}"\n'
            f"lease_seconds = {LEASE}\n"
        )

    async def start(self) -> None:
        conn = await asyncpg.connect(_plain_dsn(POSTGRES_URL))
        try:
            await conn.execute(f"CREATE DATABASE {self.db}")
        finally:
            await conn.close()
        await self.nats.start()
        first = self.names[0]
        a = Deployment(self.root / first, database_url=self.database_url)
        a.extra = self._extra(first, None)
        await asyncio.to_thread(a.setup)
        token = await asyncio.to_thread(a.admin_token)
        self.nodes[first] = a
        for name in self.names[1:]:
            d = Deployment(self.root / name, database_url=self.database_url)
            d.extra = self._extra(name, a.data_dir / "pki")
            d.write_config()
            self.nodes[name] = d
        for name in self.names:  # the first starts first: it takes the lease
            await self.start_node(name)
            if name == first:
                await wait_until(self._owned_by(first), timeout=60, what="an owner")
        self.api = Api(a.api, token)
        # The staff's helpers (inmates, contacts, bookings, invites) of a single server's world.
        self.world = World(self.root / "world")
        self.world.deployment = a
        self.world.api = self.api

    async def start_node(self, name: str) -> None:
        d = self.nodes[name]
        proc = spawn(f"server-{name}", ["server", "--config", str(d.config)], d.root, env=d.env())
        self.procs[name] = proc
        await wait_for_port(d.web_port, proc)
        await wait_for_port(d.device_port, proc)

    async def lease(self) -> tuple[str, int, bool] | None:
        conn = await asyncpg.connect(_plain_dsn(self.database_url))
        try:
            row = await conn.fetchrow(
                "SELECT node, epoch, expires_at > now() AS live FROM cluster_leases"
            )
        finally:
            await conn.close()
        return None if row is None else (row["node"], row["epoch"], row["live"])

    def _owned_by(self, name: str):  # type: ignore[no-untyped-def]
        async def check() -> bool:
            return await self.owner() == name

        return check

    async def owner(self) -> str | None:
        lease = await self.lease()
        return lease[0] if lease is not None and lease[2] else None

    async def sql(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_plain_dsn(self.database_url))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def api_on(self, name: str) -> Api:
        assert self.api is not None
        return Api(self.nodes[name].api, self.api.headers["Authorization"].split(" ", 1)[1])

    async def tablet(self, name: str, inmate_id: str, serial: str) -> Tablet:
        d = self.nodes[name]
        out = d.root / f"tablet-{serial}"
        device_id = await asyncio.to_thread(d.enrol_tablet, serial, inmate_id, out)
        tablet = Tablet(d, out, device_id)
        await tablet.start()
        self.tablets.append(tablet)
        await wait_until(tablet.online, timeout=30, what="tablet online")
        return tablet

    async def visitor(self, name: str, token: str) -> Visitor:
        visitor = Visitor(self.nodes[name].visit_ws, token)
        await visitor.join()
        self.visitors.append(visitor)
        return visitor

    async def close(self) -> None:
        for visitor in self.visitors:
            await visitor.close()
        for tablet in self.tablets:
            await tablet.close()
        if self.api is not None:
            await self.api.close()
        for proc in self.procs.values():
            proc.kill(signal.SIGTERM)
        self.nats.stop()
        conn = await asyncpg.connect(_plain_dsn(POSTGRES_URL))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        finally:
            await conn.close()
