"""The visitor endpoint: WSS ``/visit/v1`` on the web listener (API.md).

The invite token is the visitor's only credential: the first message must be
``join{token}`` within a few seconds. After that the page (or a test visitor)
exchanges SDP and ICE with the tablet through the switchboard. Every frame is
parsed strictly; a bad frame is answered with ``invalid_request`` and too
many of them close the socket. A visitor can never crash the server or slow
other calls: frames are bounded and rate-limited per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel

from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls.ports import Calls
from kiosk.signalling.calls.runner import CallRefused, CallsHolder
from kiosk.wire import messages as p

log = get_logger(__name__)

CALLS = web.AppKey("calls", CallsHolder)
SOCKETS = web.AppKey("visitor_sockets", set[web.WebSocketResponse])

JOIN_TIMEOUT = 10.0  # seconds for the first message
MAX_BAD_FRAMES = 5
RATE_PER_SECOND = 20.0  # sustained frames per second from one visitor
RATE_BURST = 60.0


class _Bucket:
    """Token bucket: a visitor may burst ICE candidates, not flood the server."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class WebSocketLeg:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._send_lock = asyncio.Lock()

    async def send(self, message: BaseModel) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(p.encode(message))

    async def close(self) -> None:
        await self.ws.close()


async def visitor_socket(request: web.Request) -> web.StreamResponse:
    runner = request.app[CALLS]()
    ws = web.WebSocketResponse(max_msg_size=p.MAX_MESSAGE_BYTES, heartbeat=20.0)
    await ws.prepare(request)
    leg = WebSocketLeg(ws)
    seat: str | None = None
    request.app[SOCKETS].add(ws)
    try:
        try:
            first = await ws.receive(timeout=JOIN_TIMEOUT)
        except TimeoutError:
            await leg.send(p.ErrorMessage.of(Reason.INVALID_REQUEST, "join first"))
            return ws
        if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return ws
        try:
            join = p.parse_visitor_message(first.data)
        except p.ProtocolError as exc:
            await leg.send(p.ErrorMessage.of(Reason.INVALID_REQUEST, exc.detail[:1000]))
            return ws
        if not isinstance(join, p.JoinMessage):
            await leg.send(p.ErrorMessage.of(Reason.INVALID_REQUEST, "join first"))
            return ws
        try:
            seat = await runner.visitor_join(join.token, leg)
        except CallRefused as exc:
            await leg.send(p.ErrorMessage.of(exc.reason, exc.detail[:1000]))
            return ws
        await _serve(runner, seat, ws, leg)
    finally:
        request.app[SOCKETS].discard(ws)
        if seat is not None:
            await runner.visitor_left(seat)
        if not ws.closed:
            await ws.close()
    return ws


async def _serve(
    runner: Calls, seat: str, ws: web.WebSocketResponse, leg: WebSocketLeg
) -> None:
    bad = 0
    bucket = _Bucket(RATE_PER_SECOND, RATE_BURST)
    async for frame in ws:
        if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            break
        if not bucket.take():
            await leg.send(p.ErrorMessage.of(Reason.RATE_LIMITED))
            break
        try:
            message = p.parse_visitor_message(frame.data)
        except p.ProtocolError as exc:
            bad += 1
            await leg.send(p.ErrorMessage.of(Reason.INVALID_REQUEST, exc.detail[:1000]))
            if bad >= MAX_BAD_FRAMES:
                break
            continue
        if isinstance(message, p.PingMessage):
            await leg.send(p.PongMessage(seq=message.seq, server_time=runner.clock()))
        elif isinstance(message, p.JoinMessage):
            await leg.send(p.ErrorMessage.of(Reason.INVALID_REQUEST, "already joined"))
        else:
            try:
                await runner.visitor_message(seat, message)
            except Exception:
                # A fault in one call must not take the socket loop down with it.
                log.exception("visitor message failed", seat=seat)
                await leg.send(p.ErrorMessage.of(Reason.INVALID_REQUEST))


async def _going_away(app: web.Application) -> None:
    """A stopping server says so to every page (1001), which comes back to any node at once,
    rather than leaving its socket for the web server's shutdown to wait on and cut."""
    open_now = app[SOCKETS]
    sockets = list(open_now)
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping") for ws in sockets),
        return_exceptions=True,
    )


def add_routes(app: web.Application, calls: CallsHolder) -> None:
    app[CALLS] = calls
    app[SOCKETS] = set()
    app.on_shutdown.append(_going_away)
    app.router.add_get("/visit/v1", visitor_socket)
