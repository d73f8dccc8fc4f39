"""The staff console: a static single-page application under ``/console/`` (issue 4).

``add_routes(app)`` mounts:

- ``GET /console`` and ``GET /console/``: the page shell (``static/console.html``).
- ``GET /console/static/{file}``: its scripts (ES modules), style and strings
  (``i18n/en.json``, ``i18n/nb.json``).

The page talks only to the staff API of this origin (``/api/v1``): it logs in
with a session cookie, sends the CSRF token with every state change, and asks
``GET /me`` which actions the role may take, so it offers nothing else (the
API refuses them anyway). Every response carries a strict Content-Security-
Policy: no inline script or style, nothing from other hosts, no framing.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
}
# One folder level at most, lower-case names: nothing else is served.
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)?\.(css|js|json|svg)$")


def console_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CONSOLE_CSP,
        # The monitor page only receives media: no camera, no microphone.
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _read(path: Path) -> bytes:
    # Small files and few staff: read each time, so an upgrade needs no restart to show.
    return path.read_bytes()


async def page(_: web.Request) -> web.Response:
    headers = console_headers()
    headers["Cache-Control"] = "no-store"
    headers["Content-Type"] = CONTENT_TYPES[".html"]
    return web.Response(body=_read(STATIC / "console.html"), headers=headers)


async def redirect(_: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not _ASSET.match(name):
        raise web.HTTPNotFound()
    path = STATIC / name
    if not path.is_file():
        raise web.HTTPNotFound()
    headers = console_headers()
    headers["Cache-Control"] = "no-cache"
    headers["Content-Type"] = CONTENT_TYPES[path.suffix]
    return web.Response(body=_read(path), headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console", redirect)
    app.router.add_get("/console/", page)
    app.router.add_get("/console/static/{name:.+}", asset)


__all__ = ["CONSOLE_CSP", "add_routes"]
