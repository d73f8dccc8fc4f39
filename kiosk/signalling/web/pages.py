"""Static pages and their assets, with the headers every page carries.

The visitor page is one HTML shell for every invite: the token stays in the
address (never in a log: the server logs no access lines) and the script
reads it from there. The language is chosen from ``Accept-Language`` (bokmål
or English) and written into ``<html lang>``; the page offers a switch.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
LANGUAGES = ("nb", "en")
DEFAULT_LANGUAGE = "nb"

# No inline script or style anywhere; WebSockets to this origin only (CSP3 'self'
# covers ws: and wss: of the same host).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)?\.(css|js|json|svg|png)$")
# An invite token: url-safe base64, 16-128 characters (kiosk.wire.messages.Token).
TOKEN_PATTERN = r"[A-Za-z0-9_-]{16,128}"  # noqa: S105 (a pattern, not a secret)


def page_headers(camera: bool = False) -> dict[str, str]:
    """Headers of a page; ``camera``: the page may ask for camera and microphone."""
    allow = "camera=(self), microphone=(self)" if camera else "camera=(), microphone=()"
    return {
        "Content-Security-Policy": PAGE_CSP,
        "Permissions-Policy": f"{allow}, geolocation=(), usb=()",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }


def choose_language(accept_language: str) -> str:
    """The first of the browser's languages we speak: ``nb`` (also for no/nn) or ``en``."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-", 1)[0]
        if primary in ("nb", "no", "nn"):
            ranked.append((-quality, index, "nb"))
        elif primary == "en":
            ranked.append((-quality, index, "en"))
    ranked = [r for r in ranked if r[0] < 0]
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def page_language(request: web.Request, chosen: object = None) -> str:
    """A server-rendered page's language: the one its form carried (``chosen``), else the
    switch's ``?lang=``, else the browser's ``Accept-Language``."""
    for asked in (chosen, request.query.get("lang", "")):
        if isinstance(asked, str) and asked in LANGUAGES:
            return asked
    return choose_language(request.headers.get("Accept-Language", ""))


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


def html_page(name: str, request: web.Request, camera: bool = False) -> web.Response:
    language = choose_language(request.headers.get("Accept-Language", ""))
    body = _read(STATIC / name).decode("utf-8").replace('lang="nb"', f'lang="{language}"', 1)
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/html",
        charset="utf-8",
        headers=page_headers(camera),
    )


def static_handler(folder: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    root = STATIC / folder

    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _ASSET.match(name):
            raise web.HTTPNotFound()
        path = root / name
        if not path.is_file():
            raise web.HTTPNotFound()
        headers = page_headers()
        headers["Cache-Control"] = "no-cache"
        return web.Response(
            body=_read(path), headers={**headers, "Content-Type": CONTENT_TYPES[path.suffix]}
        )

    return handler


async def visitor_page(request: web.Request) -> web.Response:
    return html_page("visitor/visitor.html", request, camera=True)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/visit/{token:" + TOKEN_PATTERN + "}", visitor_page)
    app.router.add_get("/static/visitor/{name:.+}", static_handler("visitor"))
