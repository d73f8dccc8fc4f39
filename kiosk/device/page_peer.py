"""One call's media forwarded between the kiosk page and the call's peer, never decoded.

ARCHITECTURE.md, The tablet: the page captures camera and microphone itself
(``getUserMedia``, with Chromium's echo cancellation) and makes a WebRTC
connection to the agent on loopback; the agent forwards the encoded VP8 and
Opus between that connection and the call's real one (to the visitor or the
bridge) with ``kiosk.media.forwarding``, the bridge's own code. Key-frame
requests (PLI/FIR) go across, towards whoever encodes; NACK and RTX stay hop
by hop, as in the bridge.

``PageMedia`` is the ``Call``'s media: ``attach`` puts its forwarding tracks on
the call's connection before the offer, ``accept_page`` answers the page's
offer (again when the page reloads), and ``close`` — which the ``Call`` runs
when it ends, by the grant's own clock or otherwise — closes the page's
connection too, so both directions stop whatever the page's script does.

Loopback end to end: the page's candidates are kept only if loopback, and
the agent's answer carries only candidates on ``host`` (a second loopback
address such as 127.0.0.2: aioice leaves 127.0.0.1 out of its host
candidates; the tablet's units add the address, docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)

from kiosk.media import forwarding
from kiosk.media.forwarding import EncodedFrame, EncodedTrack
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

KINDS = ("audio", "video")
# A stream's RTP timestamps restart at zero with each new page connection; the peer
# must see them go on rising, so the next source starts one frame after the last.
_STEP = {"audio": 960, "video": 3600}
KEYFRAME_INTERVAL = 0.5  # s: PLI/FIR towards an encoder, at most this often


class PageRefused(Exception):
    """The page's offer cannot be taken (not SDP, no loopback candidate, closed)."""


class NoLiveCall(PageRefused):
    """No call is live under a grant, or not the one the page names: no media."""


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def loopback_only(sdp: str, keep: Callable[[str], bool] = is_loopback) -> str:
    """The SDP without ``a=candidate`` lines whose address ``keep`` refuses."""
    lines = []
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 6 or not keep(parts[4]):
                continue
        lines.append(line)
    return "".join(lines)


def loopback_ice(pc: RTCPeerConnection, host: str) -> int:
    """Make the connection's ICE use ``host`` alone and answer loopback sources alone.

    Left alone, aioice gathers on every address of the machine and checks pairs
    from each, and a browser pairs every one of its addresses with the agent's
    candidate: the connection could settle on the machine's other address. Per
    ICE connection (aiortc's private ``RTCIceGatherer._connection``, an aioice
    ``Connection``): ``get_component_candidates`` gets ``[host]`` as its
    addresses, and ``request_received`` (every incoming check) drops checks not
    from loopback. tests/unit/test_bridge_internals.py checks these names.
    Returns how many ICE connections it set up; before gathering only.
    """
    done = 0
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        if getattr(connection, "_kiosk_loopback_only", False):
            continue
        gather, handle = connection.get_component_candidates, connection.request_received

        async def on_host(component: int, addresses: list[str], *rest: object,
                          _gather: Callable[..., Awaitable[list[Any]]] = gather
                          ) -> list[Any]:
            return await _gather(component, [host], *rest)

        def checked(message: object, addr: tuple[str, int], *rest: object,
                    _handle: Callable[..., None] = handle) -> None:
            if is_loopback(addr[0]):
                _handle(message, addr, *rest)

        connection.get_component_candidates = on_host  # type: ignore[method-assign,assignment]
        connection.request_received = checked  # type: ignore[method-assign,assignment]
        connection._kiosk_loopback_only = True  # type: ignore[attr-defined]
        done += 1
    return done


def address_on_this_machine(host: str) -> bool:
    """Whether ``host`` is one of this machine's addresses (ICE can gather on it)."""
    import ifaddr  # aioice's own way of listing addresses

    return any(ip.ip == host for adapter in ifaddr.get_adapters() for ip in adapter.ips)


def has_candidate(sdp: str) -> bool:
    return any(line.startswith("a=candidate:") for line in sdp.splitlines())


class _Rebase:
    """Keeps one outgoing stream's timestamps rising across page connections."""

    def __init__(self, kind: str) -> None:
        self.step = _STEP[kind]
        self.offset = 0
        self.last: int | None = None
        self.fresh = True

    def restart(self) -> None:
        self.fresh = True

    def __call__(self, frame: EncodedFrame) -> EncodedFrame:
        if self.fresh:
            self.fresh = False
            if self.last is not None:
                self.offset = self.last + self.step - frame.timestamp
        ts = (frame.timestamp + self.offset) & 0xFFFFFFFF
        self.last = ts
        return EncodedFrame(frame.mime_type, frame.data, ts, frame.keyframe)


