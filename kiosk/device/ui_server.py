"""The kiosk page's API: loopback HTTP and WebSockets served by the agent (API.md).

- ``GET /api/state``: what the page shows now (``TabletSession.view``).
- ``POST /api/dial`` ``{"booking_id": "..."}``: ask the server for the call.
- ``POST /api/hangup``, ``POST /api/dismiss`` (back from the end screen).
- ``WS /api/events``: JSON text messages, first ``{"type": "state", "state": …}``
  then every change: ``state``, ``countdown`` (once a second in a call),
  ``warning`` (``minutes_left``), ``end`` (``reason``), ``refused`` (``code``,
  ``message``, ``detail``), ``error``.
- ``WS /api/frames``: binary messages, one per video frame: one byte saying
  whose (1 = the other end, 2 = this tablet's camera) then a JPEG, which a
  page draws with ``createImageBitmap`` on a canvas.

Only this machine may use it: the socket binds a loopback address (the agent
refuses to start otherwise), and every request must name a loopback host in
``Host`` and, when it carries one, ``Origin`` — so a web page elsewhere that
a browser on the tablet happened to load cannot drive the agent (DNS
rebinding, cross-site requests). POST bodies must be JSON, which a plain
cross-site form cannot send. Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.runtime.banner import hide_version
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

MAX_BODY = 4096
_BOOKING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_STATUS = {
    Reason.CALL_ALREADY_LIVE: 409,
    Reason.CALL_NOT_LIVE: 409,
    Reason.DEVICE_NOT_CONNECTED: 503,
}


def is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def _host_of(value: str) -> str:
    """The host part of a Host header or an origin, without port or brackets."""
    parsed = urlsplit(value if "//" in value else f"//{value}")
    return parsed.hostname or ""


def error(code: Reason, status: int, message: str = "") -> web.Response:
    body = {"error": {"code": code.value, "message": message or MESSAGES.get(code, code.value)}}
    return web.json_response(body, status=status)


@web.middleware
async def loopback_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    host = request.headers.get("Host", "")
    if not host or not is_loopback_host(_host_of(host)):
        return error(Reason.NOT_LOOPBACK, 403)
    origin = request.headers.get("Origin")
    if origin is not None:
        parsed = urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not is_loopback_host(parsed.hostname or ""):
            return error(Reason.NOT_LOOPBACK, 403)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        reason = Reason.NOT_FOUND if exc.status == 404 else Reason.INVALID_REQUEST
        return error(reason, exc.status, exc.reason)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


# --- the kiosk page ------------------------------------------------------------------------

STATIC = Path(__file__).resolve().parent / "static"
# Nothing on the page may reach any host but this agent (issue 4): scripts,
# styles and sockets from this origin only, no inline script, no framing.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_ASSET = re.compile(r"^(i18n/)?[a-z0-9][a-z0-9_-]*\.(css|js|json)$")
_TYPES = {".css": "text/css", ".js": "text/javascript", ".json": "application/json",
          ".html": "text/html"}


def _static(name: str) -> web.Response:
    path = STATIC / name
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=path.read_bytes(),
        content_type=_TYPES[path.suffix],
        charset="utf-8",
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
        },
    )


async def kiosk_page(request: web.Request) -> web.Response:
    return _static("kiosk.html")


async def kiosk_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not _ASSET.match(name):
        raise web.HTTPNotFound()
    return _static(name)


class PageApi(Protocol):
    """What the page's API drives: the agent (kiosk/device/agent.py)."""

    def view(self) -> dict[str, Any]: ...
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]: ...
    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...
    def subscribe_frames(self) -> asyncio.Queue[bytes]: ...
    def unsubscribe_frames(self, queue: asyncio.Queue[bytes]) -> None: ...
    async def dial(self, booking_id: str) -> list[dict[str, Any]]: ...
    async def hangup(self) -> list[dict[str, Any]]: ...
    async def dismiss(self) -> list[dict[str, Any]]: ...


class UiServer:
    def __init__(self, agent: PageApi, host: str, port: int) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"the kiosk UI listens on loopback only, not {host!r}")
        self.agent = agent
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[loopback_only], client_max_size=MAX_BODY)
        app.router.add_get("/api/state", self.state)
        app.router.add_post("/api/dial", self.dial)
        app.router.add_post("/api/hangup", self.hangup)
        app.router.add_post("/api/dismiss", self.dismiss)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/frames", self.frames)
        # The kiosk page itself (kiosk/device/static): same loopback-only rules.
        app.router.add_get("/", kiosk_page)
        app.router.add_get("/static/{name:.+}", kiosk_asset)
        return app

    async def start(self) -> int:
        hide_version()  # issue 12: the page server names no version either
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("kiosk UI API listening", host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- HTTP -----------------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(self.agent.view())

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.content_type != "application/json":
            return error(Reason.INVALID_REQUEST, 415, "The body must be JSON.")
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError):
            return error(Reason.INVALID_REQUEST, 400, "The body is not valid JSON.")
        if not isinstance(body, dict):
            return error(Reason.INVALID_REQUEST, 400, "The body must be a JSON object.")
        return body

    def _outcome(self, events: list[dict[str, Any]]) -> web.Response:
        refused = [e for e in events if e.get("type") == "refused"]
        if refused:
            code = Reason(refused[0]["code"])
            return error(code, _STATUS.get(code, 409), refused[0]["message"])
        return web.json_response({"ok": True, "state": self.agent.view()}, status=202)

    async def dial(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        booking_id = body.get("booking_id")
        if set(body) != {"booking_id"} or not isinstance(booking_id, str) or not (
            _BOOKING_ID.match(booking_id)
        ):
            return error(Reason.INVALID_REQUEST, 400, "booking_id is required and is an id.")
        return self._outcome(await self.agent.dial(booking_id))

    async def hangup(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        if body:
            return error(Reason.INVALID_REQUEST, 400, "hangup takes no fields.")
        return self._outcome(await self.agent.hangup())

    async def dismiss(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        return self._outcome(await self.agent.dismiss())

    # --- WebSockets -----------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        queue = self.agent.subscribe()
        self._sockets.add(ws)
        reader = asyncio.create_task(self._drain(ws))
        try:
            await ws.send_json({"type": "state", "state": self.agent.view()})
            while not ws.closed and not reader.done():
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                await ws.send_json(get.result())
        except (ConnectionError, RuntimeError):
            pass
        finally:
            reader.cancel()
            self.agent.unsubscribe(queue)
            self._sockets.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def frames(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        queue = self.agent.subscribe_frames()
        self._sockets.add(ws)
        reader = asyncio.create_task(self._drain(ws))
        try:
            while not ws.closed and not reader.done():
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                await ws.send_bytes(get.result())
        except (ConnectionError, RuntimeError):
            pass
        finally:
            reader.cancel()
            self.agent.unsubscribe_frames(queue)
            self._sockets.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _drain(self, ws: web.WebSocketResponse) -> None:
        """The page sends nothing on these sockets; reading notices it going away."""
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
