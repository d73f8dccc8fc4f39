"""Call set-up bench: from the tablet's dial to the first decoded frame at both ends.

Run: ``.venv/bin/python bench/call_setup.py`` (``--calls N``, default 40).

The system side is the whole path a real call takes, in one process for
precise timing: the server process (web and device listeners, the calls' runner,
SQLite, audit chain), the tablet agent (mutual-TLS link, grant check,
aiortc call with synthetic 640x480 VP8 and Opus) and an aiortc visitor that
joined with its invite. The clock starts when the agent is asked to dial and
stops when both ends have decoded their first video frame.

Baseline, side by side in the same run (calls alternate, same load): a bare
pair of aiortc peers with the same media and the same ICE settings (no ICE
servers), exchanging offer and answer directly: the cost of WebRTC itself.
The ratio of the medians (and of the p95s) is what signalling, policy,
grants, the database and the audit chain add. Target: <= 1.3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from kiosk.crypto import pki  # noqa: E402
from kiosk.device.agent import Agent  # noqa: E402
from kiosk.device.media import PatternTrack, ToneTrack  # noqa: E402
from kiosk.runtime import heap  # noqa: E402
from kiosk.runtime.config import AgentProgramSettings, load, load_settings  # noqa: E402
from kiosk.runtime.logs import configure  # noqa: E402
from kiosk.signalling import process  # noqa: E402
from kiosk.store.db import upgrade  # noqa: E402
from tests.harness import free_port  # noqa: E402
from tests.visitor_client import Visitor  # noqa: E402


def kiosk(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", *args], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


async def first_frames(pc: RTCPeerConnection) -> asyncio.Future[float]:
    """A future set to the time the first video frame from ``pc`` is decoded."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def pull() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    if track.kind == "video" and not done.done():
                        done.set_result(time.perf_counter())

        pc.__dict__.setdefault("_bench_tasks", []).append(asyncio.ensure_future(pull()))

    return done


async def baseline_call() -> float:
    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        got_a, got_b = await first_frames(a), await first_frames(b)
        start = time.perf_counter()
        for pc in (a, b):
            pc.addTrack(PatternTrack())
            pc.addTrack(ToneTrack())
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        done = await asyncio.wait_for(asyncio.gather(got_a, got_b), timeout=30)
        return max(done) - start
    finally:
        await a.close()
        await b.close()


class System:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.config = root / "server.toml"
        self.config.write_text(
            f'[server]\ndata_dir = "{root / "data"}"\nweb_port = {free_port()}\n'
            f'device_port = {free_port()}\n[log]\nlevel = "warning"\nformat = "json"\n'
            f'[mail]\ntransport = "folder"\nfolder = "{root / "mail"}"\n'
        )
        self.settings = load_settings(self.config)

    async def start(self) -> None:
        pki.init_ca(self.settings.pki_dir, ["127.0.0.1", "localhost"])
        await upgrade(self.settings.database_url)
        kiosk(
            "admin",
            "staff",
            "add",
            "bench",
            "--role",
            "admin",
            "--config",
            str(self.config),
            env=self.env,
        )
        token = kiosk(
            "admin", "token", "create", "bench", "--config", str(self.config), env=self.env
        )
        self.proc = await process.start(self.settings)
        self.api = self.proc.web.api_url
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})
        await self.call("PATCH", "/facility", {"tablets": 100, "contact_limit": 100})
        self.inmate = (await self.call("POST", "/inmates", {"name": "Bench Inmate"}))["id"]
        out = self.root / "tablet"
        line = kiosk(
            "admin",
            "device",
            "enrol-local",
            "--config",
            str(self.config),
            "--serial",
            "BENCH-1",
            "--out",
            str(out),
            "--inmate",
            self.inmate,
            env=self.env,
        )
        del line
        agent_settings = load(AgentProgramSettings, out / "agent.toml").agent.model_copy(
            update={"ui_port": free_port()}
        )
        self.agent = Agent(agent_settings, synthetic_media=True)
        await self.agent.start()
        while self.agent.session.state is None:
            await asyncio.sleep(0.05)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.api + path, json=body) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def booking(self, n: int) -> tuple[str, str]:
        # Official contacts: no R2 limit and no R17 quota, so every call can be booked now.
        contact = await self.call(
            "POST",
            f"/inmates/{self.inmate}/contacts",
            {
                "name": f"Contact {n}",
                "email": f"c{n}@example.org",
                "category": "official",
                "relation": "professional",
                "cleared_for_visits": True,
            },
        )
        await self.call("POST", f"/contacts/{contact['id']}/email-confirmation")
        await self.call(
            "POST", f"/contacts/{contact['id']}/decision", {"outcome": "approve", "control": "none"}
        )
        start = datetime.now(UTC) + timedelta(seconds=1)
        booking = await self.call(
            "POST",
            "/bookings",
            {
                "inmate_id": self.inmate,
                "contact_id": contact["id"],
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=10)).isoformat(),
                "location_kind": "cell",
                "location": "B-1",
                "initiation": "staff",
            },
        )
        invite = await self.call("POST", f"/bookings/{booking['id']}/invites")
        await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.05)
        return booking["id"], invite["url"].rsplit("/", 1)[1]

    async def system_call(self, n: int) -> float:
        booking_id, token = await self.booking(n)
        ws = self.api.replace("http://", "ws://").replace("/api/v1", "/visit/v1")
        visitor = Visitor(ws, token)
        await visitor.join()
        while visitor.waiting is None:
            await asyncio.sleep(0.01)
        try:
            start = time.perf_counter()
            await self.agent.dial(booking_id)
            while True:
                counters = self.agent.counters
                tablet_first = counters.first_video_at if counters else None
                if tablet_first is not None and visitor.received.first_video_at is not None:
                    break
                await asyncio.sleep(0.002)
                if time.perf_counter() - start > 30:
                    raise TimeoutError("no media within 30 s")
            # Both stamps are time.monotonic(); convert to the perf_counter timeline.
            offset = time.perf_counter() - time.monotonic()
            last = max(tablet_first, visitor.received.first_video_at) + offset
            return last - start
        finally:
            await self.agent.hangup()
            await visitor.close()
            while self.agent.session.live is not None:
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.agent.stop()
        await self.http.close()
        await self.proc.close()


def summary(name: str, values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    median = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<28} median {median * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   n={len(values)}")
    return median, p95


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    configure("warning", json=True)
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp))
        await system.start()
        heap.settle()  # as `kiosk serve` and `kiosk agent` do once started
        sys_times: list[float] = []
        base_times: list[float] = []
        try:
            # Warm-up, one of each, not counted: codecs, imports, first queries.
            await baseline_call()
            await system.system_call(-1)
            for n in range(args.calls):
                base_times.append(await baseline_call())
                sys_times.append(await system.system_call(n))
        finally:
            await system.stop()
    b_med, b_p95 = summary("bare aiortc pair", base_times)
    s_med, s_p95 = summary("kiosk dial -> first frames", sys_times)
    print(f"ratio (median): {s_med / b_med:.2f}   ratio (p95): {s_p95 / b_p95:.2f}   target <= 1.3")


if __name__ == "__main__":
    asyncio.run(main())
