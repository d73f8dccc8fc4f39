"""An aiohttp site that does its own TLS accept: refusals seen, small buffers.

Refusals. With ``create_server(ssl=...)`` asyncio drops a failed handshake
silently: the operator would never learn that a revoked or foreign tablet
keeps knocking. Here each connection's handshake reports to the site, which
logs a failure as "device refused at handshake" with OpenSSL's reason and
counts it. The handshake is bounded in time: a connection that never
finishes it is not yet any device.

Memory. asyncio's TLS protocol (``asyncio.sslproto.SSLProtocol`` in Python
3.11) allocates a 256 KiB read buffer for every connection when it is made
and keeps it for the connection's life: 2.5 GiB for 10,000 idle tablets.
``LeanTls`` is that same protocol reading into one buffer that all the
site's connections share. That is safe because the buffer never holds data
between calls: the event loop's socket transport asks for it
(``get_buffer``), receives into it and hands it back (``buffer_updated``),
which copies the bytes into the connection's own ``ssl.MemoryBIO`` at once,
all in one callback on the loop's one thread. ``max_size`` (asyncio's one
knob for this, a class attribute) also bounds the decrypted data taken out
per call: 16 KiB, the most one TLS record carries. Everything else (the
handshake, flow control, shutdown) is asyncio's own.
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

READ_SIZE = 16 * 1024  # bytes read from the socket, and decrypted bytes taken, per call


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
    """asyncio's server-side TLS protocol on a shared read buffer (module docstring)."""

    max_size = READ_SIZE
    raw: asyncio.BaseTransport | None = None  # the TCP transport under the TLS
    peer: Any = None

    def __init__(self, shared: memoryview, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ssl_buffer_view = shared  # in place of the buffer of its own just made
        self._ssl_buffer = shared.obj

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        self.peer = transport.get_extra_info("peername")
        super().connection_made(transport)


class TlsSite(web.TCPSite):
    """``web.TCPSite`` with the TLS accept done here (see the module docstring)."""

    __slots__ = ("_handshake_timeout", "_handshaking", "_read_buffer", "refusals")

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
        self._read_buffer = memoryview(bytearray(READ_SIZE))  # shared by every connection
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
            self._read_buffer,
            loop,
            server(),
            self._ssl_context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=self._handshake_timeout,
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
