"""The kiosk page's API: loopback HTTP and WebSockets served by the agent (API.md).

- ``GET /api/state``: what the page shows now (``TabletSession.view``).
- ``POST /api/dial`` ``{"booking_id": "..."}``: ask the server for the call.
- ``POST /api/hangup``, ``POST /api/dismiss`` (back from the end screen).
- ``POST /api/controls`` ``{"call_id": "...", "audio": bool, "video": bool}``: the
  inmate turned the microphone or camera off or on (issue 16); the visitor is told.
- ``WS /api/events``: JSON text messages, first ``{"type": "state", "state": …}``
  then every change: ``state``, ``countdown`` (once a second in a call),
  ``warning`` (``minutes_left``), ``end`` (``reason``), ``refused`` (``code``,
  ``message``, ``detail``), ``error``.
- ``POST /api/media``: the page's WebRTC offer for the live call's media
  (``kiosk.device.page_media_api``); the page is then the tablet's camera,
  microphone and screen. A page that does media opens ``/api/events?media=page``.

Only this machine's kiosk page may use it: the socket binds a loopback
address (the agent refuses to start otherwise), every request must name a
loopback host in ``Host``, and a request that carries an ``Origin`` must
carry the page's own (``http``, loopback, this port) — so neither a web page
elsewhere that a browser on the tablet happened to load (DNS rebinding,
cross-site requests) nor another local page on another port can drive the
agent. POST bodies must be JSON, which a plain
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
from aiohttp.typedefs import Middleware

from kiosk.device.page_media_api import media_handler
from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.runtime.banner import hide_version
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY = 4096
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
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


def loopback_only(port: Callable[[], int]) -> Middleware:
    """The middleware: a loopback ``Host``, and no ``Origin`` but the page's own.

    Issue 12: another page on this machine (another port, another scheme) is
    another origin, and could drive the agent if any loopback origin would do.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if not host or not is_loopback_host(_host_of(host)):
            return error(Reason.NOT_LOOPBACK, 403)
        origin = request.headers.get("Origin")
        if origin is not None and not is_own_origin(origin, port()):
            return error(Reason.NOT_LOOPBACK, 403)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            reason = Reason.NOT_FOUND if exc.status == 404 else Reason.INVALID_REQUEST
            return error(reason, exc.status, exc.reason)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return middleware


def is_own_origin(origin: str, port: int) -> bool:
    """``http://`` a loopback name for this machine, at the port the page server listens on."""
    try:
        parsed = urlsplit(origin)
        origin_port = parsed.port
    except ValueError:
        return False
    return (
        parsed.scheme == "http"
        and is_loopback_host(parsed.hostname or "")
        and origin_port == port
        and parsed.path in ("", "/")
        and not parsed.query
        and not parsed.username
    )


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
            # The page is the tablet's camera and microphone (media.js); nothing else.
            "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), usb=()",
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
    def subscribe(self, media_page: bool = False) -> asyncio.Queue[dict[str, Any]]: ...
    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...
    async def dial(self, booking_id: str) -> list[dict[str, Any]]: ...
    async def hangup(self) -> list[dict[str, Any]]: ...
    async def dismiss(self) -> list[dict[str, Any]]: ...
    async def controls(self, call_id: str, audio: bool, video: bool) -> list[dict[str, Any]]: ...
    async def page_offer(self, call_id: str, sdp: str) -> str: ...


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
        app = web.Application(middlewares=[loopback_only(lambda: self.port)],
                              client_max_size=MAX_BODY)
        app.router.add_get("/api/state", self.state)
        app.router.add_post("/api/dial", self.dial)
        app.router.add_post("/api/hangup", self.hangup)
        app.router.add_post("/api/dismiss", self.dismiss)
        app.router.add_post("/api/controls", self.controls)
        app.router.add_get("/api/events", self.events)
        app.router.add_post("/api/media", media_handler(self.agent.page_offer, error))
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
            _ID.match(booking_id)
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

    async def controls(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        call_id, audio, video = body.get("call_id"), body.get("audio"), body.get("video")
        # Strict, as the wire's MediaMessage: exactly these fields, booleans that are booleans.
        if set(body) != {"call_id", "audio", "video"} or not (
            isinstance(call_id, str) and _ID.match(call_id)
            and type(audio) is bool and type(video) is bool
        ):
            return error(Reason.INVALID_REQUEST, 400,
                         "call_id (an id), audio and video (true or false) are required.")
        return self._outcome(await self.agent.controls(call_id, audio, video))

    # --- WebSockets -----------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        queue = self.agent.subscribe(media_page=request.query.get("media") == "page")
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

    async def _drain(self, ws: web.WebSocketResponse) -> None:
        """The page sends nothing on this socket; reading notices it going away."""
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
