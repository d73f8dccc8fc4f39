"""The bridge forwards real aiortc media between two legs and to monitors, never decoding it.

Real peers over the machine's own interface (aioice leaves 127.0.0.1 out of its
host candidates), iceServers=[]; synthetic camera and microphone from
tests/bridge_media.py, told apart at the far end by the square's row and the
tone's pitch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc import rtcrtpreceiver as aiortc_receiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.domain.model import ControlLevel, MediaKind
from kiosk.media import forwarding
from kiosk.signalling.bridge import Bridge, BridgeError, BridgeFailure, Leg
from tests.bridge_media import (
    SineAudioTrack,
    SyntheticVideoTrack,
    dominant_frequency,
    loudness,
    square_position,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.harness import wait_until as until

pytestmark = pytest.mark.timeout(120)

TABLET_ROW, VISITOR_ROW = 96, 320
TABLET_TONE, VISITOR_TONE = 440.0, 1200.0


@dataclass
class Received:
    """What one incoming track delivered, decoded by the client's own aiortc."""

    kind: str
    first_at: float | None = None
    positions: list[tuple[int, int]] = field(default_factory=list)
    tones: list[float] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.positions) if self.kind == "video" else len(self.tones)

    def rows(self) -> set[int]:
        return {y for _, y in self.positions}

    def columns(self) -> set[int]:
        return {x for x, _ in self.positions}


class Client:
    """An aiortc endpoint: a leg (sends and receives) or a monitor (receives only)."""

    def __init__(self, row: int | None = None, tone: float | None = None) -> None:
        # max-bundle: aiortc's default "balanced" policy mishandles a second m-line of
        # a kind next to the other kind (see Bridge._peer_connection); browsers do not.
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = RTCPeerConnection(config)
        self.outgoing: list[MediaStreamTrack] = []
        if row is not None:
            self.outgoing.append(SyntheticVideoTrack(row))
        if tone is not None:
            self.outgoing.append(SineAudioTrack(tone))
        self.received: list[Received] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        record = Received(track.kind)
        self.received.append(record)
        self._tasks.append(asyncio.ensure_future(self._read(track, record)))

    async def _read(self, track: MediaStreamTrack, record: Received) -> None:
        try:
            while True:
                frame = await track.recv()
                if record.first_at is None:
                    record.first_at = time.monotonic()
                if track.kind == "video":
                    position = square_position(frame)  # type: ignore[arg-type]
                    if position is not None:
                        record.positions.append(position)
                else:
                    record.tones.append(dominant_frequency(frame))  # type: ignore[arg-type]
                    record.levels.append(loudness(frame))  # type: ignore[arg-type]
        except MediaStreamError:
            pass

    async def offer(self) -> str:
        for track in self.outgoing:
            self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for track in self.outgoing:
            self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


@dataclass
class Call:
    bridge: Bridge
    tablet: Client
    visitor: Client
    failures: list[BridgeFailure]
    monitors_gone: list[str]


async def connect_call() -> Call:
    """Tablet offers (as the aiortc agent does); the bridge offers to the visitor (a browser)."""
    failures: list[BridgeFailure] = []
    gone: list[str] = []
    bridge = Bridge([], on_failure=failures.append, on_monitor_gone=gone.append)
    tablet = Client(TABLET_ROW, TABLET_TONE)
    visitor = Client(VISITOR_ROW, VISITOR_TONE)
    await tablet.accept(await bridge.answer_leg(Leg.TABLET, await tablet.offer()))
    await bridge.leg_answer(Leg.VISITOR, await visitor.answer(await bridge.offer_leg(Leg.VISITOR)))
    return Call(bridge, tablet, visitor, failures, gone)


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    c = await connect_call()
    yield c
    await c.bridge.close()
    await c.tablet.close()
    await c.visitor.close()


async def attach_monitor(bridge: Bridge, kinds: frozenset[MediaKind]) -> tuple[str, Client, str]:
    monitor_id, offer = await bridge.add_monitor(kinds)
    monitor = Client()
    await bridge.monitor_answer(monitor_id, await monitor.answer(offer))
    return monitor_id, monitor, offer


def media_lines(sdp: str) -> list[str]:
    return [line.split()[0][2:] for line in sdp.splitlines() if line.startswith("m=")]


