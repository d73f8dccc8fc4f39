"""Synthetic camera and microphone for bridge tests and the bridge bench.

Each source is recognisable at the far end after a real encode, network hop and
decode: the video is a bright square moving along a row chosen per source (so a
receiver can tell whose video it got and that it moves), the audio a sine tone
of a frequency chosen per source (told apart by its zero-crossing rate).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import itertools
import math
import time

from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, VideoFrame

WIDTH, HEIGHT = 640, 480
FPS = 25
VIDEO_CLOCK = 90000
SQUARE = 64
_DARK, _BRIGHT = 16, 235

AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


def synthetic_frame(index: int, row: int) -> VideoFrame:
    """Frame ``index`` of the moving-square pattern with the square's top at ``row``."""
    x = (index * 8) % (WIDTH - SQUARE)
    luma = bytearray([_DARK]) * (WIDTH * HEIGHT)
    bright = bytes([_BRIGHT]) * SQUARE
    for y in range(row, row + SQUARE):
        start = y * WIDTH + x
        luma[start : start + SQUARE] = bright
    frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
    frame.planes[0].update(bytes(luma))
    chroma = bytes([128]) * (WIDTH * HEIGHT // 4)
    frame.planes[1].update(chroma)
    frame.planes[2].update(chroma)
    frame.pts = index * (VIDEO_CLOCK // FPS)
    frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    return frame


_THRESHOLD = bytes(0 if v < 128 else 1 for v in range(256))


def square_position(frame: VideoFrame) -> tuple[int, int] | None:
    """Top-left of the bright square in a decoded frame, or None if there is none."""
    plane = frame.planes[0]
    stride = plane.line_size
    data = bytes(plane)
    for y in range(0, frame.height, 2):
        row = data[y * stride : y * stride + frame.width].translate(_THRESHOLD)
        x = row.find(b"\x01")
        if x >= 0:
            return x, y
    return None


class SyntheticVideoTrack(MediaStreamTrack):
    """640x480 VP8-bound video at 25 fps: a square moving across row ``row``."""

    kind = "video"

    def __init__(self, row: int) -> None:
        super().__init__()
        self.row = row
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / FPS
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = synthetic_frame(self._index, self.row)
        self._index += 1
        return frame


class SineAudioTrack(MediaStreamTrack):
    """Mono 48 kHz s16 sine tone of ``frequency`` Hz in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self._sample = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._sample / AUDIO_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        step = 2 * math.pi * self.frequency / AUDIO_RATE
        samples = array.array(
            "h",
            (int(12000 * math.sin(step * (self._sample + i))) for i in range(AUDIO_SAMPLES)),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._sample += AUDIO_SAMPLES
        return frame


def dominant_frequency(frame: AudioFrame) -> float:
    """Estimate a decoded tone's frequency from its zero crossings (first channel)."""
    mono = _samples(frame)[:: len(frame.layout.channels)]
    crossings = sum(1 for a, b in itertools.pairwise(mono) if (a < 0) != (b < 0))
    return crossings * frame.sample_rate / (2 * len(mono)) if len(mono) > 1 else 0.0


def _samples(frame: AudioFrame) -> array.array[int]:
    """The s16 packed samples of a frame (the plane's buffer may be longer)."""
    assert frame.format.name == "s16", frame.format.name
    return array.array("h", bytes(frame.planes[0]))[: frame.samples * len(frame.layout.channels)]


def loudness(frame: AudioFrame) -> float:
    samples = _samples(frame)
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
