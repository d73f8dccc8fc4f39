"""What the agent pushes to the kiosk page: events (WS /api/events).

Each page socket has a queue; a page that does not read loses the oldest
item, never the newest, and never holds the agent up. The call's media is
not here: the page captures and plays it itself (kiosk/device/page_peer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from kiosk.device.grant_key import Clock

EVENT_QUEUE = 256

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
        self._media_pages: set[asyncio.Queue[dict[str, Any]]] = set()  # pages that do media

    def subscribe(self, media_page: bool = False) -> asyncio.Queue[dict[str, Any]]:
        """``media_page``: a kiosk page that captures and plays the call's media itself
        (media.js); while one is there, calls forward its media (page_peer.py)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE)
        self._events.add(queue)
        if media_page:
            self._media_pages.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._events.discard(queue)
        self._media_pages.discard(queue)

    @property
    def media_page(self) -> bool:
        """A kiosk page that does the media is open."""
        return bool(self._media_pages)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._events):
            _put_newest(queue, event)
