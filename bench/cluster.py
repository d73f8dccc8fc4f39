"""Cluster call set-up bench (issue 14): dial -> first frame at both ends, across nodes.

Run: ``.venv/bin/python bench/cluster.py`` (``--calls N`` per side, default 10).

Three real ``kiosk server`` nodes on one PostgreSQL database and a real
nats-server (tests/cluster_harness.py, as the cluster tests use). Each call
has its own inmate, tablet agent process (synthetic media) and aiortc visitor.
The clock starts when the tablet is asked to dial and stops when both ends
have their first video frame (the visitor's decoded frame; the tablet's
media counter, read every 10 ms).

Side by side in the same run, calls alternating: the tablet on node a and the
visitor on node b (every message crosses NATS to the owner and back), against
tablet and visitor both on node a. Target: median ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster_harness import Cluster  # noqa: E402
from tests.harness import Tablet, wait_until  # noqa: E402


async def _tablet_video(tablet: Tablet) -> bool:
    media = (await tablet.state()).get("media") or {}
    return int(media.get("video_received", 0)) > 0


async def one_call(cluster: Cluster, n: int, visitor_node: str) -> float:
    w = cluster.world
    inmate = await w.inmate()
    contact = await w.approved_contact(inmate)
    tablet = await cluster.tablet("a", inmate, f"BENCH-CL-{n}")
    booking = await w.booking(inmate, contact, start_in=1, seconds=120)
    visitor = await cluster.visitor(visitor_node, await w.invite_token(booking["id"]))
    try:
        await wait_until(lambda: visitor.waiting is not None, what="the waiting room")
        await wait_until(lambda: tablet.callable(booking["id"]), timeout=30, what="window open")
        start = time.monotonic()
        status, body = await tablet.dial(booking["id"])
        assert status == 202, body
        await wait_until(lambda: _tablet_video(tablet), timeout=30, interval=0.01,
                         what="the tablet's first frame")
        at_tablet = time.monotonic()
        await wait_until(lambda: visitor.received.first_video_at is not None, timeout=30,
                         interval=0.01, what="the visitor's first frame")
        assert visitor.received.first_video_at is not None
        elapsed = max(at_tablet, visitor.received.first_video_at) - start
        await visitor.hangup()
        await wait_until(lambda: visitor.end is not None, timeout=30, what="the end")
        return elapsed
    finally:
        await visitor.close()
        cluster.visitors.remove(visitor)
        await tablet.close()
        cluster.tablets.remove(tablet)


def summary(name: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"{name:32s} median {median * 1000:7.1f} ms   min {min(times) * 1000:7.1f} ms   "
          f"max {max(times) * 1000:7.1f} ms   n={len(times)}")
    return median


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        try:
            await cluster.start()
            assert cluster.api is not None
            room = {"tablets": 1000, "monitoring_staff": 1000}
            await cluster.api.call("PATCH", "/facility", room)
            await one_call(cluster, -1, "b")  # warm-up, not counted
            across: list[float] = []
            same: list[float] = []
            for n in range(args.calls):
                across.append(await one_call(cluster, 2 * n, "b"))
                same.append(await one_call(cluster, 2 * n + 1, "a"))
        finally:
            await cluster.close()
    s = summary("same node (tablet a, visitor a)", same)
    x = summary("across nodes (a -> b via NATS)", across)
    print(f"cluster call set-up: across nodes {x * 1000:.0f} ms, one node {s * 1000:.0f} ms, "
          f"median ratio {x / s:.2f} (target <= 1.2)")


if __name__ == "__main__":
    asyncio.run(main())