def moving(record: Received) -> bool:
    return len(record.columns()) >= 3


def shows(record: Received, row: int) -> bool:
    return bool(record.rows()) and all(abs(y - row) <= 2 for y in record.rows())


def sounds(record: Received, tone: float) -> bool:
    loud = [f for f, level in zip(record.tones, record.levels, strict=True) if level > 1000]
    if len(loud) < 10:
        return False
    loud.sort()
    return abs(loud[len(loud) // 2] - tone) < tone * 0.1


async def test_legs_receive_each_others_moving_video_and_tone(call: Call) -> None:
    def both_ways() -> bool:
        t, v = call.tablet.of_kind("video"), call.visitor.of_kind("video")
        ta, va = call.tablet.of_kind("audio"), call.visitor.of_kind("audio")
        return bool(t and v and ta and va) and all(r.frames >= 25 for r in (*t, *v, *ta, *va))

    await until(both_ways, 40, "a second of video and audio both ways")
    [tablet_sees] = call.tablet.of_kind("video")
    [visitor_sees] = call.visitor.of_kind("video")
    assert shows(tablet_sees, VISITOR_ROW) and moving(tablet_sees)
    assert shows(visitor_sees, TABLET_ROW) and moving(visitor_sees)
    [tablet_hears] = call.tablet.of_kind("audio")
    [visitor_hears] = call.visitor.of_kind("audio")
    assert sounds(tablet_hears, VISITOR_TONE), tablet_hears.tones[-10:]
    assert sounds(visitor_hears, TABLET_TONE), visitor_hears.tones[-10:]
    assert call.failures == []


@pytest.mark.parametrize(
    "level", [ControlLevel.SIGHT, ControlLevel.HEARING, ControlLevel.SIGHT_AND_HEARING]
)
async def test_monitor_gets_exactly_the_kinds_its_level_allows(
    call: Call, level: ControlLevel
) -> None:
    monitor_id, monitor, offer = await attach_monitor(call.bridge, level.media_kinds)
    try:
        allowed = {k.value for k in level.media_kinds}
        # R6: a forbidden kind has no m-line and no transceiver at all, not a muted one.
        assert set(media_lines(offer)) == allowed
        assert "abs-send-time" not in offer
        assert media_lines(offer).count(next(iter(allowed))) == 2  # tablet and visitor
        assert {t.kind for t in monitor.pc.getTransceivers()} == allowed
        bridge_side = call.bridge._monitors[monitor_id].pc
        assert {t.kind for t in bridge_side.getTransceivers()} == allowed

        def everything_flowing() -> bool:
            return len(monitor.received) == 2 * len(allowed) and all(
                r.frames >= 15 for r in monitor.received
            )

        await until(everything_flowing, 40, f"{level} monitor media")
        assert {r.kind for r in monitor.received} == allowed
        if "video" in allowed:
            videos = monitor.of_kind("video")
            assert sorted(next(iter(r.rows())) for r in videos) == [TABLET_ROW, VISITOR_ROW]
            assert all(moving(r) for r in videos)
        if "audio" in allowed:
            audios = monitor.of_kind("audio")
            assert any(sounds(r, TABLET_TONE) for r in audios)
            assert any(sounds(r, VISITOR_TONE) for r in audios)
    finally:
        await monitor.close()


async def test_two_monitors_at_once(call: Call) -> None:
    _, watcher, _ = await attach_monitor(call.bridge, ControlLevel.SIGHT.media_kinds)
    _, listener, _ = await attach_monitor(call.bridge, ControlLevel.SIGHT_AND_HEARING.media_kinds)
    try:
        await until(
            lambda: (
                len(watcher.received) == 2
                and len(listener.received) == 4
                and all(r.frames >= 15 for r in (*watcher.received, *listener.received))
            ),
            40,
            "both monitors receiving",
        )
        assert len(call.bridge.monitor_ids) == 2
        assert call.bridge.stats()["tablet-video"]["consumers"] == 3  # visitor + two monitors
    finally:
        await watcher.close()
        await listener.close()


async def test_late_monitor_gets_a_key_frame_promptly_because_the_bridge_asks(call: Call) -> None:
    await until(
        lambda: (
            all(r.frames >= 50 for r in call.visitor.of_kind("video"))
            and bool(call.visitor.received)
        ),
        40,
        "the call settling past its first key frame",
    )
    # aiortc's encoder makes a key frame only at start and on request (gop 3000 frames),
    # so a late viewer sees video only if the bridge asks upstream for one.
    before = call.bridge.stats()["tablet-video"]
    _, monitor, _ = await attach_monitor(call.bridge, ControlLevel.SIGHT.media_kinds)
    try:
        attached = time.monotonic()
        await until(
            lambda: (
                len(monitor.of_kind("video")) == 2
                and all(r.frames >= 1 for r in monitor.of_kind("video"))
            ),
            20,
            "the late monitor's first decoded frames",
        )
        after = call.bridge.stats()["tablet-video"]
        assert after["keyframe_requests_sent"] > before["keyframe_requests_sent"]
        assert after["keyframes_in"] > before["keyframes_in"]
        first = min(r.first_at for r in monitor.of_kind("video") if r.first_at is not None)
        print(f"late monitor: first frame {first - attached:.2f} s after attaching")
    finally:
        await monitor.close()


async def test_consumer_pli_goes_upstream_rate_limited(call: Call) -> None:
    await until(
        lambda: (
            all(r.frames >= 25 for r in call.visitor.of_kind("video"))
            and bool(call.visitor.received)
        ),
        30,
        "tablet video at the visitor",
    )
    [visitor_video] = [r for r in call.visitor.pc.getReceivers() if r.track.kind == "video"]
    ssrc = forwarding.media_ssrc(visitor_video)
    assert ssrc is not None
    before = call.bridge.stats()["tablet-video"]
    for _ in range(20):  # a burst of real RTCP PLIs from the visitor, as a browser might send
        await visitor_video._send_rtcp_pli(ssrc)
    await until(
        lambda: call.bridge.stats()["tablet-video"]["keyframes_in"] > before["keyframes_in"],
        30,
        "the tablet's key frame, asked for upstream",
    )
    after = call.bridge.stats()["tablet-video"]
    sent = after["keyframe_requests_sent"] - before["keyframe_requests_sent"]
    assert 1 <= sent <= 4  # one at once, then at most one per 0.5 s, not twenty
    assert after["keyframes_in"] > before["keyframes_in"]  # the tablet answered upstream


async def test_closing_one_leg_fails_the_call_closed(call: Call) -> None:
    await until(
        lambda: (
            all(r.frames >= 5 for r in call.visitor.of_kind("video"))
            and bool(call.visitor.received)
        ),
        30,
        "media flowing",
    )
    visitor_states: list[str] = []
    call.visitor.pc.on(
        "connectionstatechange", lambda: visitor_states.append(call.visitor.pc.connectionState)
    )
    await call.tablet.close()
    await until(lambda: bool(call.failures), 15, "on_failure after the tablet leg closed")
    assert call.failures[0].leg is Leg.TABLET
    assert call.bridge.closed
    # Fail closed: the bridge drops the visitor too; nothing continues around it.
    await until(lambda: "closed" in visitor_states, 15, "the visitor leg being closed")
    assert len(call.failures) == 1


async def test_no_frame_is_decoded_or_encoded_in_the_bridge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoding_threads: set[threading.Thread] = set()
    real_get_decoder = aiortc_receiver.get_decoder  # type: ignore[attr-defined]

    def counting_get_decoder(codec):  # type: ignore[no-untyped-def]
        decoding_threads.add(threading.current_thread())
        return real_get_decoder(codec)

    monkeypatch.setattr(aiortc_receiver, "get_decoder", counting_get_decoder)
    c = await connect_call()
    _, monitor, _ = await attach_monitor(c.bridge, ControlLevel.SIGHT_AND_HEARING.media_kinds)
    try:
        await until(
            lambda: len(monitor.received) == 4 and all(r.frames >= 25 for r in monitor.received),
            40,
            "media through the bridge",
        )
        bridge_pcs = [
            *c.bridge._legs.values(),
            c.bridge._monitors[next(iter(c.bridge.monitor_ids))].pc,
        ]
        bridge_receivers = [r for pc in bridge_pcs for r in pc.getReceivers()]
        bridge_senders = [s for pc in bridge_pcs for s in pc.getSenders()]
        bridge_threads = {
            r._RTCRtpReceiver__decoder_thread  # type: ignore[attr-defined]
            for r in bridge_receivers
        } - {None}
        client_threads = {
            r._RTCRtpReceiver__decoder_thread  # type: ignore[attr-defined]
            for r in (*c.tablet.pc.getReceivers(), *monitor.pc.getReceivers())
        }
        assert bridge_threads, "the bridge's receivers should be running"
        assert all(forwarding.is_tapped(r) for r in bridge_receivers)
        assert client_threads <= decoding_threads  # the probe sees the clients decode
        assert not bridge_threads & decoding_threads  # and the bridge never does
        assert all(forwarding.never_encoded(s) for s in bridge_senders)  # only packed packets
    finally:
        await c.bridge.close()
        for client in (c.tablet, c.visitor, monitor):
            await client.close()


async def test_a_leg_that_never_connects_fails_the_call() -> None:
    failures: list[BridgeFailure] = []
    bridge = Bridge([], on_failure=failures.append, connect_timeout=1.0)
    try:
        await bridge.offer_leg(Leg.VISITOR)  # the visitor never answers
        await until(lambda: bool(failures), 10, "the connect deadline")
        assert failures[0].leg is Leg.VISITOR and "not connected" in failures[0].detail
        assert bridge.closed
    finally:
        await bridge.close()


async def test_bad_sdp_is_refused_with_a_clear_error_and_the_leg_can_retry() -> None:
    bridge = Bridge([])
    tablet = Client(TABLET_ROW, TABLET_TONE)
    try:
        with pytest.raises(BridgeError, match="tablet offer refused"):
            await bridge.answer_leg(Leg.TABLET, "v=0\r\nthis is not sdp\r\n")
        offer = await tablet.offer()
        # The bridge forwards VP8 as it is: a leg without VP8 cannot join.
        with pytest.raises(BridgeError, match="tablet offer refused: OperationError"):
            await bridge.answer_leg(Leg.TABLET, strip_codec(offer, "VP8"))
        assert not bridge.closed
        assert all(source["consumers"] == 0 for source in bridge.stats().values())
        answer = await bridge.answer_leg(Leg.TABLET, offer)
        assert "VP8/90000" in answer and "H264" not in answer
        assert "abs-send-time" not in answer  # no per-packet bitrate estimation at the bridge
        await tablet.accept(answer)
    finally:
        await bridge.close()
        await tablet.close()


def strip_codec(sdp: str, name: str) -> str:
    """Remove a video codec (and its RTX) from an offer, as a peer without it would send."""
    lines = sdp.splitlines()
    pts = {
        line.split()[0].split(":")[1]
        for line in lines
        if line.startswith("a=rtpmap:") and f" {name}/" in line
    }
    pts |= {
        line.split()[0].split(":")[1]
        for line in lines
        if line.startswith("a=fmtp:") and any(f"apt={pt}" == line.split()[1] for pt in pts)
    }
    kept = []
    for line in lines:
        if line.startswith("m=video"):
            head, *formats = line.split(" ")
            line = " ".join([head, *formats[:2], *[f for f in formats[2:] if f not in pts]])
        elif (
            line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))
            and line.split()[0].split(":")[1] in pts
        ):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


