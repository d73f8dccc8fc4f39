"""The aiortc internals the bridge's pass-through relies on are still there and still behave.

kiosk/media/forwarding.py reaches into aiortc (no public API forwards
encoded frames). If aiortc is upgraded, these tests fail first, each naming what
changed, instead of a call silently decoding, re-encoding or going dark.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import re
import tomllib
from pathlib import Path

import aiortc
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    rtcrtpreceiver,
    rtcrtpsender,
)
from aiortc.codecs import get_capabilities
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import RtpPacket

from kiosk.media import forwarding
from kiosk.media.forwarding import EncodedFrame, EncodedTrack
from tests.bridge_media import synthetic_frame

ROOT = Path(__file__).resolve().parents[2]
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)


def require(condition: object, what: str) -> None:
    if not condition:
        pytest.fail(
            f"aiortc internals changed: {what}. The bridge's pass-through "
            f"(kiosk/media/forwarding.py, written for aiortc "
            f"{forwarding.AIORTC_VERSION}) must be re-checked before aiortc "
            f"{aiortc.__version__} is used.",
            pytrace=False,
        )


def source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_aiortc_is_the_pinned_version() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    require(
        "aiortc==" + forwarding.AIORTC_VERSION in pins,
        "pyproject.toml no longer pins aiortc exactly",
    )
    require(
        aiortc.__version__ == forwarding.AIORTC_VERSION, f"aiortc {aiortc.__version__} installed"
    )


def test_receiver_hands_assembled_frames_to_a_queue_its_decoder_thread_reads() -> None:
    handle = source(rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet)
    require(
        "self.__jitter_buffer.add(packet)" in handle,
        "RTCRtpReceiver._handle_rtp_packet no longer assembles frames in the jitter buffer",
    )
    require(
        "self.__decoder_queue.put((codec, encoded_frame))" in handle,
        "RTCRtpReceiver._handle_rtp_packet no longer puts (codec, frame) on __decoder_queue",
    )
    receive = source(rtcrtpreceiver.RTCRtpReceiver.receive)
    require(
        "self.__decoder_queue," in receive and "target=decoder_worker" in receive,
        "RTCRtpReceiver.receive no longer starts decoder_worker on __decoder_queue",
    )
    worker = inspect.signature(rtcrtpreceiver.decoder_worker)
    require(
        list(worker.parameters) == ["loop", "input_q", "output_q", "decode_error"],
        f"decoder_worker's signature is now {worker}",
    )
    require(
        "if task is None:" in source(rtcrtpreceiver.decoder_worker),
        "decoder_worker's stop sentinel changed",
    )
    require(
        {"data", "timestamp"} <= set(inspect.signature(JitterFrame).parameters),
        "JitterFrame no longer carries data and timestamp",
    )


def test_receiver_and_sender_private_state_is_where_passthrough_expects() -> None:
    async def inspect_state() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            transceiver = pc.addTransceiver("video")
            receiver, sender = transceiver.receiver, transceiver.sender
            require(
                isinstance(getattr(receiver, "_RTCRtpReceiver__decoder_queue", None), queue.Queue),
                "RTCRtpReceiver.__decoder_queue is gone or not a queue.Queue",
            )
            require(
                getattr(receiver, "_RTCRtpReceiver__decoder_thread", "missing") is None,
                "RTCRtpReceiver.__decoder_thread is gone",
            )
            require(
                isinstance(getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", None), dict),
                "RTCRtpReceiver.__rtx_ssrc is gone",
            )
            require(
                getattr(sender, "_RTCRtpSender__encoder", "missing") is None,
                "RTCRtpSender.__encoder is gone or no longer starts as None",
            )
            require(
                isinstance(getattr(sender, "_stream_id", None), str),
                "RTCRtpSender._stream_id is gone",
            )
        finally:
            await pc.close()

    asyncio.run(inspect_state())


def test_sender_packs_non_frames_and_routes_key_frame_requests_through_send_keyframe() -> None:
    nxt = source(rtcrtpsender.RTCRtpSender._next_encoded_frame)
    require("if self.__encoder is None:" in nxt, "the sender no longer creates its encoder lazily")
    require("isinstance(data, Frame)" in nxt, "the sender no longer tells frames from packets")
    require("self.__encoder.pack(data)" in nxt, "the sender no longer packs pre-encoded data")
    rtcp = source(rtcrtpsender.RTCRtpSender._handle_rtcp_packet)
    require(
        re.search(r"RTCP_PSFB_FIR.*RTCP_PSFB_PLI.*self\._send_keyframe\(\)", rtcp, re.S),
        "PLI/FIR no longer reach RTCRtpSender._send_keyframe",
    )
    require(
        "RTCP_RTPFB_NACK" in rtcp and "_retransmit" in rtcp,
        "the sender no longer answers NACKs itself",
    )
    require(
        list(inspect.signature(Encoder.pack).parameters) == ["self", "packet"],
        "Encoder.pack's signature changed",
    )
    pli = inspect.signature(RTCRtpReceiver._send_rtcp_pli)
    require(
        inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp_pli)
        and list(pli.parameters) == ["self", "media_ssrc"],
        f"RTCRtpReceiver._send_rtcp_pli is now {pli}",
    )
    require(
        hasattr(RTCRtpReceiver, "getSynchronizationSources"), "getSynchronizationSources is gone"
    )
    names = {c.mimeType for c in get_capabilities("video").codecs} | {
        c.mimeType for c in get_capabilities("audio").codecs
    }
    require(
        {forwarding.VIDEO_MIME, forwarding.AUDIO_MIME} <= names,
        "VP8 or Opus is no longer offered",
    )


def test_a_tapped_receiver_yields_the_exact_encoded_frames_and_never_decodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real VP8 through our packer, aiortc's depayloader and jitter buffer, out of the tap."""

    def no_decoder(codec: object) -> None:
        raise AssertionError("a tapped receiver created a decoder")

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", no_decoder)
    raw = vp8_frames(3)

    async def run() -> list[EncodedFrame]:
        got: list[EncodedFrame] = []
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        receiver = pc.addTransceiver("video").receiver
        try:
            forwarding.tap_receiver(receiver, got.append)
            receiver._track = rtcrtpreceiver.RemoteStreamTrack(kind="video")
            await receiver.receive(RTCRtpReceiveParameters(codecs=[VP8]))
            sequence = 1000
            for index, data in enumerate(raw):
                payloads = forwarding.vp8_payloads(data, index)
                for n, payload in enumerate(payloads):
                    packet = RtpPacket(
                        payload_type=97,
                        sequence_number=sequence,
                        timestamp=5000 + index * 3600,
                        ssrc=1234,
                        marker=int(n == len(payloads) - 1),
                        payload=payload,
                    )
                    sequence += 1
                    await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
            require(
                forwarding.media_ssrc(receiver) == 1234, "the media SSRC is not found from sources"
            )
        finally:
            await receiver.stop()
            await pc.close()
        return got

    got = asyncio.run(run())
    # The jitter buffer releases a frame when the next one starts: the last stays inside.
    require(
        [f.data for f in got] == raw[:2],
        "the tap did not return the assembled VP8 frames unchanged",
    )
    require(
        [f.timestamp for f in got] == [0, 3600],
        "frame timestamps are no longer mapped to start at 0",
    )
    assert got[0].keyframe and not got[1].keyframe


