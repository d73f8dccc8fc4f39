"""One tablet's link: its close codes, timers and rate limit, and what the hub tells the server.

The link's rules are in ``kiosk.signalling.devices.listener``'s docstring.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Protocol

from aiohttp import web
from pydantic import BaseModel


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
    and a sustained 20 per second, far above any honest use. Tests shorten
    the timers to keep runs fast; nothing else should.
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
    touch_every: float = 60.0  # last_seen_at is written at most this often per device

    @property
    def silence_limit(self) -> float:
        return self.heartbeat_interval * self.silent_intervals


class TokenBucket:
    """Per-device rate limit: ``rate`` tokens a second, at most ``burst`` saved."""

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


class DeviceHandler(Protocol):
    """What the listener tells the rest of the server (the calls' runner)."""

    async def on_connect(self, device_id: str) -> None: ...

    async def on_message(self, device_id: str, message: BaseModel) -> None: ...

    async def on_disconnect(self, device_id: str) -> None: ...


class NullHandler:
    """A handler that ignores everything: the listener alone (tests, tools)."""

    async def on_connect(self, device_id: str) -> None:
        return None

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        return None

    async def on_disconnect(self, device_id: str) -> None:
        return None


class Link:
    __slots__ = ("certificate_serial", "cut", "device_id", "lock", "not_after", "ws")

    def __init__(
        self,
        device_id: str,
        ws: web.WebSocketResponse,
        certificate_serial: str,
        not_after: datetime,
    ) -> None:
        self.device_id = device_id
        self.ws = ws
        self.certificate_serial = certificate_serial
        self.not_after = not_after
        self.lock = asyncio.Lock()
        self.cut = False  # being closed by the server: no more messages either way
