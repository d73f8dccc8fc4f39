"""The web application of the server: staff API now; console and visitor pages later.

``build_app(settings)`` gives an :class:`aiohttp.web.Application` whose
clean-up context opens the database (upgraded to the newest schema) and the
audit chain at start-up and closes them (with a final checkpoint) at shutdown.
The shared :class:`ServerContext` is then at ``app[CONTEXT]``.

Middlewares: every error is JSON ``{"error": {"code", "message"}}`` with a
reason code; bodies over ``server.max_body_bytes`` are refused with 413
``payload_too_large`` before they are read; an unexpected exception is a bug,
logged with its trace and answered 500 ``internal_error`` without one. Every
response carries security headers, with a CSP that allows nothing (pages that
need more set their own).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.runtime.config import Settings
from kiosk.runtime.logs import get_logger
from kiosk.signalling.api import operations as api_operations
from kiosk.signalling.api.base import (
    API_PREFIX,
    RECORDS_REFUSALS,
    ApiError,
    Operation,
    error_body,
    mount,
)
from kiosk.signalling.context import (
    AUDIT,
    CONTEXT,
    ENGINE,
    SETTINGS,
    ServerContext,
    open_context,
    utc_now,
)
from kiosk.signalling.openapi import openapi_document
from kiosk.signalling.proxies import TrustedProxies, forwarded, served_over_tls

log = get_logger(__name__)

OPERATIONS = web.AppKey("operations", list[Operation])

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
}


def json_error(status: int, reason: Reason, message: str = "") -> web.Response:
    return web.json_response(error_body(reason, message or MESSAGES[reason]), status=status)


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        return json_error(404, Reason.NOT_FOUND)
    if exc.status == 413:
        return json_error(413, Reason.PAYLOAD_TOO_LARGE)
    response = json_error(exc.status, Reason.INVALID_REQUEST, exc.reason)
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def body_limit(max_bytes: int) -> Any:
    @web.middleware
    async def limit(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        length = request.content_length
        # An operation that records its refusals (a call's, R13) reads no more than
        # client_max_size either, and records the refusal with the rest.
        audited = getattr(request.match_info.handler, RECORDS_REFUSALS, False)
        if length is not None and length > max_bytes and not audited:
            return json_error(413, Reason.PAYLOAD_TOO_LARGE)
        return await handler(request)

    return limit


def _logged_path(request: web.Request) -> str:
    """The path for a log line. Outside the API a path may carry a link's token (a
    visitor's invite, a set-password link): those are logged as their route's template."""
    if request.path.startswith(API_PREFIX):
        return request.path
    route = request.match_info.route.resource
    return route.canonical if route is not None else "(no route)"


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 409:
            log.info("request refused", path=_logged_path(request), code=exc.reason.value)
        response = json_error(exc.status, exc.reason, exc.message)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            "request failed on a bug", method=request.method, path=_logged_path(request)
        )
        return json_error(500, Reason.INTERNAL_ERROR)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(API_PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")
    if served_over_tls(request):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def _context_factory(
    settings: Settings, clock: Callable[[], datetime]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_context(settings, clock) as ctx:
            app[ENGINE] = ctx.engine
            app[AUDIT] = ctx.audit
            app[CONTEXT] = ctx
            log.info("server context ready", database=ctx.engine.dialect.name)
            # A signed checkpoint at least every checkpoint_seconds while entries come in.
            timer = asyncio.create_task(ctx.audit.run_timer(settings.audit.checkpoint_seconds))
            try:
                yield
            finally:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
        log.info("server context closed")

    return context


def build_app(
    settings: Settings,
    *,
    operations: Iterable[Operation] = (),
    clock: Callable[[], datetime] = utc_now,
) -> web.Application:
    """The web application; ``operations`` adds routes from other modules (e.g. calls)."""
    max_body = settings.server.max_body_bytes
    app = web.Application(
        client_max_size=max_body,
        middlewares=[
            forwarded(TrustedProxies.of(settings.web.trusted_proxies)),
            errors,
            body_limit(max_body),
        ],
    )
    app[SETTINGS] = settings
    ops = [*api_operations(), *operations]
    app[OPERATIONS] = ops
    app.cleanup_ctx.append(_context_factory(settings, clock))
    app.on_response_prepare.append(_security_headers)
    mount(app, ops)
    document = openapi_document(ops)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(API_PREFIX + "/openapi.json", openapi)
    return app


def context_of(app: web.Application) -> ServerContext:
    return app[CONTEXT]


__all__: list[Any] = ["OPERATIONS", "build_app", "context_of", "json_error"]