async def test_a_monitor_leaving_does_not_end_the_call(call: Call) -> None:
    monitor_id, monitor, _ = await attach_monitor(call.bridge, ControlLevel.SIGHT.media_kinds)
    await until(lambda: any(r.frames >= 5 for r in monitor.received), 30, "monitor video")
    await monitor.close()
    await until(
        lambda: call.monitors_gone == [monitor_id], 15, "the bridge noticing the monitor left"
    )
    assert call.bridge.monitor_ids == frozenset()
    assert call.bridge.stats()["tablet-video"]["consumers"] == 1  # the visitor only
    frames = call.tablet.of_kind("video")[0].frames
    await until(lambda: call.tablet.of_kind("video")[0].frames > frames + 10, 10, "call going on")
    assert call.failures == [] and not call.bridge.closed


async def test_a_monitor_needs_at_least_one_kind() -> None:
    bridge = Bridge([])
    try:
        with pytest.raises(BridgeError, match="at least one media kind"):
            await bridge.add_monitor(ControlLevel.NONE.media_kinds)
    finally:
        await bridge.close()


# --- a real browser on the bridge ------------------------------------------------------

CHROMIUM_FLAGS = CHROMIUM_ARGS  # the browser tests' flags (tests/e2e/conftest.py)

PAGE = """<!doctype html><meta charset="utf-8"><title>bridge test</title><script>
async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise(done => pc.addEventListener("icegatheringstatechange",
    () => pc.iceGatheringState === "complete" && done()));
}
function play(pc) {
  // Chrome decodes received audio only when something plays it out.
  pc.addEventListener("track", e => {
    const el = document.createElement(e.track.kind);
    el.srcObject = new MediaStream([e.track]);
    el.autoplay = true;
    document.body.append(el);
  });
}
async function visitorOffer() {
  const stream = await navigator.mediaDevices.getUserMedia(
    {video: {width: 640, height: 480}, audio: true});
  const pc = window.visitor = new RTCPeerConnection({iceServers: []});
  play(pc);
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return pc.localDescription.sdp;
}
async function visitorAccept(sdp) {
  await window.visitor.setRemoteDescription({type: "answer", sdp});
}
async function monitorAnswer([name, sdp]) {
  const pc = window[name] = new RTCPeerConnection({iceServers: []});
  play(pc);
  await pc.setRemoteDescription({type: "offer", sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  return pc.localDescription.sdp;
}
async function inbound(name) {
  const out = [];
  (await window[name].getStats()).forEach(s => {
    if (s.type === "inbound-rtp") out.push({kind: s.kind, frames: s.framesDecoded || 0,
      samples: s.totalSamplesReceived || 0, level: s.audioLevel || 0,
      packets: s.packetsReceived || 0, codec: s.codecId || "", discarded: s.packetsDiscarded || 0});
  });
  return out;
}
function receiverKinds(name) {
  return window[name].getTransceivers().map(t => t.receiver.track.kind);
}
</script>"""


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    from aiohttp import web
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    app = web.Application()

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")  # loopback is a secure context
            yield page
        finally:
            await browser.close()
            await runner.cleanup()


