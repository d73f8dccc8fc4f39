"""Encoded-frame forwarding for aiortc: the one module that touches aiortc internals.

Shared by the server's bridge and the tablet agent (which forwards between the
kiosk page and the call's peer): one place forwards encoded media, for both.

aiortc decodes every frame it receives and encodes every frame it sends; it has
no public API to forward encoded media. The bridge (ARCHITECTURE.md principle 3)
must forward without decoding and re-encoding, so this module hooks the two
places where aiortc hands frames between its RTP machinery and its codecs:

Receiving (``aiortc/rtcrtpreceiver.py``)
    ``RTCRtpReceiver._handle_rtp_packet`` depayloads each packet, lets the
    jitter buffer assemble a whole encoded frame (``JitterFrame``), maps its
    timestamp to start at zero and puts ``(codec, frame)`` on the private
    ``queue.Queue`` ``_RTCRtpReceiver__decoder_queue``, which a decoder thread
    started by ``receive()`` reads. :func:`tap_receiver` swaps that queue for a
    :class:`_FrameTap` *before* ``receive()`` runs: frames go to a callback on
    the event loop and never reach a decoder. The thread still starts, waits on
    the tap and exits on the ``None`` sentinel aiortc puts at stop, so the
    remote track still ends as aiortc intends. NACK, RTX unwrapping, receiver
    reports and REMB stay aiortc's own (hop by hop).

    A key-frame request upstream uses the receiver's private
    ``_send_rtcp_pli(media_ssrc)``; the media SSRC is the most recent active
    source (public ``getSynchronizationSources()``) that is not an RTX SSRC
    (private ``_RTCRtpReceiver__rtx_ssrc``).

Sending (``aiortc/rtcrtpsender.py``)
    ``RTCRtpSender._next_encoded_frame`` reads the track; a result that is not
    an ``av.Frame`` goes to the codec's public ``pack(packet)`` instead of
    ``encode``: aiortc's own VP8 packetiser (RFC 7741) or Opus pass-through,
    with the RTP timestamp taken from the packet's ``pts`` and ``time_base``.
    :class:`EncodedTrack` hands out ``av.Packet`` s, so no encoder is ever
    opened and no private hook is needed to send. Key-frame requests (PLI/FIR)
    a consumer sends are handled by ``RTCRtpSender._handle_rtcp_packet``
    calling ``self._send_keyframe()``; an instance attribute of that name
    (:func:`forward_keyframe_requests`) routes them to the forwarder, which
    asks upstream. NACK/RTX stays the sender's own.

``tests/unit/test_bridge_internals.py`` checks the pinned version and every
name and signature used here, and fails with a clear message when they change.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiortc
import av
from aiortc import RTCRtpCodecCapability, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

#: The aiortc release whose internals this module was written against.
AIORTC_VERSION = "1.16.0"

#: Codecs the bridge forwards; a leg or monitor must negotiate exactly these.
VIDEO_MIME = "video/VP8"
AUDIO_MIME = "audio/opus"

_VP8_PACKET_MAX = 1300  # as aiortc's own packetiser: fits any sane path MTU
_VP8_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


class ForwardingError(RuntimeError):
    """aiortc is not the version, or not in the state, this module relies on."""


def check_aiortc_version() -> None:
    if aiortc.__version__ != AIORTC_VERSION:
        raise ForwardingError(
            f"media forwarding relies on aiortc {AIORTC_VERSION} internals but aiortc "
            f"{aiortc.__version__} is installed; re-check kiosk/media/"
            "forwarding.py and tests/unit/test_bridge_internals.py"
        )


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One whole encoded frame as it arrived: the bridge never looks inside but for the key flag."""

    mime_type: str  # "video/VP8" or "audio/opus"
    data: bytes  # VP8 bitstream without payload descriptors, or one Opus packet
    timestamp: int  # RTP clock units, zero at the stream's first frame
    keyframe: bool


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 section 9.1: P bit 0 in the frame tag and the start code after it."""
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == _VP8_KEYFRAME_START_CODE


# --- receiving -----------------------------------------------------------------------


class _FrameTap(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue; frames go to ``sink``, never to a decoder."""

    def __init__(self, sink: Callable[[EncodedFrame], None]) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # aiortc's stop sentinel: let the idle decoder thread end
            super().put(None, block, timeout)
            return
        codec, jitter_frame = item
        mime = codec.mimeType
        data = jitter_frame.data
        if mime.lower() == VIDEO_MIME.lower():
            frame = EncodedFrame(VIDEO_MIME, data, jitter_frame.timestamp, is_vp8_keyframe(data))
        elif mime.lower() == AUDIO_MIME.lower():
            frame = EncodedFrame(AUDIO_MIME, data, jitter_frame.timestamp, True)
        else:  # negotiation admits only VP8 and Opus; anything else is dropped, never decoded
            return
        self._sink(frame)


