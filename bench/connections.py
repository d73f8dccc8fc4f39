"""Device connections bench: how many tablets one server process holds, and at what cost.

Run: ``.venv/bin/python bench/connections.py`` (``--max N``, default 10,000;
``--clients K``, 2-4 client processes; ``--database postgres`` for PostgreSQL, default SQLite).

System side: the real ``kiosk server`` process (its own configuration,
database and CA, made with ``kiosk admin``). Every tablet has its own key
and certificate, issued by the deployment's CA from the tablet's own CSR
(in parallel processes, once per run, into a cache directory under the
bench's temporary directory) and registered as a device with an inmate. A
tablet connects with mutual TLS 1.3, upgrades to a WebSocket, sends
``hello`` and then a ``ping`` every 10 s, as the agent does
(bench/tablet_swarm.py; K client processes share them).

Baseline, in the same run with the same tablets, clients and steps: a bare
aiohttp mutual-TLS WebSocket server with the same TLS settings
(bench/bare_device_server.py) that answers pings and nothing else.

Steps up to ``--max``; at each the tablets are brought up to the step's
number (the new connections per second are measured while they come), then
for ``--window`` seconds (three heartbeat intervals) the bench measures the
server's CPU (user and system time of the process and its threads), its
resident memory (above what it held idle, divided by the connections) and
the pong round trips the tablets see. At the end the tablets disconnect and
the server is sent SIGINT: the time until it exits is its graceful stop.

Targets (issue 14): all held, <= 64 KiB each, CPU ratio <= 1.5, new
connections >= 0.5x the baseline's rate, pong p99 <= 50 ms, stop within 10 s.
The last line is the summary, with the CPU ratio last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk.crypto import keys  # noqa: E402
from kiosk.crypto.authority import certificate_serial_text, load_ca  # noqa: E402
from kiosk.crypto.pki import (  # noqa: E402
    issue_device_certificate,
    make_device_csr,
    new_ec_key,
    pem,
)
from tests.harness import free_port  # noqa: E402

BENCH = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def kiosk(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", *args], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


# --- tablets: keys and certificates, in parallel ----------------------------------------


def issue_batch(pki_dir: str, out_dir: str, first: int, count: int) -> list[tuple[str, str]]:
    """Tablets ``first`` .. ``first + count``: each its own key, CSR and certificate."""
    ca = load_ca(Path(pki_dir))
    issued = []
    for i in range(first, first + count):
        serial = f"BENCH-{i:06d}"
        key = new_ec_key()
        cert = issue_device_certificate(ca, make_device_csr(key, serial), serial)
        keys.write_secret(Path(out_dir) / f"{serial}.pem", keys.private_key_pem(key) + pem(cert))
        issued.append((serial, certificate_serial_text(cert)))
    return issued


def issue_tablets(pki_dir: Path, out_dir: Path, n: int) -> list[tuple[str, str]]:
    keys.ensure_private_dir(out_dir)
    workers = max(1, os.cpu_count() or 1)
    size = math.ceil(n / (workers * 4))
    with ProcessPoolExecutor(workers) as pool:
        futures = [
            pool.submit(issue_batch, str(pki_dir), str(out_dir), first, min(size, n - first))
            for first in range(0, n, size)
        ]
        return [t for f in futures for t in f.result()]


async def register_tablets(database_url: str, tablets: list[tuple[str, str]]) -> None:
    """Each tablet a device row, assigned to an inmate of its own (as in a prison)."""
    from kiosk.domain.model import Inmate
    from kiosk.signalling.devices.registry import register_device
    from kiosk.store.db import make_engine, write_transaction
    from kiosk.store.facility import ensure_facility
    from kiosk.store.ids import new_id
    from kiosk.store.inmates import insert_inmate

    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        for chunk in range(0, len(tablets), 1000):
            async with write_transaction(engine) as conn:
                facility = await ensure_facility(conn)
                for serial, cert_serial in tablets[chunk : chunk + 1000]:
                    inmate = Inmate(id=new_id(), facility_id=facility.id, name=f"Inmate {serial}")
                    await insert_inmate(conn, inmate, now)
                    await register_device(conn, serial, cert_serial, now, inmate_id=inmate.id)
    finally:
        await engine.dispose()


def _postgres_admin_url() -> str:
    from sqlalchemy.engine import make_url

    url = os.environ.get(
        "KIOSK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_postgres_database(name: str) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = _postgres_admin_url()
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def drop_postgres_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_postgres_admin_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- the processes ------------------------------------------------------------------------


def raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (all threads)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Client:
    """One tablet_swarm.py process and its JSON-lines conversation."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, certs: Path, ca: Path, port: int) -> Client:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH / "tablet_swarm.py"),
            "--certs",
            str(certs),
            "--ca",
            str(ca),
            "--port",
            str(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,
        )
        return cls(proc)

    async def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a client process died")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def quit(self) -> None:
        assert self.proc.stdin is not None
        with_stdin = self.proc.stdin
        with_stdin.write(b'{"cmd": "quit"}\n')
        with_stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Step:
    target: int
    held: int = 0
    kib_each: float = 0.0
    cpu_per_1000: float = 0.0
    rate: float = 0.0
    cpu_ms_per_new: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    refused: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    load: float = 0.0


