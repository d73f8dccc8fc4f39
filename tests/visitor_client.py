"""A visitor made of aiortc, speaking the real visitor protocol (API.md).

It joins with an invite token over WSS ``/visit/v1``, answers the offer it
gets with synthetic camera and microphone tracks (the fake hardware), and
counts the decoded frames it receives, keeping a few to check the picture
moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.device.media import PatternTrack, ToneTrack
from kiosk.wire import messages as p


@dataclass
class Received:
    video: int = 0
    audio: int = 0
    first_video_at: float | None = None
    last_video_at: float | None = None
    last_audio_at: float | None = None
    samples: list[bytes] = field(default_factory=list)  # luma planes at a few moments


class Visitor:
    def __init__(self, ws_url: str, token: str, answer: bool = True) -> None:
        self.ws_url = ws_url
        self.token = token
        self.answers = answer  # False: offers are kept, not answered (nobody picks up)
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[Any] = []
        self.errors: list[p.ErrorMessage] = []
        self.call: p.VisitorCallMessage | None = None
        self.waiting: p.WaitingMessage | None = None
        self.tablet_ready: bool | None = None
        self.warnings: list[int] = []
        self.end: p.EndMessage | None = None
        self.pc: RTCPeerConnection | None = None
        self.offers = 0
        self.offered: p.SdpMessage | None = None
        self.received = Received()
        self.remote_fingerprint: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def join(self) -> None:
        self.ws = await self.session.ws_connect(self.ws_url)
        await self.ws.send_str(p.encode(p.JoinMessage(token=self.token)))
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                message = p.parse_server_to_visitor(frame.data)
                self.messages.append(message)
                await self._handle(message)
        finally:
            self.closed.set()

    async def _handle(self, message: Any) -> None:
        if isinstance(message, p.WaitingMessage):
            self.waiting = message
        elif isinstance(message, p.TabletMessage):
            self.tablet_ready = message.ready
        elif isinstance(message, p.VisitorCallMessage):
            self.call = message
        elif isinstance(message, p.SdpMessage) and message.kind == "offer":
            self.offered = message
            if self.answers:
                await self._answer(message)
        elif isinstance(message, p.WarningMessage):
            self.warnings.append(message.minutes_left)
        elif isinstance(message, p.EndMessage):
            self.end = message
            if self.pc is not None:
                await self.pc.close()
        elif isinstance(message, p.ErrorMessage):
            self.errors.append(message)

    async def _answer(self, offer: p.SdpMessage) -> None:
        assert self.ws is not None and self.call is not None
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.call.ice_servers
        ]
        if self.pc is not None:  # a new offer (the tablet rejoined): a new connection, as the page
            await self.pc.close()
        self.offers += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.pc = pc
        self.video_track = PatternTrack()
        self.audio_track = ToneTrack()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.create_task(self._consume(track)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.sender.replaceTrack(self.video_track)
                transceiver.direction = "sendrecv"
            elif transceiver.kind == "audio":
                transceiver.sender.replaceTrack(self.audio_track)
                transceiver.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        await self.ws.send_str(
            p.encode(
                p.SdpMessage(call_id=offer.call_id, kind="answer", sdp=pc.localDescription.sdp)
            )
        )

    async def _consume(self, track: MediaStreamTrack) -> None:
        got = self.received
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    got.video += 1
                    got.first_video_at = got.first_video_at or now
                    got.last_video_at = now
                    if got.video in (10, 40):
                        got.samples.append(bytes(frame.planes[0]))
                else:
                    got.audio += 1
                    got.last_audio_at = now

    async def hangup(self) -> None:
        assert self.ws is not None and self.call is not None
        await self.ws.send_str(p.encode(p.HangupMessage(call_id=self.call.call_id)))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.session.close()


def moving(samples: list[bytes]) -> bool:
    """Two sampled pictures differ: the video moves."""
    return len(samples) >= 2 and samples[0] != samples[-1]


def as_json(message: Any) -> dict[str, Any]:
    return json.loads(p.encode(message))
