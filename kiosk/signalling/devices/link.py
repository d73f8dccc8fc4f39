"""One tablet's link as the device listener holds it: its limits, its rate, its deadlines.

Plain data and arithmetic (no awaiting; the one action is dropping a
connection): the hub (``hub.py``) reads and writes the WebSocket, and the
one timer wheel (``wheel.py``) asks each link when it is due.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


class CloseCode(IntEnum):
    """WebSocket close codes the listener uses (4000-4999: application codes)."""

    GOING_AWAY = 1001  # server shutting down
    MESSAGE_TOO_BIG = 1009  # sent by aiohttp itself for a frame over MAX_MESSAGE_BYTES
    REPLACED = 4000  # the same device connected again
    BAD_MESSAGES = 4400
    DEVICE_REVOKED = 4403
    HEARTBEAT_TIMEOUT = 4408
    RATE_LIMITED = 4429
    CERTIFICATE_EXPIRED = 4498
    SLOW_READER = 4499


@dataclass(frozen=True, slots=True)
class LinkTimers:
    """The link's timers and limits.

    The real values: the tablet pings every 10 s, so a dead link (a tablet
    powered off, a cable pulled with no FIN) is noticed within 30 s, while
    three lost pings on a poor network do not cut a call's signalling. The
    rate allows a burst of ICE candidates at call set-up (tens of messages)
    and a sustained 20 per second, far above any honest use. ``touch_every``
    is how often the tablets' last-seen times are written, all in one batch:
    a write per tablet per ping would cost more than the link itself. Tests
    shorten the timers to keep runs fast; nothing else should.
    """

    handshake_timeout: float = 10.0  # TLS; asyncio's default would hold an idle socket 60 s
    heartbeat_interval: float = 10.0
    silent_intervals: int = 3
    hello_timeout: float = 10.0
    rate: float = 20.0
    burst: float = 60.0
    max_bad_messages: int = 5
    send_timeout: float = 10.0
    close_timeout: float = 2.0
    touch_every: float = 60.0  # seconds between batched writes of devices.last_seen_at

    @property
    def silence_limit(self) -> float:
        return self.heartbeat_interval * self.silent_intervals

    @property
    def wheel_tick(self) -> float:
        """The timer wheel's resolution: a tenth of the shortest deadline, at most 1 s."""
        return min(1.0, self.silence_limit / 10, self.hello_timeout / 10, self.send_timeout / 10)


class TokenBucket:
    """Per-device rate limit: ``rate`` tokens a second, at most ``burst`` saved."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.stamp)  # a clock that steps back refills nothing
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Overdue(Enum):
    """Why the wheel closes a link, and the close code it gets."""

    NO_HELLO = "no hello"
    SILENT = "silent"
    NOT_READING = "not reading"

    @property
    def close_code(self) -> CloseCode:
        return CloseCode.SLOW_READER if self is Overdue.NOT_READING else CloseCode.HEARTBEAT_TIMEOUT


class Link:
    """A connected tablet: its WebSocket, certificate and the times the wheel watches.

    ``heard`` is the monotonic time of the last frame from the tablet (or of
    the upgrade); ``sending_since`` is set while a send to it is under way.
    """

    __slots__ = (
        "bad",
        "certificate_serial",
        "cut",
        "device_id",
        "greeted",
        "heard",
        "not_after",
        "sending",
        "sending_since",
        "transport",
        "ws",
    )

    def __init__(
        self,
        device_id: str,
        ws: web.WebSocketResponse,
        certificate_serial: str,
        not_after: datetime,
        now: float,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.device_id = device_id
        self.ws = ws
        self.transport = transport
        self.certificate_serial = certificate_serial
        self.not_after = not_after
        self.heard = now
        self.greeted = False  # hello received
        self.sending = 0  # sends under way
        self.sending_since: float | None = None  # when the oldest of them started
        self.bad = 0  # bad messages so far
        self.cut = False  # being closed by the server: no more messages either way

    def transport_abort(self) -> None:
        """Drop the connection at once (a tablet that does not even take a close)."""
        if self.transport is not None:
            self.transport.abort()

    def due(self, timers: LinkTimers) -> float:
        """When the wheel must look at this link again."""
        wait = timers.silence_limit if self.greeted else timers.hello_timeout
        at = self.heard + wait
        if self.sending_since is not None:
            at = min(at, self.sending_since + timers.send_timeout)
        return at

    def overdue(self, timers: LinkTimers, now: float) -> Overdue | None:
        """Why the link must be closed now, or None if it is fine."""
        if self.sending_since is not None and now - self.sending_since >= timers.send_timeout:
            return Overdue.NOT_READING  # a tablet that does not read must not hold up the server
        if not self.greeted and now - self.heard >= timers.hello_timeout:
            return Overdue.NO_HELLO
        if self.greeted and now - self.heard >= timers.silence_limit:
            return Overdue.SILENT
        return None
