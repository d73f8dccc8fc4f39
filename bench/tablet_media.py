"""Tablet media bench: the agent's CPU per call, forwarding the kiosk page's media vs decoding.

Run: ``.venv/bin/python bench/tablet_media.py`` (about a minute; ``--seconds``).

The agent runs in its own process, with the tablet's real ``Call`` under a
verified grant; the bench reads that process's CPU time (all its threads)
over a ``--seconds`` (20) call, 640x480 at 25 fps VP8 and Opus both ways.
The other ends (the visitor, and the kiosk page where there is one) are plain
aiortc peers in the bench's own process, not counted.

- ``forward`` (now): the kiosk page captures and encodes, the agent forwards
  the encoded media between the page's loopback connection and the visitor
  (``kiosk.device.page_peer``, ``kiosk.media.forwarding``), never decoding.
- ``baseline`` (before): the agent encodes the camera to VP8 and Opus itself,
  decodes the visitor's VP8 and Opus, and JPEGs the picture for the page (the
  other end at 15 fps, the self view at 10 fps, as the old ``/api/frames``
  did). Camera frames are prepared beforehand, so capture costs nothing.

Also printed: the delay the loopback hop adds, page -> visitor. The page's
frames carry their number in a bar code; the visitor decodes it and notes
the arrival. The same page -> visitor pair directly connected (no agent) in
the same run is the reference: first frame and steady state (p50, p95), via
the agent and direct, and the difference. Targets: ratio >= 5, added p95
<= 20 ms. The ratio is printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.device.media import VIDEO_CLOCK, PatternTrack, ToneTrack

W, H, FPS = 640, 480, 25
BITS = 12  # frame number bar code: 12 blocks of 32 px along the top rows
BLOCK = 32
PAGE_HOST = "127.0.0.2"


# --- the camera: frames prepared beforehand, with their number as a bar code ---------


def camera_frames(count: int = 50) -> list[av.VideoFrame]:
    pattern = PatternTrack(W, H, FPS)
    return [pattern.pattern(n) for n in range(count)]


class Camera(MediaStreamTrack):
    """25 fps from prepared frames, each stamped with its number; ``sent[n]`` = when."""

    kind = "video"

    def __init__(self, frames: list[av.VideoFrame], stamped: bool = True) -> None:
        super().__init__()
        self.frames = frames
        self.stamped = stamped
        self.sent: dict[int, float] = {}
        self.n = 0
        self.start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.n / FPS
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        n = self.n
        self.n += 1
        base = self.frames[n % len(self.frames)]
        frame = stamp(base, n) if self.stamped else base  # unstamped: capture costs nothing
        frame.pts = n * VIDEO_CLOCK // FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent[n] = time.monotonic()
        return frame


def stamp(frame: av.VideoFrame, n: int) -> av.VideoFrame:
    out = av.VideoFrame(W, H, "yuv420p")
    for index, plane in enumerate(frame.planes):
        data = bytearray(bytes(plane))
        if index == 0:
            line = plane.line_size
            for bit in range(BITS):
                value = bytes([235 if (n >> bit) & 1 else 16]) * BLOCK
                for row in range(BLOCK):
                    start = row * line + bit * BLOCK
                    data[start : start + BLOCK] = value
        out.planes[index].update(bytes(data))
    return out


def read_stamp(frame: av.VideoFrame) -> int:
    plane = frame.planes[0]
    data, line = bytes(plane), plane.line_size
    n = 0
    for bit in range(BITS):
        centre = (BLOCK // 2) * line + bit * BLOCK + BLOCK // 2
        around = [data[centre + dy * line + dx] for dy in (-4, 0, 4) for dx in (-4, 0, 4)]
        if sum(around) / len(around) > 128:
            n |= 1 << bit
    return n


class Microphone(MediaStreamTrack):
    """20 ms Opus-sized frames of a tone, prepared beforehand: capture costs nothing."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        tone = ToneTrack()
        self.chunks = [tone.samples_at(i * tone.samples) for i in range(50)]
        self.samples = tone.samples
        self.n = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.n * 0.020 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(self.chunks[self.n % len(self.chunks)])
        frame.sample_rate = 48_000
        frame.pts = self.n * self.samples
        frame.time_base = fractions.Fraction(1, 48_000)
        self.n += 1
        return frame


