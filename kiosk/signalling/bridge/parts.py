"""The bridge's parts: legs, sources of media and monitors, errors and failures.

``Bridge`` (``bridge.py``) owns them; each ``Source`` is one leg's media of
one kind, forwarding what its receiver gets to its consumers.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aiortc import RTCPeerConnection, RTCRtpCodecCapability, RTCRtpReceiver

from kiosk.domain.model import MediaKind
from kiosk.media import forwarding
from kiosk.media.forwarding import EncodedFrame, EncodedTrack


class Owner(Protocol):
    """What a source needs of its bridge."""

    keyframe_interval: float
    closed: bool

    def _spawn(self, coro: Awaitable[object]) -> None: ...


class Leg(StrEnum):
    """The two ends of a controlled call."""

    TABLET = "tablet"
    VISITOR = "visitor"

    @property
    def other(self) -> Leg:
        return Leg.VISITOR if self is Leg.TABLET else Leg.TABLET


def new_monitor_id() -> str:
    """96 random bits in hex: a monitor's id goes into URLs and the audit chain,
    whose ids start with a letter or digit (a url-safe token may start with '-')."""
    return secrets.token_hex(12)


class BridgeError(Exception):
    """A request the bridge refuses (bad SDP, no common codec, unknown monitor, closed)."""


@dataclass(frozen=True, slots=True)
class BridgeFailure:
    """Why the bridge stopped: the call must end (fail closed)."""

    leg: Leg | None  # None: the bridge itself broke
    detail: str


FailureCallback = Callable[[BridgeFailure], Awaitable[None] | None]
MonitorGoneCallback = Callable[[str], Awaitable[None] | None]


def codec_preferences(kind: MediaKind) -> list[RTCRtpCodecCapability]:
    return forwarding.codec_preferences(kind.value)


class Source:
    """One leg's media of one kind: frames in from its receiver, out to its consumers."""

    def __init__(self, bridge: Owner, leg: Leg, kind: MediaKind) -> None:
        self._bridge = bridge
        self.leg = leg
        self.kind = kind
        self.receiver: RTCRtpReceiver | None = None
        self.consumers: set[EncodedTrack] = set()
        self.frames_in = 0
        self.keyframes_in = 0
        self.keyframe_requests_sent = 0
        self._last_request = float("-inf")
        self._pending: asyncio.TimerHandle | None = None

    def deliver(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        if frame.keyframe and self.kind is MediaKind.VIDEO:
            self.keyframes_in += 1
        for consumer in tuple(self.consumers):
            consumer.push(frame)

    def consumer(self, track_id: str) -> EncodedTrack:
        track = EncodedTrack(self.kind.value, track_id, self.request_keyframe)
        self.consumers.add(track)
        return track

    def request_keyframe(self) -> None:
        """Ask upstream for a key frame, at most once per interval; later asks are coalesced."""
        if self.kind is not MediaKind.VIDEO or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_request + self._bridge.keyframe_interval - loop.time()
        if wait <= 0:
            self._send_request()
        else:
            self._pending = loop.call_later(wait, self._send_request)

    def _send_request(self) -> None:
        self._pending = None
        if self.receiver is None or self._bridge.closed:
            return
        self._last_request = asyncio.get_running_loop().time()
        self.keyframe_requests_sent += 1
        self._bridge._spawn(forwarding.request_keyframe(self.receiver))

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        for consumer in tuple(self.consumers):
            consumer.stop()
        self.consumers.clear()


@dataclass(slots=True)
class Monitor:
    pc: RTCPeerConnection
    kinds: frozenset[MediaKind]
    tracks: list[EncodedTrack]


def discard(frame: EncodedFrame) -> None:
    """Sink for receivers whose media the bridge does not forward."""


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def call_back(callback: Callable[..., Awaitable[None] | None], *args: object) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result