def vp8_frames(count: int) -> list[bytes]:
    """Real VP8 frames (a key frame, then deltas) from aiortc's encoder, descriptors removed."""
    encoder = Vp8Encoder()
    return [
        b"".join(vp8_depayload(p) for p in encoder.encode(synthetic_frame(i, 100))[0])
        for i in range(count)
    ]


def test_a_sender_packs_forwarded_frames_as_they_are_and_never_encodes() -> None:
    async def run() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        requests: list[int] = []
        try:
            track = EncodedTrack("video", "t", lambda: requests.append(1))
            sender: RTCRtpSender = pc.addTransceiver(track, direction="sendonly").sender
            forwarding.forward_keyframe_requests(sender, lambda: requests.append(2))
            data = bytes([0x10, 0, 0, 0x9D, 0x01, 0x2A]) + bytes(3000)  # a VP8 key frame's head
            reader = asyncio.ensure_future(sender._next_encoded_frame(VP8))
            await asyncio.sleep(0)
            require(requests == [1], "starting to read did not ask for a key frame")
            track.push(EncodedFrame(forwarding.VIDEO_MIME, data, 1800, True))
            encoded = await asyncio.wait_for(reader, 5)
            require(encoded is not None, "the sender dropped a packed frame")
            assert encoded is not None
            require(encoded.timestamp == 1800, "the packed frame's timestamp changed on the way")
            require(
                b"".join(vp8_depayload(p) for p in encoded.payloads) == data,
                "the sender did not send the encoded bytes as they are",
            )
            require(all(len(p) <= 1300 for p in encoded.payloads), "payloads exceed the MTU budget")
            require(forwarding.never_encoded(sender), "the sender opened a VP8 encoder")
            await sender._handle_rtcp_packet(
                aiortc.rtp.RtcpPsfbPacket(
                    fmt=aiortc.rtp.RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc
                )
            )
            require(requests == [1, 2], "a consumer's PLI did not reach the forwarder's callback")
        finally:
            await pc.close()

    asyncio.run(run())