class End:
    """A peer in the bench's process: sends a camera and a tone, notes what it receives."""

    def __init__(self, frames: list[av.VideoFrame], stamps: bool = False) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.camera = Camera(frames)
        self.pc.addTrack(ToneTrack())
        self.pc.addTrack(self.camera)
        self.stamps = stamps
        self.got: dict[int, float] = {}
        self.frames = {"audio": 0, "video": 0}
        self.tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", lambda t: self.tasks.append(asyncio.ensure_future(self._read(t))))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if self.stamps and track.kind == "video":
                    self.got.setdefault(read_stamp(frame), time.monotonic())
        except MediaStreamError:
            pass

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for t in self.tasks:
            t.cancel()


# --- the agent's process ------------------------------------------------------------------


class JpegEncoder:
    """Today's path to the page: decoded frames to JPEG (MJPEG through PyAV, qscale 5)."""

    def __init__(self, quality: int = 5) -> None:
        codec = av.CodecContext.create("mjpeg", "w")
        codec.width, codec.height = W, H
        codec.pix_fmt = "yuvj420p"
        codec.time_base = fractions.Fraction(1, FPS)
        codec.options = {"qscale": str(quality)}
        codec.qmin = codec.qmax = quality
        self.codec = codec
        self.count = 0

    def encode(self, frame: av.VideoFrame) -> bytes:
        picture = frame.reformat(format="yuvj420p", width=W, height=H)
        picture.pts = self.count
        picture.time_base = fractions.Fraction(1, FPS)
        self.count += 1
        return b"".join(bytes(p) for p in self.codec.encode(picture))  # type: ignore[attr-defined]


class Limit:
    def __init__(self, fps: float) -> None:
        self.period, self.last = 1.0 / fps, 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.period:
            return False
        self.last = now
        return True


def agent_process(mode: str, conn: Connection) -> None:
    if os.environ.get("BENCH_PROFILE") == mode:  # where the agent's time goes
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(asyncio.run, _agent(mode, conn))
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    asyncio.run(_agent(mode, conn))


async def _agent(mode: str, conn: Connection) -> None:
    from kiosk.device.call import Call
    from kiosk.device.deadline import Accepted, check_grant
    from kiosk.device.media import LocalMedia
    from kiosk.device.page_peer import PageMedia
    from kiosk.domain.model import Category, ControlLevel, Route
    from kiosk.domain.reasons import EndReason
    from kiosk.wire.grants import Grant, ReplayGuard, sign_grant

    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    grant = Grant(
        call_id="bench", device_id="bench", inmate_id="i", contact_id="c",
        category=Category.PERSONAL, route=Route.P2P, control=ControlLevel.NONE,
        not_before=now - timedelta(minutes=1), not_after=now + timedelta(minutes=10),
        issued_at=now,
    )
    decision = check_grant(sign_grant(grant, key), key.public_key(), "bench", ReplayGuard(),
                           time.monotonic(), sent_monotonic=time.monotonic())
    assert isinstance(decision, Accepted)
    loop = asyncio.get_running_loop()
    recv = lambda: loop.run_in_executor(None, conn.recv)  # noqa: E731
    if mode == "forward":
        page_media = PageMedia("bench", PAGE_HOST)
        call = Call(decision, page_media, [])
    else:
        camera = Camera(camera_frames(), stamped=False)
        media = LocalMedia(audio=Microphone(), video=camera, synthetic=True, relay=MediaRelay())
        remote_jpeg, self_jpeg = JpegEncoder(), JpegEncoder()
        remote_limit, self_limit = Limit(15), Limit(10)

        def on_video(frame: av.VideoFrame) -> None:
            if remote_limit.due():
                remote_jpeg.encode(frame)

        call = Call(decision, media, [], on_video=on_video)

        async def self_view() -> None:
            track = media.video_for_view()
            try:
                while True:
                    frame = await track.recv()
                    if self_limit.due():
                        self_jpeg.encode(frame)
            except MediaStreamError:
                pass

        viewer = asyncio.ensure_future(self_view())
    conn.send(await call.make_offer())
    await call.apply_answer(await recv())
    if mode == "forward":
        conn.send(await page_media.accept_page(await recv()))
    await recv()  # media flows: measure from here
    cpu = time.process_time()
    counted = handled(call, mode)
    await recv()
    conn.send((time.process_time() - cpu, handled(call, mode) - counted))
    await call.close(EndReason.HANGUP)
    if mode != "forward":
        viewer.cancel()


def handled(call: Any, mode: str) -> int:
    """Video frames the agent handled: forwarded both ways, or decoded plus camera frames."""
    if mode == "forward":
        return int(call.media.video_from_page + call.media.video_to_page)
    return int(call.counters.video_frames + call.media.video.n)


