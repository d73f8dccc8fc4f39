"""Encoded-frame pass-through for aiortc: the one module that touches aiortc internals.

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
    an ``av.Frame`` goes to ``encoder.pack(data) -> (payloads, timestamp)``
    instead of ``encoder.encode``; the encoder is created lazily in the private
    ``_RTCRtpSender__encoder`` only when that is ``None``. :func:`install_packer`
    puts a :class:`_Packer` there before ``send()`` runs; it splits an encoded
    VP8 frame into RTP payloads (RFC 7741) or passes an Opus packet through, and
    raises if asked to encode. Key-frame requests (PLI/FIR) a consumer sends are
    handled by ``RTCRtpSender._handle_rtcp_packet`` calling
    ``self._send_keyframe()``; an instance attribute of that name routes them to
    the bridge, which forwards them upstream. NACK/RTX stays the sender's own.

``tests/unit/test_bridge_internals.py`` checks the pinned version and every
name and signature used here, and fails with a clear message when they change.
"""

from __future__ import annotations

import asyncio
import queue
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.base import Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

#: The aiortc release whose internals this module was written against.
AIORTC_VERSION = "1.16.0"

#: Codecs the bridge forwards; a leg or monitor must negotiate exactly these.
VIDEO_MIME = "video/VP8"
AUDIO_MIME = "audio/opus"

_VP8_PACKET_MAX = 1300  # as aiortc's own packetiser: fits any sane path MTU
_VP8_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


class PassthroughError(RuntimeError):
    """aiortc is not the version, or not in the state, this module relies on."""


def check_aiortc_version() -> None:
    if aiortc.__version__ != AIORTC_VERSION:
        raise PassthroughError(
            f"the bridge relies on aiortc {AIORTC_VERSION} internals but aiortc "
            f"{aiortc.__version__} is installed; re-check kiosk/signalling/bridge/"
            "passthrough.py and tests/unit/test_bridge_internals.py"
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
        raise PassthroughError("receiver already started: its decoder thread owns the old queue")
    if not isinstance(getattr(receiver, "_RTCRtpReceiver__decoder_queue", None), queue.Queue):
        raise PassthroughError("aiortc receiver has no decoder queue to replace")
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


class _Packer(Encoder):
    """Turns an already encoded frame into RTP payloads; the bridge's senders never encode."""

    def __init__(self) -> None:
        self._picture_id = random.randint(0, (1 << 15) - 1)

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise PassthroughError("the bridge forwards encoded media and never encodes")

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        if not isinstance(packet, EncodedFrame):
            raise PassthroughError(f"bridge sender got {type(packet).__name__}, not EncodedFrame")
        if packet.mime_type == AUDIO_MIME:
            return [packet.data], packet.timestamp
        payloads = vp8_payloads(packet.data, self._picture_id)
        self._picture_id = (self._picture_id + 1) & 0x7FFF
        return payloads, packet.timestamp


def vp8_payloads(data: bytes, picture_id: int) -> list[bytes]:
    """RFC 7741 payloads: X=1, S on the first, I=1 with a 15-bit PictureID, one partition."""
    first = struct.pack("!BBH", 0x90, 0x80, 0x8000 | picture_id)
    rest = struct.pack("!BBH", 0x80, 0x80, 0x8000 | picture_id)
    size = _VP8_PACKET_MAX - len(first)
    return [
        (first if pos == 0 else rest) + data[pos : pos + size] for pos in range(0, len(data), size)
    ]


def install_packer(sender: RTCRtpSender, on_keyframe_request: Callable[[], None]) -> None:
    """Make ``sender`` packetise :class:`EncodedFrame` s and pass PLI/FIR to the callback.

    Must run before the sender starts (``send()``), which is when aiortc would
    otherwise create an encoder on the first frame.
    """
    check_aiortc_version()
    if getattr(sender, "_RTCRtpSender__encoder", "missing") is not None:
        raise PassthroughError("aiortc sender already has an encoder (or none is expected)")
    sender._RTCRtpSender__encoder = _Packer()  # type: ignore[attr-defined]
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Name the MediaStream (SDP msid) the far end groups this sender's track into."""
    sender._stream_id = stream_id


def has_packer(sender: RTCRtpSender) -> bool:
    return isinstance(getattr(sender, "_RTCRtpSender__encoder", None), _Packer)


class EncodedTrack(MediaStreamTrack):
    """A track whose frames are :class:`EncodedFrame` s, read by a sender with a packer.

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

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
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
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()
