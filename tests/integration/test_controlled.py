"""Controlled calls through the bridge, staff monitors, and privilege (issue 5).

A real server, a real tablet agent, an aiortc visitor and an aiortc staff
monitor that speaks the staff API. R6: a monitor gets only the media the
decision allows. R13: privileged calls are never bridged or monitored.
ARCHITECTURE.md principle 3: a controlled call fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.domain.reasons import EndReason
from tests.harness import Api, World, stays, wait_until

# The metrics and audit counts are the server's totals: a world of its own for each test.
pytestmark = [pytest.mark.slow, pytest.mark.fresh_world]


class Monitor:
    """A staff monitor: asks the API for the bridge's offer and answers it."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames: dict[str, int] = {"video": 0, "audio": 0}
        self.tasks: list[asyncio.Task[None]] = []

    async def attach(self, world: World, call_id: str, kinds: list[str]) -> dict[str, Any]:
        api = await _officer(world)
        offer = await api.call(
            "POST", f"/calls/{call_id}/monitors", {"kinds": kinds}, expect=201
        )

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.create_task(self._count(track)))

        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await api.call(
            "POST",
            f"/calls/{call_id}/monitors/{offer['monitor_id']}/answer",
            {"sdp": self.pc.localDescription.sdp},
        )
        return offer

    async def _count(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1

    def kinds(self) -> set[str]:
        return {t.kind for t in self.pc.getTransceivers()}

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


_OFFICERS: dict[int, Api] = {}


async def _officer(world: World) -> Api:
    """Monitoring is the officers' work (kiosk/domain/access.py); admins may not."""
    api = _OFFICERS.get(id(world))
    if api is None:
        token = world.deployment.admin_token(f"officer{len(_OFFICERS)}", role="officer")
        api = _OFFICERS[id(world)] = Api(world.deployment.api, token)
    return api


@pytest.fixture(autouse=True)
async def _officer_api_closed(world: World) -> AsyncIterator[None]:
    yield
    officer = _OFFICERS.pop(id(world), None)
    if officer is not None:
        await officer.close()


async def _scrape(world: World) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{world.web_url}/metrics") as resp:
            return await resp.text()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _controlled_call(world: World, control: str, serial: str) -> tuple[Any, Any, str]:
    # The officer's account and token first (two processes): a monitor then attaches as
    # soon as the call is live, not after them.
    await _officer(world)
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, control=control)
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, serial)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(
        lambda: visitor.received.video > 20 and visitor.received.audio > 20,
        timeout=40,
        what="media at the visitor through the bridge",
    )
    assert visitor.call is not None
    # Media at the visitor is not yet the server's word that the call is live: wait for
    # that state before anyone attaches a monitor (which a call not yet live refuses).
    await wait_until(
        lambda: _connected(world, visitor.call.call_id), timeout=30, what="the call connected"
    )
    return tablet, visitor, visitor.call.call_id


async def _connected(world: World, call_id: str) -> bool:
    assert world.api is not None
    calls = await world.api.call("GET", "/calls?live=true")
    return any(c["id"] == call_id and c["state"] == "connected" for c in calls["items"])


async def test_a_controlled_call_runs_through_the_bridge_and_staff_watch_and_listen(
    world: World,
) -> None:
    tablet, visitor, call_id = await _controlled_call(world, "sight_and_hearing", "TAB-CTL1")
    assert visitor.call.route.value == "bridge"
    state = await wait_until(
        lambda: _media_at(tablet), timeout=90, what="media at the tablet through the bridge"
    )
    assert state["call"]["route"] == "bridge"
    both = Monitor()
    sight = Monitor()
    try:
        await both.attach(world, call_id, ["video", "audio"])
        await sight.attach(world, call_id, ["video"])
        await wait_until(
            lambda: both.frames["video"] > 10 and both.frames["audio"] > 10,
            timeout=90,
            what="the monitor sees and hears",
        )
        await wait_until(lambda: sight.frames["video"] > 10, timeout=90, what="sight sees")
        # R6: media the request leaves out is not sent at all, not merely muted.
        assert both.kinds() == {"video", "audio"}
        assert sight.kinds() == {"video"} and sight.frames["audio"] == 0
        metrics = await _scrape(world)
        assert _sample(metrics, "kiosk_bridge_calls") == 1
        assert _sample(metrics, 'kiosk_events_total{event="bridge_created"}') == 1
        assert _sample(metrics, "kiosk_bridge_monitors") == 2
    finally:
        await both.close()
        await sight.close()


