"""The tablet's one connection to the server: WSS with mutual TLS to ``/device/v1``.

ARCHITECTURE.md, Trust: the tablet speaks only WSS with mutual TLS and
trusts nothing but the deployment CA pinned at provisioning
(``kiosk.crypto.tls.agent_client_context``: TLS 1.3, that CA alone, its own
certificate, host name checked).

Reconnecting: exponential backoff with full jitter (the delay before attempt
n is uniform in [0, min(cap, base * 2**n)]). Why these values (settings
``reconnect_min`` 0.5 s, ``reconnect_max`` 30 s): after a server restart
every tablet of a prison reconnects at once; jitter spreads them out so the
listener is not hit by hundreds of TLS handshakes in the same instant, and
the 30 s cap keeps a tablet from waiting minutes for a server that is back,
while a tablet facing a server that is down costs it at most one handshake
every 30 s. The first retry comes quickly (under half a second) because a
dropped link during a call is usually one lost TCP connection. Tests shorten
both; nothing else should.

Heartbeats: a ``ping`` every ``heartbeat_interval`` (10 s, matching the
listener's ``LinkTimers``); a link that hears nothing for three intervals is
taken for dead and dropped, then re-established.

Messages are parsed strictly (``kiosk.wire.messages.parse_server_to_device``); a
frame that does not parse is logged and dropped, never acted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from pydantic import BaseModel

from kiosk.runtime.logs import get_logger
from kiosk.wire.messages import MAX_MESSAGE_BYTES, ProtocolError, encode, parse_server_to_device

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LinkTimers:
    heartbeat_interval: float = 10.0
    silent_intervals: int = 3
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    connect_timeout: float = 10.0

    @property
    def silence_limit(self) -> float:
        return self.heartbeat_interval * self.silent_intervals


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]. Pure; ``rand`` in [0, 1)."""
    ceiling = cap if attempt >= 63 else min(cap, base * (2**attempt))
    return ceiling * rand()


class Link:
    """Keep one link up; hand each message to ``on_message``; say when it goes up or down."""

    def __init__(
        self,
        url: str,
        ssl_context: ssl.SSLContext,
        timers: LinkTimers,
        *,
        on_up: Callable[[], Awaitable[None]],
        on_down: Callable[[], Awaitable[None]],
        on_message: Callable[[BaseModel], Awaitable[None]],
        on_heartbeat: Callable[[], Awaitable[None]],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.url = url
        self.ssl_context = ssl_context
        self.timers = timers
        self._on_up = on_up
        self._on_down = on_down
        self._on_message = on_message
        self._on_heartbeat = on_heartbeat
        self._rand = rand
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.connects = 0  # successful connections so far
        self.attempt = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="agent link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, message: BaseModel) -> bool:
        """Send one message; False when the link is down (the caller's state says what then)."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        try:
            async with self._lock:
                await asyncio.wait_for(
                    ws.send_str(encode(message)),  # type: ignore[arg-type, unused-ignore]
                    self.timers.connect_timeout,
                )
        except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            log.info("link send failed", error=type(exc).__name__)
            return False
        return True

    async def drop(self) -> None:
        """Close the current connection (it will be re-established): tests and diagnostics."""
        if self._ws is not None:
            await self._ws.close()

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=self.timers.connect_timeout)
        )
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: wait, then try again
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.info("link attempt failed", error=self.last_error, attempt=self.attempt)
            delay = backoff_delay(
                self.attempt, self.timers.reconnect_min, self.timers.reconnect_max, self._rand
            )
            self.attempt += 1
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        assert self._session is not None
        ws = await self._session.ws_connect(
            self.url,
            ssl=self.ssl_context,
            max_msg_size=MAX_MESSAGE_BYTES,
            compress=0,
            autoping=True,
            heartbeat=None,  # the application's ping/pong is the heartbeat
        )
        self._ws = ws
        self.connects += 1
        self.attempt = 0  # connected: the next outage starts from a short delay again
        log.info("link up", url=self.url)
        beat = asyncio.create_task(self._heartbeat(), name="agent heartbeat")
        try:
            await self._on_up()
            await self._read(ws)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            log.info("link down", close_code=ws.close_code)
            await self._on_down()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            try:
                msg = await ws.receive(timeout=self.timers.silence_limit)
            except TimeoutError:
                log.info("link silent; dropping it")
                return
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return
            if msg.type != aiohttp.WSMsgType.TEXT:
                log.warning("link frame refused: not text")
                continue
            try:
                message = parse_server_to_device(msg.data)
            except ProtocolError as exc:
                log.warning("link frame refused", detail=exc.detail)
                continue
            try:
                await self._on_message(message)
            except Exception:
                log.exception("agent failed to handle a message", message_type=message.type)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.timers.heartbeat_interval)
            try:
                await self._on_heartbeat()
            except Exception:
                log.exception("heartbeat failed")
