"""One call's media on the tablet: an aiortc peer connection under an accepted grant.

A ``Call`` can only be made from an ``Accepted`` grant decision
(``kiosk.device.deadline.check_grant``): no grant, no media (principle 1).
It owns the grant's deadline and enforces it itself, with the monotonic
clock it is given, whatever happens to the link to the server: at the
deadline it stops sending, closes the peer connection (the other end sees
DTLS close and its tracks end) and reports ``End(TIME_UP)``.

ICE servers are exactly those in the grant message, none by default
(principle 7): aiortc would otherwise use a public STUN server, which on a
closed network stalls every call set-up for seconds and leaks traffic.
aiortc gathers candidates before it finishes the offer, so the offer SDP
carries them; candidates trickled from the other side (a browser) are added
as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from kiosk.device.deadline import Accepted, CallDeadline
from kiosk.device.media import LocalMedia
from kiosk.device.page_peer import PageMedia
from kiosk.domain.callstate import End, Warn
from kiosk.domain.reasons import EndReason
from kiosk.media.forwarding import without_bandwidth_probe
from kiosk.runtime.logs import get_logger
from kiosk.wire.messages import IceServer

log = get_logger(__name__)

Clock = Callable[[], float]

MAX_NAP = 1.0
MAX_EARLY_ICE = 64  # candidates held until the answer; a browser sends a handful


def rtc_configuration(ice_servers: Sequence[IceServer]) -> RTCConfiguration:
    """Exactly the given servers; an empty list means host candidates only (principle 7)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in ice_servers
        ]
    )


@dataclass
class MediaCounters:
    """What arrived from the other end: tests and the bench read these."""

    video_frames: int = 0
    audio_frames: int = 0
    first_video_at: float | None = None  # monotonic
    first_audio_at: float | None = None
    last_video_at: float | None = None
    last_audio_at: float | None = None
    ended_tracks: set[str] = field(default_factory=set)