async def _media_at(tablet: Any) -> dict[str, Any] | None:
    state = await tablet.state()
    media = state.get("media") or {}
    if media.get("video_received", 0) > 10 and media.get("audio_received", 0) > 10:
        return state
    return None


@pytest.mark.parametrize(
    ("control", "allowed", "forbidden"),
    [("sight", ["video"], ["audio"]), ("hearing", ["audio"], ["video"])],
)
async def test_a_monitor_gets_only_the_kind_the_decision_allows(
    world: World, control: str, allowed: list[str], forbidden: list[str]
) -> None:
    _, _, call_id = await _controlled_call(world, control, f"TAB-{control[:5]}")
    refused = await (await _officer(world)).call(
        "POST", f"/calls/{call_id}/monitors", {"kinds": forbidden}, expect=422
    )
    assert refused["error"]["code"] == "media_kind_forbidden"
    monitor = Monitor()
    try:
        await monitor.attach(world, call_id, allowed)
        kind = allowed[0]
        await wait_until(lambda: monitor.frames[kind] > 10, timeout=90, what=f"{kind} frames")
        assert monitor.kinds() == {kind}
        assert monitor.frames[forbidden[0]] == 0
    finally:
        await monitor.close()


@pytest.mark.parametrize("category", ["defence_counsel", "police"])
async def test_privileged_calls_are_never_bridged_nor_monitored(
    world: World, category: str
) -> None:
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, category=category, relation="professional")
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, f"TAB-{category[:6]}")
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media p2p")
    assert visitor.call is not None and visitor.call.route.value == "p2p"
    call_id = visitor.call.call_id
    officer = await _officer(world)
    for kinds in (["video"], ["audio"], ["video", "audio"]):
        refused = await officer.call(
            "POST", f"/calls/{call_id}/monitors", {"kinds": kinds}, expect=422
        )
        assert refused["error"]["code"] == "privileged_no_monitor"
    # R13: every attempt is audited, and no bridge peer connection ever existed.
    entries = await world.api.call("GET", "/audit")
    refusals = [e for e in entries["items"] if e["action"] == "monitor.refused"]
    assert len(refusals) == 3
    assert {e["details"]["reason"] for e in refusals} == {"privileged_no_monitor"}
    metrics = await _scrape(world)
    assert _sample(metrics, 'kiosk_events_total{event="bridge_created"}') == 0
    assert _sample(metrics, "kiosk_bridge_calls") == 0


async def test_killing_the_bridge_ends_both_sides_within_two_seconds(world: World) -> None:
    tablet, visitor, _ = await _controlled_call(world, "sight", "TAB-KILLB")
    assert world.server is not None
    world.server.kill(signal.SIGKILL)  # the bridge lives in the server process
    killed = time.monotonic()
    state = await wait_until(
        lambda: _ended(tablet), timeout=10, interval=0.05, what="the tablet ends the call"
    )
    await wait_until(lambda: visitor.closed.is_set(), timeout=10, interval=0.05, what="visitor")
    assert time.monotonic() - killed < 2.0
    assert state["ended"]["reason"] == EndReason.BRIDGE_FAILED.value
    # Fail closed: the visitor's media stops; nothing carries on peer to peer.
    last = visitor.received.last_video_at
    await stays(lambda: visitor.received.last_video_at == last, 1.0, "no video at the visitor")


async def _ended(tablet: Any) -> dict[str, Any] | None:
    state = await tablet.state()
    return state if state.get("phase") == "ended" else None