# --- the bench ------------------------------------------------------------------------


async def call(mode: str, seconds: float, frames: list[av.VideoFrame]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=agent_process, args=(mode, theirs), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    recv = lambda: loop.run_in_executor(None, mine.recv)  # noqa: E731
    visitor = End(frames, stamps=True)
    page = End(frames) if mode == "forward" else None
    try:
        mine.send(await visitor.answer(await recv()))
        if page is not None:
            mine.send(await page.offer())
            await page.accept(await recv())
        ends = [visitor] + ([page] if page else [])
        try:
            await until(lambda: all(e.frames["video"] > 25 and e.frames["audio"] > 25
                                    for e in ends))
        except RuntimeError:
            print([e.frames for e in ends], [e.pc.connectionState for e in ends])
            raise
        mine.send("start")
        await asyncio.sleep(seconds)
        mine.send("stop")
        cpu, frames = await recv()
        sender = page.camera if page is not None else None
        return {"cpu": cpu, "frames": frames,
                "delays": delays(sender, visitor) if sender else None}
    finally:
        for end in (visitor, page):
            if end is not None:
                await end.close()
        proc.join(10)


async def direct(seconds: float, frames: list[av.VideoFrame]) -> dict[str, Any]:
    """The reference for the hop: the page's pair connected straight to the visitor."""
    page, visitor = End(frames), End(frames, stamps=True)
    try:
        await page.accept(await visitor.answer(await page.offer()))
        await until(lambda: visitor.frames["video"] > 25)
        await asyncio.sleep(seconds)
        return {"delays": delays(page.camera, visitor)}
    finally:
        await page.close()
        await visitor.close()


def delays(camera: Camera, visitor: End) -> dict[str, Any]:
    pairs = sorted((n, visitor.got[n] - camera.sent[n]) for n in visitor.got if n in camera.sent)
    values = [d for _, d in pairs]
    steady = values[len(values) // 5 :]  # the first fifth: start-up
    return {"first": values[0] if values else float("nan"),
            "p50": pct(steady, 50), "p95": pct(steady, 95), "count": len(values)}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def until(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("media did not start")
        await asyncio.sleep(0.05)


def check_address() -> None:
    import ifaddr

    found = {ip.ip for a in ifaddr.get_adapters() for ip in a.ips if isinstance(ip.ip, str)}
    if PAGE_HOST not in found:
        sys.exit(f"{PAGE_HOST} is not on lo: `ip address add {PAGE_HOST}/32 dev lo` "
                 "(docs/deploy.md)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    check_address()
    frames = camera_frames()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"one call of {args.seconds:.0f} s per path, 640x480@{FPS} VP8 + Opus both ways")
    # One at a time: the bench's own peers must keep up (50 video frames/s per path).
    forward = await call("forward", args.seconds, frames)
    reference = await direct(args.seconds, frames)
    baseline = await call("baseline", args.seconds, frames)
    for name, result in (("forward (page's media forwarded)", forward),
                         ("baseline (decode, JPEG, encode)", baseline)):
        share = result["cpu"] / args.seconds * 100
        per_frame = result["cpu"] / max(result["frames"], 1) * 1000
        print(f"agent CPU, {name}: {result['cpu']:.2f} s ({share:.1f}% of a core), "
              f"{result['frames'] / args.seconds:.0f} video frames/s handled (50 expected), "
              f"{per_frame:.2f} ms per video frame")
    via, ref = forward["delays"], reference["delays"]
    print("page -> visitor frame delay (ms): via the agent / direct / added")
    for key in ("first", "p50", "p95"):
        print(f"  {key:5}: {via[key] * 1000:7.1f} / {ref[key] * 1000:7.1f} / "
              f"{(via[key] - ref[key]) * 1000:7.1f}")
    added = (via["p95"] - ref["p95"]) * 1000
    print(f"added p95 {added:.1f} ms; target <= 20 ms: {'met' if added <= 20 else 'NOT met'}")
    per_frame = (baseline["cpu"] / max(baseline["frames"], 1)) / max(
        forward["cpu"] / max(forward["frames"], 1), 1e-9
    )
    print(f"ratio per video frame handled: {per_frame:.1f}x")
    ratio = baseline["cpu"] / max(forward["cpu"], 1e-9)
    print(f"ratio (baseline CPU / forward CPU): {ratio:.1f}x; target >= 5x: "
          f"{'met' if ratio >= 5 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
