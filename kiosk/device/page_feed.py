"""What the agent pushes to the kiosk page: events (WS /api/events) and frames (WS /api/frames).

Each page socket has a queue; a page that does not read loses the oldest
item, never the newest, and never holds the agent up. Frames are JPEGs
prefixed by one byte saying whose, at no more than the page needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from kiosk.device.grant_key import Clock
from kiosk.device.media import JpegEncoder
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

FRAME_REMOTE = 1  # first byte of a /api/frames message: the other end's video
FRAME_SELF = 2  # the tablet's own camera (self view)
MAX_UI_FPS = {FRAME_REMOTE: 15.0, FRAME_SELF: 10.0}  # the page needs no more
EVENT_QUEUE = 256
FRAME_QUEUE = 4

T = TypeVar("T")


def _put_newest(queue: asyncio.Queue[T], item: T) -> None:
    if queue.full():  # a page that does not read loses the oldest, not the newest
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)


class PageFeed:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._events: set[asyncio.Queue[dict[str, Any]]] = set()
        self._frames: set[asyncio.Queue[bytes]] = set()
        self._encoders = {FRAME_REMOTE: JpegEncoder(), FRAME_SELF: JpegEncoder()}
        self._frame_sent_at = {FRAME_REMOTE: 0.0, FRAME_SELF: 0.0}

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE)
        self._events.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._events.discard(queue)

    def subscribe_frames(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(FRAME_QUEUE)
        self._frames.add(queue)
        return queue

    def unsubscribe_frames(self, queue: asyncio.Queue[bytes]) -> None:
        self._frames.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._events):
            _put_newest(queue, event)

    def frame(self, kind: int, frame: Any) -> None:
        if not self._frames:
            return
        now = self.clock()
        if now - self._frame_sent_at[kind] < 1.0 / MAX_UI_FPS[kind]:
            return
        self._frame_sent_at[kind] = now
        try:
            data = bytes([kind]) + self._encoders[kind].encode(frame)
        except Exception:
            log.exception("frame could not be encoded for the page")
            return
        for queue in list(self._frames):
            _put_newest(queue, data)