def test_vp8_key_frame_detection() -> None:
    key, delta = vp8_frames(2)
    assert forwarding.is_vp8_keyframe(key)
    assert not forwarding.is_vp8_keyframe(delta)
    assert not forwarding.is_vp8_keyframe(b"")


def test_a_consumer_starts_at_a_key_frame_and_skips_ahead_to_one_when_behind() -> None:
    def frame(n: int, key: bool) -> EncodedFrame:
        return EncodedFrame(forwarding.VIDEO_MIME, bytes([n]), n, key)

    async def run() -> None:
        asks: list[int] = []
        track = EncodedTrack("video", "t", lambda: asks.append(1), max_queue=3)
        track.push(frame(0, True))  # nobody reads yet: nothing is queued
        first = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)
        assert asks == [1]  # the first read asks upstream for a key frame
        track.push(frame(1, False))  # cannot be decoded without a key frame: dropped
        track.push(frame(2, True))
        track.push(frame(3, False))
        assert (await first).pts == 2
        assert (await track.recv()).pts == 3
        for n in range(4, 8):  # the sender stalls; the queue fills up
            track.push(frame(n, False))
        assert asks == [1, 1]  # overflow: drained, and a key frame asked for
        track.push(frame(8, False))
        track.push(frame(9, True))
        assert (await track.recv()).pts == 9
        track.stop()

    asyncio.run(run())


def test_ice_gathering_and_checks_go_through_the_gatherers_aioice_connection() -> None:
    """kiosk/device/page_peer.py gathers on one address and drops non-loopback checks there."""
    import aioice

    datagram = source(aioice.ice.StunProtocol.datagram_received)
    require(
        "self.receiver.request_received(message, addr, self)" in datagram,
        "aioice no longer hands incoming checks to Connection.request_received",
    )
    params = list(inspect.signature(aioice.Connection.request_received).parameters)
    require(params[:3] == ["self", "message", "addr"], f"request_received is now {params}")
    gather = source(aioice.Connection.gather_candidates)
    require(
        "self.get_component_candidates(component=component, addresses=addresses)" in gather,
        "aioice no longer gathers through get_component_candidates(addresses=...)",
    )

    async def run() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            transceiver = pc.addTransceiver("audio")
            gatherer = transceiver.receiver.transport.transport.iceGatherer
            require(
                isinstance(getattr(gatherer, "_connection", None), aioice.Connection),
                "RTCIceGatherer._connection is gone or not an aioice Connection",
            )
        finally:
            await pc.close()

    asyncio.run(run())
