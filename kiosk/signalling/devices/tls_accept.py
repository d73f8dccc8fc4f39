"""An aiohttp site that does its own TLS accept, so that refusals are seen.

With ``create_server(ssl=...)`` asyncio drops a failed handshake silently
(and without sending the alert): the operator would never learn that a
revoked or foreign tablet keeps knocking. Here each connection starts as
plain TCP, is upgraded with ``loop.start_tls`` and only then handed to
aiohttp; a failed handshake is logged as "device refused at handshake" with
OpenSSL's reason and counted. The handshake is also bounded in time: a
connection that never finishes it is not yet any device.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kiosk.runtime.logs import get_logger

log = get_logger(__name__)


def refusal_reason(exc: BaseException) -> str:
    """A short, stable reason: OpenSSL's verify message or error name."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower()
    if isinstance(exc, TimeoutError | ConnectionAbortedError):
        return "handshake timeout"
    return type(exc).__name__


class _Acceptor(asyncio.Protocol):
    def __init__(self, site: TlsSite) -> None:
        self.site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing is read until TLS owns the socket
        task = asyncio.get_running_loop().create_task(self.site._upgrade(transport))
        self.site._pending.add(task)
        task.add_done_callback(self.site._pending.discard)

    def data_received(self, data: bytes) -> None:  # reading is paused: never called
        return None


class _HoldUntilMade(asyncio.Protocol):
    """Stands in for aiohttp's protocol during the handshake.

    The TLS layer may deliver the first request (sent right behind the
    client's Finished) before ``start_tls`` returns and aiohttp's protocol is
    told about its transport; this holds such data until then.
    """

    def __init__(self, app: asyncio.Protocol) -> None:
        self.app = app
        self.made = False
        self.held: list[bytes] = []
        self.eof = False
        self.lost: list[Exception | None] = []

    def made_with(self, transport: asyncio.BaseTransport) -> None:
        self.made = True
        self.app.connection_made(transport)
        held, self.held = self.held, []
        for data in held:
            self.app.data_received(data)
        if self.eof:
            self.app.eof_received()
        if self.lost:
            self.app.connection_lost(self.lost[0])

    def data_received(self, data: bytes) -> None:
        if self.made:
            self.app.data_received(data)
        else:
            self.held.append(data)

    def eof_received(self) -> bool | None:
        if self.made:
            return self.app.eof_received()
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.made:
            self.app.connection_lost(exc)
        else:
            self.lost.append(exc)

    def pause_writing(self) -> None:
        if self.made:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.made:
            self.app.resume_writing()


class TlsSite(web.TCPSite):
    """``web.TCPSite`` with the TLS accept done here (see the module docstring)."""

    __slots__ = ("_handshake_timeout", "_pending", "refusals")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        handshake_timeout: float,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._handshake_timeout = handshake_timeout
        self._pending: set[asyncio.Task[None]] = set()
        self.refusals: Counter[str] = Counter()  # reason -> count, for metrics and tests

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        factory: Callable[[], Any] = lambda: _Acceptor(self)  # noqa: E731
        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await super().stop()

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        server = self._runner.server
        if server is None or self._ssl_context is None:
            transport.abort()
            return
        proxy = _HoldUntilMade(server())
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                transport,
                proxy,
                self._ssl_context,
                server_side=True,
                ssl_handshake_timeout=self._handshake_timeout,
            )
        except (OSError, TimeoutError, EOFError) as exc:  # ssl.SSLError is an OSError
            reason = refusal_reason(exc)
            self.refusals[reason] += 1
            log.warning(
                "device refused at handshake",
                peer=peer[0] if isinstance(peer, tuple) else str(peer),
                reason=reason,
            )
            transport.abort()
            return
        if tls is None:  # the peer went away as the handshake ended
            transport.abort()
            return
        proxy.made_with(tls)