@dataclass
class Run:
    name: str
    steps: list[Step] = field(default_factory=list)
    idle_kib: int = 0
    stop_seconds: float = 0.0
    stop_cpu: float = 0.0
    close_codes: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(
    name: str,
    server: subprocess.Popen[bytes],
    port: int,
    cert_lists: list[Path],
    ca: Path,
    steps: list[int],
    window: float,
) -> Run:
    run = Run(name)
    await asyncio.sleep(2)  # past start-up
    run.idle_kib = rss_kib(server.pid)
    clients = [await Client.start(c, ca, port) for c in cert_lists]
    k = len(clients)
    try:
        held_before = 0
        for target in steps:
            step = Step(target)
            ramp_cpu = cpu_seconds(server.pid)
            replies = await asyncio.gather(
                *(c.ask("open", upto=math.ceil((target - i) / k)) for i, c in enumerate(clients))
            )
            held = sum(r["held"] for r in replies)
            seconds = max(r["seconds"] for r in replies)
            step.rate = (held - held_before) / seconds if seconds > 0 else 0.0
            if held > held_before:
                step.cpu_ms_per_new = (
                    (cpu_seconds(server.pid) - ramp_cpu) * 1000 / (held - held_before)
                )
            for r in replies:
                for status, n in r["refused"].items():
                    step.refused[status] = step.refused.get(status, 0) + n
            await asyncio.gather(*(c.ask("mark") for c in clients))
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            await asyncio.sleep(window)
            cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
            stats = await asyncio.gather(*(c.ask("stats") for c in clients))
            step.held = sum(s["held"] for s in stats)
            step.dropped = sum(s["dropped"] for s in stats)
            rtts = sorted(x for s in stats for x in s["rtts"])
            step.p50_ms = percentile(rtts, 0.50) * 1000
            step.p99_ms = percentile(rtts, 0.99) * 1000
            busy = (cpu1 - cpu0) / (t1 - t0) * 100
            step.cpu_per_1000 = busy / (step.held / 1000) if step.held else float("nan")
            step.kib_each = (rss_kib(server.pid) - run.idle_kib) / step.held if step.held else 0
            step.load = os.getloadavg()[0]
            held_before = step.held
            run.steps.append(step)
            print(
                f"  {name:8} step {target:6}: held {step.held:6} "
                f"| {step.kib_each:6.1f} KiB each | {step.cpu_per_1000:5.2f}% CPU per 1000 "
                f"| {step.rate:6.1f} new/s ({step.cpu_ms_per_new:4.1f} ms CPU each) "
                f"| pong p50 {step.p50_ms:6.1f} ms p99 {step.p99_ms:7.1f} ms"
                f" | dropped {step.dropped} refused {step.refused or 0} | load {step.load:.2f}",
                flush=True,
            )
        closed = await asyncio.gather(*(c.ask("close") for c in clients))
        for c in closed:
            for code, n in c["close_codes"].items():
                run.close_codes[code] = run.close_codes.get(code, 0) + n
        # The tablets have gone: the server is told to stop at once.
        run.stop_seconds, run.stop_cpu = await stop(server)
    finally:
        if server.poll() is None:
            server.kill()
        for c in clients:
            await c.quit()
    print(
        f"  {name:8} stopped {run.stop_seconds:.1f} s after SIGINT ({run.stop_cpu:.1f} s of CPU)",
        flush=True,
    )
    return run


