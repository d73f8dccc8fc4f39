"""The tablet's camera and microphone: real devices, or synthetic stand-ins.

ARCHITECTURE.md, The tablet: camera and microphone come from V4L2 and
PipeWire/PulseAudio (whose echo-cancel module gives acoustic echo
cancellation); in tests and the demo, synthetic sources replace the
hardware. The synthetic sources are aiortc tracks like any other: a test
pattern that moves (so a test can tell two frames apart) and a 440 Hz tone,
both paced in real time with pts counted in their own time base, as a
camera and a sound card would deliver them.

Also here: ``JpegEncoder``, which turns decoded video frames into JPEG bytes
for the kiosk page (a browser draws them as they come over the loopback
WebSocket), made with FFmpeg's MJPEG encoder through PyAV.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from kiosk.runtime.config import AgentSettings
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
    """The tablet's own sources. ``video_for_peer``/``video_for_view`` share one camera."""

    audio: MediaStreamTrack
    video: MediaStreamTrack
    synthetic: bool
    players: list[MediaPlayer] = field(default_factory=list)
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
        for player in self.players:
            for source in (player.audio, player.video):
                if source is not None:
                    source.stop()


class MediaUnavailable(Exception):
    """A configured camera or microphone cannot be opened: the agent says so at start."""


def input_formats() -> frozenset[str]:
    """The FFmpeg input devices this PyAV build has (PyPI's wheels lack v4l2 and pulse)."""
    return frozenset(av.formats_available)


def check_devices(settings: AgentSettings) -> None:
    """Refuse at start, with the reason, a device setting this machine cannot honour."""
    formats = input_formats()
    if settings.video_device and "v4l2" not in formats:
        raise MediaUnavailable(
            "video_device is set but this PyAV build has no V4L2 input; install PyAV "
            "built against an FFmpeg with libavdevice's v4l2 (Debian's FFmpeg has it)"
        )
    if settings.audio_device and not {"pulse", "alsa"} & formats:
        raise MediaUnavailable(
            "audio_device is set but this PyAV build has neither PulseAudio nor ALSA input"
        )


def _microphone(source: str) -> MediaPlayer:
    """A PulseAudio/PipeWire source by name.

    With FFmpeg's pulse input when this PyAV has it; otherwise through ALSA's
    ``pulse`` PCM (alsa-plugins, or pipewire-alsa), which takes the source's
    name from ``PULSE_SOURCE``. Either way the audio comes from the sound
    server, so its echo-cancel source can be the one named here.
    """
    if "pulse" in input_formats():
        return MediaPlayer(source, format="pulse")
    os.environ["PULSE_SOURCE"] = source
    return MediaPlayer("pulse", format="alsa")


def open_media(settings: AgentSettings, synthetic: bool) -> LocalMedia:
    """Synthetic sources when asked for or when no device is configured; else the devices.

    Fresh sources for each call: a stopped track cannot be restarted, and a
    camera is best left closed between calls (its light off). With only one
    device configured the other side is silence or the pattern, never the tone
    (a whistle in a real call).
    """
    if synthetic or not (settings.video_device or settings.audio_device):
        return LocalMedia(audio=ToneTrack(), video=PatternTrack(), synthetic=True)
    check_devices(settings)
    players: list[MediaPlayer] = []
    video: MediaStreamTrack = PatternTrack()
    audio: MediaStreamTrack = AudioStreamTrack()  # silence
    try:
        if settings.video_device:
            camera = MediaPlayer(
                settings.video_device,
                format="v4l2",
                options={
                    "video_size": f"{VIDEO_WIDTH}x{VIDEO_HEIGHT}",
                    "framerate": str(VIDEO_FPS),
                },
            )
            players.append(camera)
            camera_track = camera.video
            if camera_track is not None:
                video = camera_track
        if settings.audio_device:
            mic = _microphone(settings.audio_device)
            players.append(mic)
            mic_track = mic.audio
            if mic_track is not None:
                audio = mic_track
    except (av.FFmpegError, OSError) as exc:
        for player in players:
            for source in (player.audio, player.video):
                if source is not None:
                    source.stop()
        raise MediaUnavailable(f"cannot open the camera or microphone: {exc}") from exc
    return LocalMedia(audio=audio, video=video, synthetic=False, players=players)


class Speaker:
    """Plays the other end's audio through ALSA's default PCM (PipeWire/PulseAudio's).

    Opened at the first frame; if the output cannot be opened or breaks, the
    call goes on without sound from here and the log says why once.
    """

    def __init__(self, device: str = "default") -> None:
        self.device = device
        self._container: Any = None
        self._stream: Any = None
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        self.broken = False

    def play(self, frame: av.AudioFrame) -> None:
        if self.broken:
            return
        try:
            if self._container is None:
                self._container = av.open(self.device, "w", format="alsa")
                self._stream = self._container.add_stream("pcm_s16le", rate=AUDIO_RATE)
                self._stream.layout = "stereo"
            for out in self._resampler.resample(frame):
                for packet in self._stream.encode(out):
                    self._container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.broken = True
            log.warning("no sound on the speaker", error=str(exc)[:200])

    def close(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None


class JpegEncoder:
    """Decoded video frames to JPEG bytes for the kiosk page (MJPEG through PyAV)."""

    def __init__(self, quality: int = 5) -> None:
        self.quality = quality  # FFmpeg's qscale: 2 (best) .. 31
        self._codec: Any = None
        self._size: tuple[int, int] | None = None
        self._count = 0

    def encode(self, frame: av.VideoFrame) -> bytes:
        size = (frame.width, frame.height)
        if self._codec is None or self._size != size:
            codec = av.CodecContext.create("mjpeg", "w")
            codec.width, codec.height = size
            codec.pix_fmt = "yuvj420p"
            codec.time_base = fractions.Fraction(1, VIDEO_FPS)
            codec.options = {"qscale": str(self.quality)}
            codec.qmin = codec.qmax = self.quality
            self._codec, self._size = codec, size
        picture = frame.reformat(format="yuvj420p")
        picture.pts = self._count  # the encoder wants rising pts, whatever the source's were
        picture.time_base = fractions.Fraction(1, VIDEO_FPS)
        self._count += 1
        packets = self._codec.encode(picture)
        return b"".join(bytes(p) for p in packets)


async def pump(track: MediaStreamTrack, sink: Callable[[Any], None]) -> None:
    """Read a track until it ends, handing each frame to ``sink``."""
    with contextlib.suppress(MediaStreamError):
        while True:
            sink(await track.recv())
