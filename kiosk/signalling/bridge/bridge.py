"""The media bridge of one controlled call (ARCHITECTURE.md principle 3).

Two legs (the tablet and the visitor) end on the server as aiortc peer
connections. Each leg's encoded video (VP8) and audio (Opus) are forwarded as
they arrive to the other leg and to every staff monitor allowed that kind,
without decoding or re-encoding (``kiosk.media.forwarding``, which the tablet
agent shares). One sender per consumer re-packetises; a new consumer waits
for a key frame and the bridge asks the upstream sender for one (PLI);
PLI/FIR from consumers go upstream, at most one per ``keyframe_interval`` per
source; NACK/RTX stay hop by hop.

A monitor's peer connection has a transceiver only for the kinds its level
allows (R6): with ``sight`` there is no audio m-line at all, with ``hearing``
no video m-line — the forbidden media is never sent, not merely muted.

Fail closed: if either leg's connection fails or closes, or forwarding breaks,
the bridge stops forwarding, closes every peer connection and calls
``on_failure`` once; the caller ends the call. There is no fallback path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from kiosk.domain.model import MediaKind
from kiosk.media import forwarding
from kiosk.media.forwarding import EncodedFrame, EncodedTrack, without_bandwidth_probe
from kiosk.runtime.logs import get_logger

from .parts import (
    BridgeError,
    BridgeFailure,
    FailureCallback,
    Leg,
    Monitor,
    MonitorGoneCallback,
    Source,
    call_back,
    codec_preferences,
    describe,
    discard,
    new_monitor_id,
)

log = get_logger(__name__)

#: Order of m-lines the bridge offers: video first, then audio; tablet before visitor.
_KIND_ORDER = (MediaKind.VIDEO, MediaKind.AUDIO)


class Bridge:
    """The bridge of one controlled call.

    Legs: the bridge answers a leg's offer (:meth:`answer_leg`) or makes the offer
    (:meth:`offer_leg` then :meth:`leg_answer`). Monitors: the bridge always makes the
    offer (:meth:`add_monitor` then :meth:`monitor_answer`) so that it alone decides
    which kinds exist in the monitor's session.
    """

    def __init__(
        self,
        ice_servers: Sequence[RTCIceServer] = (),
        *,
        on_failure: FailureCallback | None = None,
        on_monitor_gone: MonitorGoneCallback | None = None,
        keyframe_interval: float = 0.5,
        connect_timeout: float = 20.0,
    ) -> None:
        forwarding.check_aiortc_version()
        self._ice_servers = list(ice_servers)  # explicit, never aiortc's public default
        self._on_failure = on_failure
        self._on_monitor_gone = on_monitor_gone
        self.keyframe_interval = keyframe_interval
        self.connect_timeout = connect_timeout
        self._timers: list[asyncio.TimerHandle] = []
        self._sources = {(leg, kind): Source(self, leg, kind) for leg in Leg for kind in MediaKind}
        self._legs: dict[Leg, RTCPeerConnection] = {}
        self._leg_tracks: dict[Leg, list[EncodedTrack]] = {}
        self._monitors: dict[str, Monitor] = {}
        self._tasks: set[asyncio.Future[object]] = set()
        self.closed = False
        self.failure: BridgeFailure | None = None

    # --- legs --------------------------------------------------------------------------

    async def answer_leg(self, leg: Leg, offer_sdp: str) -> str:
        """Accept a leg's offer; returns the answer SDP (all ICE candidates included)."""
        self._check_open()
        try:
            offered = [m.kind for m in SessionDescription.parse(offer_sdp).media]
        except Exception as exc:
            raise BridgeError(f"{leg} offer refused: {describe(exc)}") from exc
        if not offered or offered[0] not in {k.value for k in MediaKind}:
            raise BridgeError(f"{leg} offer refused: its first m-line is not audio or video")
        # Transceivers only for the kinds offered (aiortc cannot answer with an unmatched
        # one), in the offer's order: with max-bundle the first one's transport is the
        # bundle's, and aiortc discards the transport of a first transceiver that is not.
        kinds = [MediaKind(k) for k in dict.fromkeys(offered) if k in {m.value for m in MediaKind}]
        pc = self._new_leg(leg, kinds)
        try:
            offer = RTCSessionDescription(sdp=without_bandwidth_probe(offer_sdp), type="offer")
            await pc.setRemoteDescription(offer)
            self._tap_strays(pc)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._drop_leg(leg)
            raise BridgeError(f"{leg} offer refused: {describe(exc)}") from exc
        log.info("bridge leg answered", leg=leg.value)
        return pc.localDescription.sdp

    async def offer_leg(self, leg: Leg) -> str:
        """Make the offer for a leg (e.g. a browser visitor); send it, then :meth:`leg_answer`."""
        pc = self._new_leg(leg, list(_KIND_ORDER))
        await self._set_offer(pc)
        return pc.localDescription.sdp

    async def leg_answer(self, leg: Leg, answer_sdp: str) -> None:
        pc = self._legs.get(leg)
        if pc is None or pc.signalingState != "have-local-offer":
            raise BridgeError(f"no offer outstanding for the {leg} leg")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
            self._tap_strays(pc)
        except Exception as exc:
            await self._drop_leg(leg)
            raise BridgeError(f"{leg} answer refused: {describe(exc)}") from exc
        log.info("bridge leg answered offer", leg=leg.value)

    def _new_leg(self, leg: Leg, kinds: list[MediaKind]) -> RTCPeerConnection:
        self._check_open()
        if leg in self._legs:
            raise BridgeError(f"the {leg} leg is already set up")
        pc = self._peer_connection()
        self._legs[leg] = pc
        self._leg_tracks[leg] = []
        for kind in kinds:
            track = self._sources[(leg.other, kind)].consumer(f"{leg.other}-{kind}")
            self._leg_tracks[leg].append(track)
            transceiver = pc.addTransceiver(track, direction="sendrecv")
            self._prepare(transceiver, kind, leg.other)
            source = self._sources[(leg, kind)]
            source.receiver = transceiver.receiver
            forwarding.tap_receiver(transceiver.receiver, self._guarded(source.deliver))

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed") and self._legs.get(leg) is pc:
                self._fail(BridgeFailure(leg, f"{leg} leg connection {pc.connectionState}"))

        def _deadline() -> None:
            # A leg stuck in negotiation or handshake would never report "failed".
            if pc.connectionState != "connected" and self._legs.get(leg) is pc:
                self._fail(
                    BridgeFailure(leg, f"{leg} leg not connected after {self.connect_timeout} s")
                )

        self._timers.append(asyncio.get_running_loop().call_later(self.connect_timeout, _deadline))
        return pc

    async def _drop_leg(self, leg: Leg) -> None:
        pc = self._legs.pop(leg, None)
        self._release(self._leg_tracks.pop(leg, []))
        if pc is not None:
            for kind in MediaKind:
                self._sources[(leg, kind)].receiver = None
            await pc.close()

    # --- monitors ----------------------------------------------------------------------

    async def add_monitor(self, kinds: frozenset[MediaKind]) -> tuple[str, str]:
        """Open a monitor that receives both legs' media of ``kinds`` only (R6).

        Returns ``(monitor_id, offer_sdp)``; pass the monitor's answer to
        :meth:`monitor_answer`. Kinds not given get no transceiver at all.
        """
        self._check_open()
        if not kinds or not kinds <= set(MediaKind):
            raise BridgeError("a monitor needs at least one media kind to receive")
        monitor_id = new_monitor_id()
        pc = self._peer_connection()
        tracks: list[EncodedTrack] = []
        for kind in _KIND_ORDER:
            if kind not in kinds:
                continue
            for leg in Leg:
                track = self._sources[(leg, kind)].consumer(f"{leg}-{kind}")
                transceiver = pc.addTransceiver(track, direction="sendonly")
                self._prepare(transceiver, kind, leg)
                forwarding.tap_receiver(transceiver.receiver, discard)
                tracks.append(track)
        self._monitors[monitor_id] = Monitor(pc, kinds, tracks)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed") and monitor_id in self._monitors:
                self._spawn(self._monitor_gone(monitor_id))

        await self._set_offer(pc)
        log.info("bridge monitor offered", monitor=monitor_id, kinds=sorted(kinds))
        return monitor_id, pc.localDescription.sdp

    async def monitor_answer(self, monitor_id: str, answer_sdp: str) -> None:
        monitor = self._monitors.get(monitor_id)
        if monitor is None or monitor.pc.signalingState != "have-local-offer":
            raise BridgeError("no offer outstanding for this monitor")
        try:
            await monitor.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer_sdp, type="answer")
            )
        except Exception as exc:
            await self.remove_monitor(monitor_id)
            raise BridgeError(f"monitor answer refused: {describe(exc)}") from exc
        # R6: the answer cannot add an m-line, but check rather than trust.
        present = {MediaKind(t.kind) for t in monitor.pc.getTransceivers()}
        if not present <= monitor.kinds:
            await self.remove_monitor(monitor_id)
            raise BridgeError("monitor session carries a kind its level forbids")

    async def remove_monitor(self, monitor_id: str) -> None:
        monitor = self._monitors.pop(monitor_id, None)
        if monitor is None:
            return
        self._release(monitor.tracks)
        await monitor.pc.close()
        log.info("bridge monitor removed", monitor=monitor_id)

    async def _monitor_gone(self, monitor_id: str) -> None:
        await self.remove_monitor(monitor_id)
        if self._on_monitor_gone is not None:
            await call_back(self._on_monitor_gone, monitor_id)

    def monitor_kinds(self, monitor_id: str) -> frozenset[MediaKind]:
        return self._monitors[monitor_id].kinds

    @property
    def monitor_ids(self) -> frozenset[str]:
        return frozenset(self._monitors)

    # --- shared plumbing ---------------------------------------------------------------

    def _peer_connection(self) -> RTCPeerConnection:
        # max-bundle: one transport for all m-lines. aiortc 1.16's "balanced" policy
        # leaves the second m-line of a kind on a transport it then discards when the
        # session also has the other kind (a monitor with two videos and two audios).
        config = RTCConfiguration(
            iceServers=self._ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
        )
        return RTCPeerConnection(config)

    async def _set_offer(self, pc: RTCPeerConnection) -> None:
        offer = await pc.createOffer()
        sdp = without_bandwidth_probe(offer.sdp)
        await pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="offer"))

    def _prepare(self, transceiver: RTCRtpTransceiver, kind: MediaKind, stream: Leg) -> None:
        transceiver.setCodecPreferences(codec_preferences(kind))
        source = self._sources[(stream, kind)]
        forwarding.forward_keyframe_requests(transceiver.sender, source.request_keyframe)
        forwarding.set_stream_id(transceiver.sender, stream.value)

    def _tap_strays(self, pc: RTCPeerConnection) -> None:
        """An offer may carry extra m-lines; their receivers must never decode either."""
        for transceiver in pc.getTransceivers():
            if not forwarding.is_tapped(transceiver.receiver):
                forwarding.tap_receiver(transceiver.receiver, discard)

    def _release(self, tracks: Sequence[EncodedTrack]) -> None:
        for track in tracks:
            for source in self._sources.values():
                source.consumers.discard(track)
            track.stop()

    def _guarded(self, deliver: Callable[[EncodedFrame], None]) -> Callable[[EncodedFrame], None]:
        def sink(frame: EncodedFrame) -> None:
            try:
                deliver(frame)
            except Exception as exc:  # the bridge is broken: fail closed
                self._fail(BridgeFailure(None, f"forwarding failed: {describe(exc)}"))

        return sink

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_open(self) -> None:
        if self.closed:
            raise BridgeError("the bridge is closed")

    def stats(self) -> dict[str, dict[str, int]]:
        """Frames in per source and out per consumer, for metrics and tests."""
        return {
            f"{leg}-{kind}": {
                "frames_in": source.frames_in,
                "keyframes_in": source.keyframes_in,
                "keyframe_requests_sent": source.keyframe_requests_sent,
                "consumers": len(source.consumers),
            }
            for (leg, kind), source in self._sources.items()
        }

    # --- ending ------------------------------------------------------------------------

    def _fail(self, failure: BridgeFailure) -> None:
        if self.closed:
            return
        self.failure = failure
        log.warning("bridge failed", leg=failure.leg, detail=failure.detail)
        self._stop_forwarding()  # at once, before any await: nothing more flows
        self._spawn(self._fail_and_close(failure))

    async def _fail_and_close(self, failure: BridgeFailure) -> None:
        try:
            if self._on_failure is not None:
                await call_back(self._on_failure, failure)
        finally:
            await self._close_connections()

    def _stop_forwarding(self) -> None:
        self.closed = True
        for timer in self._timers:
            timer.cancel()
        for source in self._sources.values():
            source.close()

    async def close(self) -> None:
        """End the bridge: stop forwarding and close every peer connection. Idempotent."""
        if not self.closed:
            self._stop_forwarding()
            log.info("bridge closed")
        await self._close_connections()
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _close_connections(self) -> None:
        pcs = [*self._legs.values(), *(m.pc for m in self._monitors.values())]
        self._monitors.clear()
        for pc in pcs:
            await pc.close()
