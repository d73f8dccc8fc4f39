"""Three server nodes on PostgreSQL and NATS (issue 14): any node serves any tablet or
visitor, staff act on any call from any node, calls survive their owner's death.

One cluster for the module (three ``kiosk server`` processes, a nats-server, a
database of its own); each test makes its own inmates, tablets and bookings.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster_harness import Cluster
from tests.harness import Tablet, run_kiosk, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        await c.start()
        assert c.api is not None
        await c.api.call("PATCH", "/facility", {"tablets": 1000, "monitoring_staff": 1000})
        yield c
    finally:
        await c.close()


async def _media(tablet: Tablet) -> bool:
    media = (await tablet.state()).get("media") or {}
    return media.get("video_received", 0) > 30 and media.get("audio_received", 0) > 30


async def _ended(tablet: Tablet) -> str | None:
    ended = (await tablet.state()).get("ended") or {}
    return ended.get("reason")


async def test_a_tablet_on_one_node_calls_a_visitor_on_another(cluster: Cluster) -> None:
    w = cluster.world
    inmate = await w.inmate()
    contact = await w.approved_contact(inmate)
    tablet = await cluster.tablet("a", inmate, "CL-ROUTE-1")
    booking = await w.booking(inmate, contact, start_in=1, seconds=25)
    visitor = await cluster.visitor("b", await w.invite_token(booking["id"]))
    await wait_until(lambda: visitor.waiting is not None, what="the waiting room")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    await wait_until(
        lambda: visitor.received.video > 30 and visitor.received.audio > 30,
        timeout=40,
        what="media at the visitor on node b",
    )
    await wait_until(lambda: _media(tablet), timeout=30, what="media at the tablet on node a")
    assert visitor.call is not None and visitor.call.route.value == "p2p"
    await wait_until(lambda: visitor.end is not None, timeout=40, what="the end at the visitor")
    assert visitor.end is not None and visitor.end.reason.value == "time_up"
    assert await wait_until(lambda: _ended(tablet), timeout=10, what="the end") == "time_up"
    rows = await cluster.sql(
        "SELECT end_reason, owner_node FROM calls WHERE booking_id = $1", booking["id"]
    )
    assert [(r["end_reason"], r["owner_node"]) for r in rows] == [("time_up", "a")]


async def test_staff_on_a_third_node_end_a_call_owned_by_the_first(cluster: Cluster) -> None:
    w = cluster.world
    inmate = await w.inmate()
    contact = await w.approved_contact(inmate)
    tablet = await cluster.tablet("b", inmate, "CL-END-1")
    booking = await w.booking(inmate, contact, start_in=1, seconds=600)
    visitor = await cluster.visitor("a", await w.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media")
    assert visitor.call is not None
    staff = cluster.api_on("c")
    try:
        await staff.call("POST", f"/calls/{visitor.call.call_id}/end", {"note": "ends"})
    finally:
        await staff.close()
    await wait_until(lambda: visitor.end is not None, timeout=20, what="the end at the visitor")
    assert visitor.end is not None and visitor.end.reason.value == "ended_by_staff"
    assert await wait_until(lambda: _ended(tablet), timeout=10, what="end") == "ended_by_staff"


async def test_the_owner_dies_mid_call_and_the_call_ends_on_time_recorded_once(
    cluster: Cluster,
) -> None:
    w = cluster.world
    owner = await cluster.owner()
    assert owner is not None
    others = [n for n in cluster.names if n != owner]
    inmate = await w.inmate()
    contact = await w.approved_contact(inmate)
    tablet = await cluster.tablet(others[0], inmate, "CL-DEATH-1")
    booking = await w.booking(inmate, contact, start_in=1, seconds=35)
    visitor = await cluster.visitor(others[1], await w.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media")
    assert visitor.call is not None
    call_id = visitor.call.call_id
    try:
        cluster.procs[owner].kill(signal.SIGKILL)
        seen = visitor.received.video
        await wait_until(
            lambda: _owned_elsewhere(cluster, owner), timeout=30, what="a new owner"
        )
        await wait_until(lambda: visitor.received.video > seen + 30, what="media going on")
        assert visitor.end is None, "the call went on"
        await wait_until(lambda: visitor.end is not None, timeout=60, what="the end at its time")
        assert visitor.end is not None and visitor.end.reason.value == "time_up"
        assert await wait_until(lambda: _ended(tablet), timeout=10, what="end") == "time_up"
        [row] = await cluster.sql("SELECT * FROM calls WHERE booking_id = $1", booking["id"])
        assert row["end_reason"] == "time_up" and row["owner_node"] != owner
        assert row["ended_at"] == row["not_after"]
        ended = await cluster.sql(
            "SELECT seq FROM audit_entries WHERE action = 'call.ended' "
            "AND subjects->>'call' = $1",
            call_id,
        )
        assert len(ended) == 1
        live = await cluster.sql("SELECT id FROM calls WHERE ended_at IS NULL")
        assert live == []
        verify = await asyncio.to_thread(
            run_kiosk,
            ["admin", "audit", "verify", "--config", str(cluster.nodes[others[0]].config)],
            cluster.nodes[others[0]].env(),
            False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        await cluster.start_node(owner)  # back, as one node among others


async def _owned_elsewhere(cluster: Cluster, dead: str) -> bool:
    owner = await cluster.owner()
    return owner is not None and owner != dead


async def test_the_owner_dies_mid_controlled_call_and_both_ends_fail_closed(
    cluster: Cluster,
) -> None:
    w = cluster.world
    owner = await cluster.owner()
    assert owner is not None
    others = [n for n in cluster.names if n != owner]
    inmate = await w.inmate()
    contact = await w.approved_contact(inmate, control="sight")
    tablet = await cluster.tablet(others[0], inmate, "CL-BRIDGE-1")
    booking = await w.booking(inmate, contact, start_in=1, seconds=300)
    visitor = await cluster.visitor(others[1], await w.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 20, timeout=40, what="bridged media")
    assert visitor.call is not None and visitor.call.route.value == "bridge"
    try:
        cluster.procs[owner].kill(signal.SIGKILL)  # the bridge lives in the owner
        killed = time.monotonic()
        state = await wait_until(
            lambda: _ended(tablet), timeout=10, interval=0.05, what="the tablet's end"
        )
        await wait_until(lambda: visitor.end is not None, timeout=10, interval=0.05, what="end")
        assert time.monotonic() - killed < 2.0
        assert state == "bridge_failed"
        assert visitor.end is not None and visitor.end.reason.value == "bridge_failed"
        row = await wait_until(
            lambda: _ended_row(cluster, booking["id"]), timeout=30, what="the end recorded"
        )
        assert row["end_reason"] == "bridge_failed"
    finally:
        await cluster.start_node(owner)


async def _ended_row(cluster: Cluster, booking_id: str) -> object:
    rows = await cluster.sql(
        "SELECT * FROM calls WHERE booking_id = $1 AND ended_at IS NOT NULL", booking_id
    )
    return rows[0] if rows else None


async def test_nats_restarted_mid_call_loses_no_call_and_messages_resume(
    cluster: Cluster,
) -> None:
    w = cluster.world
    inmate = await w.inmate()
    contact = await w.approved_contact(inmate)
    tablet = await cluster.tablet("b", inmate, "CL-NATS-1")
    booking = await w.booking(inmate, contact, start_in=1, seconds=600)
    visitor = await cluster.visitor("c", await w.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media")
    assert visitor.call is not None
    cluster.nats.stop()
    seen = visitor.received.video
    await cluster.nats.start()  # the same port: every node reconnects
    await wait_until(lambda: visitor.received.video > seen + 20, what="media going on")
    assert visitor.end is None
    staff = cluster.api_on("a")
    try:  # a request crosses the bus again, to whichever node owns the call
        await staff.call("POST", f"/calls/{visitor.call.call_id}/end", {"note": "after"})
    finally:
        await staff.close()
    await wait_until(lambda: visitor.end is not None, timeout=30, what="the end at the visitor")
    assert visitor.end is not None and visitor.end.reason.value == "ended_by_staff"
    assert await wait_until(lambda: _ended(tablet), timeout=10, what="end") == "ended_by_staff"
