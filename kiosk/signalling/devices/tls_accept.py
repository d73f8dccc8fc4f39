"""An aiohttp site that does its own TLS accept: refusals seen, small buffers.

Refusals. With ``create_server(ssl=...)`` asyncio drops a failed handshake
silently: the operator would never learn that a revoked or foreign tablet
keeps knocking. Here each connection's handshake reports to the site, which
logs a failure as "device refused at handshake" with OpenSSL's reason and
counts it. The handshake is bounded in time: a connection that never
finishes it is not yet any device.

Memory. asyncio's TLS protocol (``asyncio.sslproto.SSLProtocol`` in Python
3.11) allocates a 256 KiB read buffer for every connection when it is made
and keeps it for the connection's life, and reads decrypted data in 256 KiB
calls: 2.5 GiB for 10,000 idle tablets. ``LeanTls`` is that same protocol
with a smaller ``max_size``, the one knob asyncio has for it (a class
attribute): the socket is read into ``READ_SIZE`` bytes at a time and
decrypted data taken out in pieces of that size. A tablet's frames are tens
of bytes (heartbeats) to 64 KiB (an SDP), and a TLS record carries at most
16 KiB, so nothing is lost but a few more calls for the rare large message;
everything else (the handshake, flow control, shutdown) is asyncio's own.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections import Counter
from typing import Any

from aiohttp import web

from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

READ_SIZE = 4096  # bytes read from the socket, and decrypted bytes taken, per call


def refusal_reason(exc: BaseException) -> str:
    """A short, stable reason: OpenSSL's verify message or error name."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower()
    if isinstance(exc, TimeoutError | ConnectionAbortedError):
        return "handshake timeout"
    return type(exc).__name__


class LeanTls(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol with a ``READ_SIZE`` read buffer (module docstring)."""

    max_size = READ_SIZE
    raw: asyncio.BaseTransport | None = None  # the TCP transport under the TLS
    peer: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        self.peer = transport.get_extra_info("peername")
        super().connection_made(transport)


class TlsSite(web.TCPSite):
    """``web.TCPSite`` with the TLS accept done here (see the module docstring)."""

    __slots__ = ("_handshake_timeout", "_handshaking", "refusals")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        handshake_timeout: float,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self._handshake_timeout = handshake_timeout
        self._handshaking: set[LeanTls] = set()
        self.refusals: Counter[str] = Counter()  # reason -> count, for metrics and tests

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._accept(loop), self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        for tls in list(self._handshaking):  # handshakes under way: not yet any device
            if isinstance(tls.raw, asyncio.Transport):
                tls.raw.abort()
        await super().stop()

    def _accept(self, loop: asyncio.AbstractEventLoop) -> LeanTls:
        """A new connection's protocol: TLS first, aiohttp's HTTP once the handshake is done."""
        server = self._runner.server
        assert server is not None and self._ssl_context is not None  # set before start()
        waiter: asyncio.Future[None] = loop.create_future()
        tls = LeanTls(
            loop,
            server(),
            self._ssl_context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=self._handshake_timeout,  # type: ignore[arg-type]  # a float
        )
        self._handshaking.add(tls)
        waiter.add_done_callback(lambda done: self._handshake_done(tls, done))
        return tls

    def _handshake_done(self, tls: LeanTls, done: asyncio.Future[Any]) -> None:
        self._handshaking.discard(tls)
        exc = None if done.cancelled() else done.exception()
        if exc is None:
            return
        reason = refusal_reason(exc)
        self.refusals[reason] += 1
        log.warning(
            "device refused at handshake",
            peer=tls.peer[0] if isinstance(tls.peer, tuple) else str(tls.peer),
            reason=reason,
        )
