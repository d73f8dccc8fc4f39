"""A headless tablet's camera and microphone: synthetic sources in the agent.

ARCHITECTURE.md, The tablet: a real tablet's camera and microphone are the
kiosk page's (Chromium, ``getUserMedia``), and the agent forwards their
encoded media (kiosk/device/page_peer.py). A headless simulated tablet —
tests, benchmarks, the demo before anyone opens the page — has synthetic
sources in the agent instead: a test pattern that moves (so a test can tell
two frames apart) and a 440 Hz tone, aiortc tracks like any other, both
paced in real time with pts counted in their own time base, as a camera and
a sound card would deliver them.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

VIDEO_WIDTH = 640
VIDEO_HEIGHT = 480
VIDEO_FPS = 25
VIDEO_CLOCK = 90_000  # RTP's video clock rate: pts in 1/90000 s
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020  # 20 ms per frame, Opus's usual packet
TONE_HZ = 440.0
TONE_LEVEL = 0.25  # of full scale: audible, far from clipping

Clock = Callable[[], float]

# Eight bars in BT.601 limited-range YUV: white, yellow, cyan, green, magenta, red, blue, black.
_BARS = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
]


class _Paced:
    """Hands out frame instants at a fixed rate on a monotonic clock.

    The first frame is due at once; frame n is due at start + n * period. A
    consumer that falls behind gets the late frames at once rather than
    drifting: pts stay exact and the stream catches up.
    """

    def __init__(self, period: float, clock: Clock) -> None:
        self.period = period
        self.clock = clock
        self.start: float | None = None
        self.count = 0

    async def next(self) -> int:
        if self.start is None:
            self.start = self.clock()
        due = self.start + self.count * self.period
        wait = due - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        n = self.count
        self.count += 1
        return n


class PatternTrack(MediaStreamTrack):
    """Colour bars that scroll sideways with a bright band that moves down: 640x480 at 25 fps."""

    kind = "video"

    def __init__(
        self,
        width: int = VIDEO_WIDTH,
        height: int = VIDEO_HEIGHT,
        fps: int = VIDEO_FPS,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError("width and height must be even for 4:2:0")
        self.width = width
        self.height = height
        self.fps = fps
        self._pace = _Paced(1.0 / fps, clock)
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK)
        bar = max(1, width // len(_BARS))
        # Two widths of bars so a window of `width` can slide across them.
        self._y = bytes(b[0] for b in _BARS for _ in range(bar)) * 2
        self._u = bytes(b[1] for b in _BARS for _ in range(bar // 2)) * 2
        self._v = bytes(b[2] for b in _BARS for _ in range(bar // 2)) * 2
        self._period = len(self._y) // 2

    def pattern(self, n: int) -> av.VideoFrame:
        """Frame n of the pattern (pure: the same n gives the same picture)."""
        w, h = self.width, self.height
        frame = av.VideoFrame(w, h, "yuv420p")
        shift = (n * 4) % self._period  # 4 px a frame: 100 px/s sideways
        band_top = (n * 6) % h  # and a band 6 px a frame downwards
        band = h // 8
        y_row = _tile(self._y, shift, w)
        white = b"\xeb" * w
        rows = [white if 0 <= (r - band_top) % h < band else y_row for r in range(h)]
        _fill(frame.planes[0], rows)
        cw, ch = w // 2, h // 2
        u_row = _tile(self._u, shift // 2, cw)
        v_row = _tile(self._v, shift // 2, cw)
        neutral = b"\x80" * cw
        in_band = [0 <= (2 * r - band_top) % h < band for r in range(ch)]
        _fill(frame.planes[1], [neutral if b else u_row for b in in_band])
        _fill(frame.planes[2], [neutral if b else v_row for b in in_band])
        return frame

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        frame = self.pattern(n)
        frame.pts = n * VIDEO_CLOCK // self.fps
        frame.time_base = self._time_base
        return frame


class ToneTrack(MediaStreamTrack):
    """A continuous 440 Hz sine, 48 kHz mono s16, in 20 ms frames."""

    kind = "audio"

    def __init__(
        self,
        frequency: float = TONE_HZ,
        rate: int = AUDIO_RATE,
        ptime: float = AUDIO_PTIME,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.frequency = frequency
        self.rate = rate
        self.samples = round(rate * ptime)
        self._pace = _Paced(self.samples / rate, clock)
        self._time_base = fractions.Fraction(1, rate)
        self._amplitude = int(32767 * TONE_LEVEL)

    def samples_at(self, first: int) -> bytes:
        """The s16 samples from sample index ``first`` on (pure; the phase never jumps)."""
        step = 2 * math.pi * self.frequency / self.rate
        values = [
            round(self._amplitude * math.sin(step * (first + i))) for i in range(self.samples)
        ]
        return struct.pack(f"<{self.samples}h", *values)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        first = n * self.samples
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(self.samples_at(first))
        frame.sample_rate = self.rate
        frame.pts = first
        frame.time_base = self._time_base
        return frame


def _tile(source: bytes, offset: int, width: int) -> bytes:
    return source[offset : offset + width]


def _fill(plane: Any, rows: list[bytes]) -> None:
    """Write rows into a plane, minding the padding FFmpeg may put at each line's end."""
    pad = plane.line_size - len(rows[0])
    data = (b"\x00" * pad).join(rows) + b"\x00" * pad if pad else b"".join(rows)
    plane.update(data)


@dataclass
class LocalMedia:
    """A headless tablet's own sources. ``video_for_peer``/``video_for_view`` share one camera."""

    audio: MediaStreamTrack
    video: MediaStreamTrack
    synthetic: bool
    relay: MediaRelay = field(default_factory=MediaRelay)

    def video_for_peer(self) -> MediaStreamTrack:
        return self.relay.subscribe(self.video, buffered=False)

    def video_for_view(self) -> MediaStreamTrack:
        return self.relay.subscribe(self.video, buffered=False)

    def audio_for_peer(self) -> MediaStreamTrack:
        return self.relay.subscribe(self.audio, buffered=False)

    def stop(self) -> None:
        for track in (self.audio, self.video):
            track.stop()


def synthetic_media() -> LocalMedia:
    """Fresh sources for each call: a stopped track cannot be restarted."""
    return LocalMedia(audio=ToneTrack(), video=PatternTrack(), synthetic=True)
