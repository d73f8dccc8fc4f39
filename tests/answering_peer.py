"""An aiortc peer that answers a tablet's offer with synthetic media, as a browser would.

It stands for the visitor's side in the agent's tests: it sends a tone and a
moving pattern, and counts what it receives (frames per kind, when the last
came, the first frames' luma, which tracks ended, the connection's states).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.device.media import PatternTrack, ToneTrack


@dataclass
class Peer:
    """A plain aiortc peer (the visitor's side, as a browser would be), synthetic media."""

    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    last: dict[str, float] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    states: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    luma: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pc.addTrack(ToneTrack())
        self.pc.addTrack(PatternTrack())
        self.pc.on("track", lambda t: self.tasks.append(asyncio.ensure_future(self.read(t))))
        self.pc.on("connectionstatechange", lambda: self.states.append(self.pc.connectionState))

    async def read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                self.last[track.kind] = time.monotonic()
                if track.kind == "video" and len(self.luma) < 60:
                    self.luma.append(bytes(frame.planes[0]))
        except MediaStreamError:
            self.ended.add(track.kind)

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def offer(self) -> str:
        """As the kiosk page: the offer, with the candidates gathered."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for t in self.tasks:
            t.cancel()