class Call:
    """The tablet's leg of one call. Make the offer, apply the answer, add ICE, close."""

    def __init__(
        self,
        accepted: Accepted,
        media: LocalMedia | PageMedia,
        ice_servers: Sequence[IceServer] = (),
        *,
        clock: Clock = time.monotonic,
        on_video: Callable[[Any], None] | None = None,
        on_audio: Callable[[Any], None] | None = None,
        on_time: Callable[[Warn | End], None] | None = None,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(accepted, Accepted):  # deny by default: only a verified grant
            raise TypeError("a call needs an accepted grant")
        self.grant = accepted.grant
        self.deadline: CallDeadline = accepted.deadline
        self.call_id = self.grant.call_id
        self.media = media
        self.clock = clock
        self.counters = MediaCounters()
        self.closed = False
        self.closed_at: float | None = None  # monotonic instant media stopped
        self.end_reason: EndReason | None = None
        self._on_video = on_video
        self._on_audio = on_audio
        self._on_time = on_time
        self._on_state = on_state
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Future[None] | None = None
        self._done = asyncio.Event()
        self._early_ice: list[tuple[str | None, str | None, int | None]] = []
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        if isinstance(media, PageMedia):  # the kiosk page's media, forwarded as it is
            self._senders = media.attach(self.pc, self._count)
        else:  # synthetic sources in the agent (headless tablet: tests, bench, demo)
            self._senders = [
                self.pc.addTrack(media.audio_for_peer()),
                self.pc.addTrack(media.video_for_peer()),
            ]
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self._deadline_task = self._spawn(self._watch_deadline(), "deadline")

    # --- signalling ---------------------------------------------------------------------

    async def make_offer(self) -> str:
        """The offer SDP, with every host candidate gathered (aiortc does not trickle)."""
        self._check_open()
        offer = await self.pc.createOffer()
        if isinstance(self.media, PageMedia):  # forwarded media: no bandwidth estimator to feed
            offer = RTCSessionDescription(sdp=without_bandwidth_probe(offer.sdp), type="offer")
        await self.pc.setLocalDescription(offer)
        return self.pc.localDescription.sdp

    async def apply_answer(self, sdp: str) -> None:
        self._check_open()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        early, self._early_ice = self._early_ice, []
        for candidate, sdp_mid, sdp_mline_index in early:
            await self.add_ice(candidate, sdp_mid, sdp_mline_index)

    async def add_ice(
        self, candidate: str | None, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """A trickled candidate from the other end; None marks the end of candidates.

        Candidates that come before the answer wait for it (aiortc needs the
        remote description first); a bounded number, as a message could be a flood.
        """
        if self.closed:
            return
        if self.pc.remoteDescription is None:
            if len(self._early_ice) < MAX_EARLY_ICE:
                self._early_ice.append((candidate, sdp_mid, sdp_mline_index))
            return
        if candidate is None or not candidate.strip():
            await self.pc.addIceCandidate(None)
            return
        text = candidate.strip()
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        try:
            # aiortc's parser asserts on short input: bad input from the far end is not a bug.
            parsed = candidate_from_sdp(text)
            parsed.sdpMid = sdp_mid
            parsed.sdpMLineIndex = sdp_mline_index
            await self.pc.addIceCandidate(parsed)
        except (ValueError, IndexError, AssertionError, TypeError):
            log.info("ignored an unusable ICE candidate", call_id=self.call_id)

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    # --- the end ------------------------------------------------------------------------

    async def close(self, reason: EndReason, *, keep_deadline: bool = False) -> None:
        """Stop sending, close the peer connection. Idempotent; the first reason stays.

        ``keep_deadline``: only this connection ends; the call goes on in a new
        one under the same grant, whose deadline must stay armed.
        """
        if self._closing is None:
            self.end_reason = reason
            self.closed = True
            self.closed_at = self.clock()
            if reason is not EndReason.TIME_UP and not keep_deadline:
                self.deadline.stop()
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def wait_closed(self) -> None:
        """Until the peer connection is closed (whoever closed it, for whatever reason)."""
        await self._done.wait()

    async def _close(self) -> None:
        # Media stops first: no frame leaves after the decision, even if closing is slow.
        for sender in self._senders:
            with contextlib.suppress(Exception):
                sender.replaceTrack(None)
        if isinstance(self.media, PageMedia):
            await self.media.close()  # the page's connection too: both directions stop
        with contextlib.suppress(Exception):
            await self.pc.close()
        if not isinstance(self.media, PageMedia):
            self.media.stop()
        for task in list(self._tasks):
            # At TIME_UP the deadline's own task is the closer; it finishes by itself.
            if task is not self._deadline_task or self.end_reason is not EndReason.TIME_UP:
                task.cancel()
        self._done.set()
        log.info("call media closed", call_id=self.call_id, reason=str(self.end_reason))

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the call has ended")

    async def _watch_deadline(self) -> None:
        """The grant's end by the monotonic clock: needs nothing from the server (principle 1)."""
        while not self.closed:
            wake = self.deadline.next_wakeup()
            if wake is None:
                return
            delay = wake - self.clock()
            if delay > 0:
                # Naps of at most a second: asyncio sleeps on CLOCK_MONOTONIC, which stands
                # still while a tablet is suspended; the call's clock (CLOCK_BOOTTIME in the
                # agent) does not, so after a resume the end comes within a second.
                await asyncio.sleep(min(delay, MAX_NAP))
                continue
            for effect in self.deadline.tick(self.clock()):
                if isinstance(effect, End):
                    log.info("call time is up by the tablet's clock", call_id=self.call_id)
                    # Media stops at once; the watchers hear of it after.
                    closing = asyncio.ensure_future(self.close(EndReason.TIME_UP))
                    await asyncio.sleep(0)
                    if self._on_time is not None:
                        self._on_time(effect)
                    await asyncio.shield(closing)
                    return
                if self._on_time is not None:
                    self._on_time(effect)

    # --- incoming media -----------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"call {self.call_id} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._spawn(self._read(track), f"remote {track.kind}")

    def _count(self, kind: str) -> None:
        """A frame of ``kind`` arrived from the other end."""
        c = self.counters
        now = self.clock()
        if kind == "video":
            c.video_frames += 1
            c.first_video_at = c.first_video_at or now
            c.last_video_at = now
        else:
            c.audio_frames += 1
            c.first_audio_at = c.first_audio_at or now
            c.last_audio_at = now

    async def _read(self, track: MediaStreamTrack) -> None:
        """A decoded remote track (synthetic mode); a forwarded one never yields frames."""
        try:
            while True:
                frame = await track.recv()
                if self.closed:
                    return
                self._count(str(track.kind))
                sink = self._on_video if track.kind == "video" else self._on_audio
                if sink is not None:
                    sink(frame)
        except MediaStreamError:
            self.counters.ended_tracks.add(str(track.kind))

    def _on_connection_state(self) -> None:
        state = self.connection_state
        log.info("call connection state", call_id=self.call_id, state=state)
        if self._on_state is not None:
            self._on_state(state)