class _Throttle:
    """At most one key-frame request per interval, towards one encoder."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.last = float("-inf")

    def due(self) -> bool:
        now = self.clock()
        if now - self.last < KEYFRAME_INTERVAL:
            return False
        self.last = now
        return True


class PageMedia:
    """The forwarding of one call (one connection to the peer, any number of page connections)."""

    synthetic = False

    def __init__(
        self, call_id: str, host: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the page's media address must be loopback, not {host!r}")
        self.call_id = call_id
        self.host = host
        self.closed = False
        self.page_pc: RTCPeerConnection | None = None
        self.pages = 0  # page connections answered
        self.video_to_page = 0  # video frames forwarded each way (tests, the bench)
        self.video_from_page = 0
        self._count: Callable[[str], None] = _ignore
        self._clock = clock
        self._tasks: set[asyncio.Task[object]] = set()
        # towards the peer: fed by the page's receivers, read by the call's senders
        self._to_peer = {k: EncodedTrack(k, f"tablet-{k}", self._ask_page) for k in KINDS}
        self._rebase = {k: _Rebase(k) for k in KINDS}
        self._peer_video: RTCRtpReceiver | None = None
        self._page_video: RTCRtpReceiver | None = None
        self._to_page: dict[str, EncodedTrack] = {}
        self._ask_peer_throttle = _Throttle(clock)
        self._ask_page_throttle = _Throttle(clock)

    # --- the call's connection ----------------------------------------------------------

    def attach(self, pc: RTCPeerConnection, count: Callable[[str], None]) -> list[RTCRtpSender]:
        """Forwarding tracks on the call's connection; its receivers never decode.

        ``count(kind)`` is told of each frame that arrives from the peer.
        """
        self._count = count
        senders = []
        for kind in KINDS:
            transceiver = pc.addTransceiver(self._to_peer[kind], direction="sendrecv")
            transceiver.setCodecPreferences(forwarding.codec_preferences(kind))
            forwarding.forward_keyframe_requests(transceiver.sender, self._ask_page)
            forwarding.tap_receiver(transceiver.receiver, self._from_peer)
            if kind == "video":
                self._peer_video = transceiver.receiver
            senders.append(transceiver.sender)
        return senders

    def _from_peer(self, frame: EncodedFrame) -> None:
        if self.closed:
            return
        kind = "video" if frame.mime_type == forwarding.VIDEO_MIME else "audio"
        self._count(kind)
        track = self._to_page.get(kind)
        if track is not None:
            self.video_to_page += kind == "video"
            track.push(frame)

    def _from_page(self, frame: EncodedFrame) -> None:
        if self.closed:
            return
        kind = "video" if frame.mime_type == forwarding.VIDEO_MIME else "audio"
        self.video_from_page += kind == "video"
        self._to_peer[kind].push(self._rebase[kind](frame))

    def _ask_page(self) -> None:
        """The peer (or a new reader) wants a key frame: ask the page's encoder."""
        if self._page_video is not None and self._ask_page_throttle.due():
            self._spawn(forwarding.request_keyframe(self._page_video))

    def _ask_peer(self) -> None:
        """The page (or a new page connection) wants a key frame: ask the peer's encoder."""
        if self._peer_video is not None and self._ask_peer_throttle.due():
            self._spawn(forwarding.request_keyframe(self._peer_video))

    # --- the page's connection ----------------------------------------------------------

    async def accept_page(self, offer_sdp: str) -> str:
        """Answer the page's offer; a page that reloads replaces its old connection."""
        if self.closed:
            raise NoLiveCall("the call's media has ended")
        offer = loopback_only(offer_sdp)
        if not has_candidate(offer):
            raise PageRefused("the page's offer has no loopback candidate")
        await self._close_page()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # loopback only: no servers
        self.page_pc = pc
        try:
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=forwarding.without_bandwidth_probe(offer), type="offer")
            )
            self._to_page = {}
            for transceiver in pc.getTransceivers():
                kind = transceiver.kind
                if kind not in KINDS or kind in self._to_page:
                    forwarding.tap_receiver(transceiver.receiver, _discard)
                    continue
                track = EncodedTrack(kind, f"peer-{kind}", self._ask_peer)
                self._to_page[kind] = track
                transceiver.setCodecPreferences(forwarding.codec_preferences(kind))
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendrecv"
                forwarding.forward_keyframe_requests(transceiver.sender, self._ask_peer)
                forwarding.tap_receiver(transceiver.receiver, self._from_page)
                if kind == "video":
                    self._page_video = transceiver.receiver
            for rebase in self._rebase.values():
                rebase.restart()
            if not loopback_ice(pc, self.host):
                raise PageRefused("the page's offer has no media to take")
            await pc.setLocalDescription(await pc.createAnswer())
        except PageRefused:
            await self._close_page()
            raise
        except (ValueError, AssertionError, TypeError, forwarding.ForwardingError) as exc:
            await self._close_page()
            raise PageRefused(f"the page's offer cannot be answered: {exc}") from exc
        answer = loopback_only(pc.localDescription.sdp, lambda address: address == self.host)
        if not has_candidate(answer):
            await self._close_page()
            raise PageRefused(f"no ICE candidate on {self.host}: is it an address of lo?")
        self.pages += 1
        log.info("kiosk page media connected to the call", call_id=self.call_id, page=self.pages)
        return answer

    async def _close_page(self) -> None:
        pc, self.page_pc = self.page_pc, None
        self._page_video = None
        for track in self._to_page.values():
            track.stop()
        self._to_page = {}
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()

    # --- the end ------------------------------------------------------------------------

    async def close(self) -> None:
        """Both directions stop: no frame is pushed after this, and the page's connection
        closes (its tracks end whatever its script does)."""
        self.closed = True
        for track in self._to_peer.values():
            track.stop()
        await self._close_page()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def stop(self) -> None:
        """As ``LocalMedia.stop``: from synchronous code, the close runs on the loop."""
        self._spawn(self.close())

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _ignore(kind: str) -> None:
    """Until ``attach``: nobody counts."""


def _discard(frame: EncodedFrame) -> None:
    """Sink for an m-line the page should not have offered: never decoded, never sent on."""