async def test_chromium_visitor_and_monitors_through_the_bridge(browser_page: Any) -> None:
    page = browser_page
    failures: list[BridgeFailure] = []
    bridge = Bridge([], on_failure=failures.append)
    tablet = Client(TABLET_ROW, TABLET_TONE)
    try:
        await tablet.accept(await bridge.answer_leg(Leg.TABLET, await tablet.offer()))
        # The browser offers (Chrome's full codec and extension list); the bridge answers.
        offer = await page.evaluate("visitorOffer()")
        await page.evaluate("visitorAccept", await bridge.answer_leg(Leg.VISITOR, offer))
        for name, level in (("sight", ControlLevel.SIGHT), ("hearing", ControlLevel.HEARING)):
            monitor_id, monitor_offer = await bridge.add_monitor(level.media_kinds)
            answer = await page.evaluate("monitorAnswer", [name, monitor_offer])
            await bridge.monitor_answer(monitor_id, answer)

        async def browser_sees(name: str, kinds: dict[str, int]) -> bool:
            stats = await page.evaluate("inbound", name)
            got = {k: [s for s in stats if s["kind"] == k] for k in kinds}
            return all(
                len(got[k]) == n
                and all(
                    s["frames"] >= 25
                    if k == "video"
                    else s["samples"] > 48000 and s["level"] > 0.05
                    for s in got[k]
                )
                for k, n in kinds.items()
            )

        deadline = time.monotonic() + 40
        while not (
            await browser_sees("visitor", {"video": 1, "audio": 1})
            and await browser_sees("sight", {"video": 2})
            and await browser_sees("hearing", {"audio": 2})
            and any(r.frames >= 25 for r in tablet.of_kind("video"))
            and any(r.frames >= 50 for r in tablet.of_kind("audio"))
        ):
            assert time.monotonic() < deadline, (
                await page.evaluate("inbound", "visitor"),
                await page.evaluate("inbound", "sight"),
                await page.evaluate("inbound", "hearing"),
                [(r.kind, r.frames) for r in tablet.received],
            )
            await asyncio.sleep(0.25)
        # R6 in the browser itself: no transceiver at all for a kind the level forbids.
        assert await page.evaluate("receiverKinds", "sight") == ["video", "video"]
        assert await page.evaluate("receiverKinds", "hearing") == ["audio", "audio"]
        assert failures == []
    finally:
        await bridge.close()
        await tablet.close()
