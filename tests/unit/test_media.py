"""Synthetic camera and microphone: real aiortc tracks, paced in real time, moving, exact pts."""

from __future__ import annotations

import fractions
import itertools
import math
import struct
import time

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from kiosk.device.media import (
    AUDIO_RATE,
    VIDEO_CLOCK,
    PatternTrack,
    ToneTrack,
    synthetic_media,
)


def luma(frame: av.VideoFrame) -> bytes:
    return bytes(frame.planes[0])


async def test_pattern_is_640x480_with_video_clock_pts_and_moves() -> None:
    track = PatternTrack()
    frames = [await track.recv() for _ in range(5)]
    track.stop()
    assert all((f.width, f.height) == (640, 480) for f in frames)
    assert all(f.format.name == "yuv420p" for f in frames)
    assert [f.pts for f in frames] == [i * VIDEO_CLOCK // 25 for i in range(5)]
    assert all(f.time_base == fractions.Fraction(1, VIDEO_CLOCK) for f in frames)
    pictures = [luma(f) for f in frames]
    assert len(set(pictures)) == 5  # every frame differs from every other: it moves
    # ...and not by noise: most of the picture is the same bars, shifted.
    first, second = pictures[0], pictures[1]
    changed = sum(a != b for a, b in zip(first, second, strict=True))
    assert 0 < changed < len(first)


def test_pattern_is_deterministic_per_frame_number() -> None:
    track = PatternTrack()
    assert luma(track.pattern(7)) == luma(track.pattern(7))
    assert luma(track.pattern(7)) != luma(track.pattern(8))


async def test_video_is_paced_in_real_time() -> None:
    track = PatternTrack()
    start = time.monotonic()
    for _ in range(13):  # frame 12 is due 12/25 s = 0.48 s after the first
        await track.recv()
    elapsed = time.monotonic() - start
    track.stop()
    assert elapsed >= 0.48 - 0.02  # never faster than a camera


async def test_tone_is_440_hz_48k_mono_with_sample_pts_and_paced() -> None:
    track = ToneTrack()
    start = time.monotonic()
    frames = [await track.recv() for _ in range(11)]  # frame 10 due at 200 ms
    elapsed = time.monotonic() - start
    track.stop()
    assert elapsed >= 0.2 - 0.02
    assert all(f.sample_rate == AUDIO_RATE and f.samples == 960 for f in frames)
    assert all(f.format.name == "s16" and f.layout.name == "mono" for f in frames)
    assert [f.pts for f in frames] == [i * 960 for i in range(11)]
    assert all(f.time_base == fractions.Fraction(1, AUDIO_RATE) for f in frames)
    raw = b"".join(bytes(f.planes[0])[: 960 * 2] for f in frames)
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    # Count upward zero crossings: 440 a second, so 0.22 s holds 96 or 97 of them.
    ups = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    assert abs(ups - 440 * len(samples) / AUDIO_RATE) <= 1.5
    peak = max(abs(s) for s in samples)
    assert 0.2 * 32767 < peak <= 0.26 * 32767
    # Continuous across frame boundaries: no click where one frame meets the next.
    step = 2 * math.pi * 440 / AUDIO_RATE
    limit = peak * step * 1.1 + 2
    assert max(abs(b - a) for a, b in itertools.pairwise(samples)) <= limit


async def test_stopped_track_ends() -> None:
    track = ToneTrack()
    await track.recv()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_synthetic_media_are_fresh_pattern_and_tone() -> None:
    media = synthetic_media()
    assert media.synthetic
    assert isinstance(media.video, PatternTrack) and isinstance(media.audio, ToneTrack)
    media.stop()
    assert synthetic_media().video is not media.video