async def stop(server: subprocess.Popen[bytes]) -> tuple[float, float]:
    """SIGINT; the seconds until the process has exited (inf after 60 s) and its CPU seconds.

    The CPU it spent stopping tells a slow machine from a slow stop: on a
    machine shared by many, wall time stretches while CPU time does not.
    """
    cpu = cpu_seconds(server.pid)
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    try:
        _, status, usage = await asyncio.wait_for(asyncio.to_thread(os.wait4, server.pid, 0), 60)
    except TimeoutError:
        return float("inf"), float("nan")
    server.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime - cpu


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not listen")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max", type=int, default=10_000, help="tablets at the last step")
    parser.add_argument("--clients", type=int, default=4, choices=range(2, 5))
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured per step")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the server's store: a SQLite file (the default), or a fresh PostgreSQL database "
        "on the server of KIOSK_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432)",
    )
    parser.add_argument("--backlog", type=int, default=4096, help="listen backlog, both servers")
    parser.add_argument("--only", choices=("kiosk", "baseline"), default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    raise_open_files()
    steps = sorted({max(1, args.max // d) for d in (8, 4, 2, 1)})
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-connections-"))
    print(f"bench/connections: {args.max} tablets, {args.clients} client processes, {tmp}")
    print(f"  load average at start: {os.getloadavg()}", flush=True)

    data = tmp / "server"
    web_port, device_port, bare_port = free_port(), free_port(), free_port()
    config = tmp / "server.toml"
    database_url = f"sqlite+aiosqlite:///{data / 'kiosk.sqlite3'}"
    if args.database == "postgres":
        database_url = await create_postgres_database(f"kiosk_bench_{os.getpid()}")
    db = f'url = "{database_url}"\n'
    config.write_text(
        f'[server]\ndata_dir = "{data}"\nweb_port = {web_port}\ndevice_port = {device_port}\n'
        f"device_capacity = {args.max}\ndevice_backlog = {args.backlog}\n"
        f'[database]\n{db}[log]\nlevel = "info"\nformat = "json"\n'
    )
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    kiosk("admin", "db", "upgrade", "--config", str(config), env=env)
    kiosk("admin", "ca", "init", "--config", str(config), "--host", "127.0.0.1", env=env)
    pki_dir = data / "pki"

    started = time.monotonic()
    tablets = issue_tablets(pki_dir, tmp / "tablets", args.max)
    issued = time.monotonic()
    await register_tablets(database_url, tablets)
    print(
        f"  {len(tablets)} tablets: keys and certificates in {issued - started:.1f} s, "
        f"registered in {time.monotonic() - issued:.1f} s",
        flush=True,
    )
    cert_lists = []
    for i in range(args.clients):
        path = tmp / f"client-{i}.txt"
        share = tablets[i :: args.clients]
        path.write_text("\n".join(str(tmp / "tablets" / f"{s}.pem") for s, _ in share))
        cert_lists.append(path)
    ca = pki_dir / "ca.pem"

    runs: dict[str, Run] = {}
    if args.only in (None, "kiosk"):
        log = tmp / "kiosk-server.log"
        with log.open("wb") as fh:
            server = subprocess.Popen(
                [sys.executable, "-m", "kiosk", "server", "--config", str(config)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        await wait_for_port(device_port, server, log)
        runs["kiosk"] = await measure(
            "kiosk", server, device_port, cert_lists, ca, steps, args.window
        )
    if args.only in (None, "baseline"):
        log = tmp / "bare-server.log"
        with log.open("wb") as fh:
            server = subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH / "bare_device_server.py"),
                    "--pki",
                    str(pki_dir),
                    "--port",
                    str(bare_port),
                    "--backlog",
                    str(args.backlog),
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )
        await wait_for_port(bare_port, server, log)
        runs["baseline"] = await measure(
            "baseline", server, bare_port, cert_lists, ca, steps, args.window
        )
    print(f"  load average at end: {os.getloadavg()}")
    for name, run in runs.items():
        print(f"  {name}: close codes the tablets saw {run.close_codes}; idle {run.idle_kib} KiB")
    if len(runs) == 2:
        k, b = runs["kiosk"].steps[-1], runs["baseline"].steps[-1]
        print(
            f"  new connections: kiosk {k.rate:.0f}/s, baseline {b.rate:.0f}/s "
            f"(first step: {runs['kiosk'].steps[0].rate:.0f}/s, "
            f"{runs['baseline'].steps[0].rate:.0f}/s)"
        )
        print(
            f"  pong p99 at {k.target}: kiosk {k.p99_ms:.1f} ms, baseline {b.p99_ms:.1f} ms; "
            f"graceful stop: kiosk {runs['kiosk'].stop_seconds:.1f} s "
            f"({runs['kiosk'].stop_cpu:.1f} s CPU), baseline {runs['baseline'].stop_seconds:.1f} s "
            f"({runs['baseline'].stop_cpu:.1f} s CPU)"
        )
        ratio = k.cpu_per_1000 / b.cpu_per_1000 if b.cpu_per_1000 else float("nan")
        print(
            f"device connections: kiosk held {k.held} ({k.kib_each:.0f} KiB each, "
            f"{k.cpu_per_1000:.2f}% CPU per 1000), baseline held {b.held} "
            f"({b.kib_each:.0f} KiB each, {b.cpu_per_1000:.2f}% CPU per 1000), "
            f"CPU ratio {ratio:.2f}"
        )
    if args.database == "postgres":
        await drop_postgres_database(f"kiosk_bench_{os.getpid()}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
