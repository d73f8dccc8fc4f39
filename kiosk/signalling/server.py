"""Running the server: the web listener now; the device listener and the calls hook in.

``start(settings)`` opens the database (upgraded), the audit chain and the web
listener and returns a :class:`Server`; ``await server.close()`` stops the
listener and closes the audit chain with a final signed checkpoint. Other
parts of the process (the device listener, the calls' runner) get the same
:class:`ServerContext` from ``server.context``, add operations through
``operations=`` and start-up/clean-up work through ``configure=`` (called
with the application before it starts, e.g. to append to ``cleanup_ctx``).

``run(settings)`` is ``kiosk server``: start, wait for SIGINT or SIGTERM, close.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from kiosk.runtime.banner import hide_version
from kiosk.runtime.config import Settings
from kiosk.runtime.logs import get_logger
from kiosk.signalling.api.base import API_PREFIX, Operation
from kiosk.signalling.app import build_app
from kiosk.signalling.context import CONTEXT, ServerContext, utc_now

log = get_logger(__name__)


@dataclass
class Server:
    app: web.Application
    runner: web.AppRunner
    site: web.TCPSite
    base_url: str  # e.g. https://127.0.0.1:8443

    @property
    def context(self) -> ServerContext:
        return self.app[CONTEXT]

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def port(self) -> int:
        return self.site.port  # the bound port when 0 was asked for

    async def close(self) -> None:
        # Runs the application's clean-up: audit checkpoint, then the engine.
        await self.runner.cleanup()
        log.info("web listener stopped")


SHUTDOWN_S = 3.0


async def start(
    settings: Settings,
    *,
    operations: Iterable[Operation] = (),
    configure: Callable[[web.Application], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Server:
    """Open everything and listen on ``server.web_host:web_port`` (0: any free port)."""
    hide_version()  # issue 12: no version banner, here or on the device listener
    app = build_app(settings, operations=operations, clock=clock)
    if configure is not None:
        configure(app)
    ssl_context = None
    cfg = settings.server
    if cfg.web_cert is not None or cfg.web_key is not None:
        if cfg.web_cert is None or cfg.web_key is None:
            raise ValueError("server.web_cert and server.web_key go together")
        from kiosk.crypto.tls import web_server_context

        ssl_context = web_server_context(cfg.web_cert, cfg.web_key)
    # Visitors' sockets close at shutdown (visitors/endpoint.py); a request still running
    # after SHUTDOWN_S is cut rather than holding a graceful stop past its 10 s (issue 14).
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, cfg.web_host, cfg.web_port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    scheme = "https" if ssl_context is not None else "http"
    server = Server(app=app, runner=runner, site=site, base_url="")
    host = cfg.web_host if ":" not in cfg.web_host else f"[{cfg.web_host}]"
    server.base_url = f"{scheme}://{host}:{server.port}"
    log.info("web listener started", url=server.base_url, tls=ssl_context is not None)
    return server


async def wait_for_stop_signal() -> None:
    """Until SIGINT or SIGTERM arrives."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(settings: Settings, *, operations: Iterable[Operation] = ()) -> None:
    server = await start(settings, operations=operations)
    try:
        await wait_for_stop_signal()
        log.info("stopping on signal")
    finally:
        await server.close()