def tap_receiver(receiver: RTCRtpReceiver, sink: Callable[[EncodedFrame], None]) -> None:
    """Route the receiver's assembled frames to ``sink`` (on the event loop) instead of a decoder.

    Must run before the receiver starts (``receive()`` starts the decoder thread with the
    queue it finds then), i.e. between creating the transceiver or setting the remote
    offer and completing the connection.
    """
    check_aiortc_version()
    if getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None:
        raise ForwardingError("receiver already started: its decoder thread owns the old queue")
    if not isinstance(getattr(receiver, "_RTCRtpReceiver__decoder_queue", None), queue.Queue):
        raise ForwardingError("aiortc receiver has no decoder queue to replace")
    receiver._RTCRtpReceiver__decoder_queue = _FrameTap(sink)  # type: ignore[attr-defined]


def is_tapped(receiver: RTCRtpReceiver) -> bool:
    return isinstance(getattr(receiver, "_RTCRtpReceiver__decoder_queue", None), _FrameTap)


def media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC the upstream sends media on (not its RTX SSRC), once packets arrived."""
    rtx: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
    sources = [s for s in receiver.getSynchronizationSources() if s.source not in rtx]
    if not sources:
        return None
    return max(sources, key=lambda s: s.timestamp).source


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI upstream on this receiver; False when no media SSRC is known yet."""
    ssrc = media_ssrc(receiver)
    if ssrc is None:
        return False
    await receiver._send_rtcp_pli(ssrc)
    return True


# --- sending -------------------------------------------------------------------------


_TIME_BASES = {VIDEO_MIME: fractions.Fraction(1, 90_000), AUDIO_MIME: fractions.Fraction(1, 48_000)}


def as_packet(frame: EncodedFrame) -> av.Packet[Any]:
    """The frame as an ``av.Packet``, which an aiortc sender packs as it is (never encodes)."""
    packet = av.Packet(frame.data)
    packet.pts = frame.timestamp
    packet.time_base = _TIME_BASES[frame.mime_type]
    return packet


def vp8_payloads(data: bytes, picture_id: int) -> list[bytes]:
    """RFC 7741 payloads: X=1, S on the first, I=1 with a 15-bit PictureID, one partition.

    As aiortc's packer makes them; tests use it to feed a receiver.
    """
    first = struct.pack("!BBH", 0x90, 0x80, 0x8000 | picture_id)
    rest = struct.pack("!BBH", 0x80, 0x80, 0x8000 | picture_id)
    size = _VP8_PACKET_MAX - len(first)
    return [
        (first if pos == 0 else rest) + data[pos : pos + size] for pos in range(0, len(data), size)
    ]


def forward_keyframe_requests(
    sender: RTCRtpSender, on_keyframe_request: Callable[[], None]
) -> None:
    """PLI/FIR a consumer sends on ``sender`` go to the callback (upstream), not to an encoder."""
    check_aiortc_version()
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]


def never_encoded(sender: RTCRtpSender) -> bool:
    """True while a video sender has opened no VP8 encoder: it only packed packets."""
    encoder = getattr(sender, "_RTCRtpSender__encoder", None)
    return not isinstance(encoder, Vp8Encoder) or encoder.codec is None


def codec_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    """The only codecs forwarded media may use: VP8 (with RTX) for video, Opus for audio."""
    wanted = {VIDEO_MIME.lower(), "video/rtx"} if kind == "video" else {AUDIO_MIME.lower()}
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType.lower() in wanted]


_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def without_bandwidth_probe(sdp: str) -> str:
    """Drop the abs-send-time header extension from an SDP a forwarder takes part in.

    With it, aiortc's receiver runs its bitrate estimator and sends a REMB on nearly
    every video packet — about half a forwarder's receive cost — to steer an encoder
    it does not have. Without it each hop keeps loss-based control (RTCP
    receiver reports); senders encode at their own default rate.
    """
    return "".join(line for line in sdp.splitlines(keepends=True) if _ABS_SEND_TIME not in line)


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Name the MediaStream (SDP msid) the far end groups this sender's track into."""
    sender._stream_id = stream_id


class EncodedTrack(MediaStreamTrack):
    """A track of encoded frames: ``push`` an :class:`EncodedFrame`, a sender reads ``av.Packet`` s.

    Video frames are held back until a key frame (a consumer cannot decode from the
    middle of a stream); the first read asks for one through ``on_start``. If the
    consumer falls behind, queued frames are dropped and it waits for the next key
    frame again.
    """

    def __init__(
        self,
        kind: str,
        track_id: str,
        on_need_keyframe: Callable[[], None],
        max_queue: int = 32,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id
        self._need_keyframe = on_need_keyframe
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue()
        self._max_queue = max_queue
        self._reading = False
        self._awaiting_key = kind == "video"
        self.frames_sent = 0

    def push(self, frame: EncodedFrame) -> None:
        if self.readyState != "live" or not self._reading:
            return  # sender not started: nothing to queue for; it asks for a key frame on start
        if self._awaiting_key:
            if not frame.keyframe:
                return
            self._awaiting_key = False
        if self._queue.qsize() >= self._max_queue:  # the consumer fell behind: skip ahead
            self._drain()
            if self.kind == "video" and not frame.keyframe:
                self._awaiting_key = True
                self._need_keyframe()
                return
        self._queue.put_nowait(frame)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override,unused-ignore]
        if self.readyState != "live":
            raise MediaStreamError
        if not self._reading:
            self._reading = True
            if self._awaiting_key:
                self._need_keyframe()
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        self.frames_sent += 1
        return as_packet(frame)

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()
