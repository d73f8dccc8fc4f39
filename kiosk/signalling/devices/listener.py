"""The device listener: the tablets' WSS endpoint ``/device/v1`` on its own TLS socket.

ARCHITECTURE.md, Trust: tablets speak only WSS with mutual TLS, and a device
is its certificate and nothing else. The TLS layer (``kiosk.crypto.tls``)
refuses any certificate that does not chain to the deployment CA, has
expired or is on the CRL; ``tls_accept.TlsSite`` logs each such refusal
("device refused at handshake") and counts it by reason. ``hub.DeviceHub``
runs the links (``link.py`` their limits and timers, ``wheel.py`` the one
timer for all of them, ``last_seen.py`` the batched last-seen writes).

Revocation cuts live links at once: ``DeviceHub.revoke_device`` (after the
caller revoked the device, see ``registry.revoke_device``) and, for a
revocation made by another process (``kiosk admin device revoke``), the
listener's watch of ``crl.pem``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from aiohttp import web

from kiosk.crypto import pki, revocation
from kiosk.crypto.tls import DeviceTlsContexts
from kiosk.runtime.logs import get_logger
from kiosk.signalling.devices.handler import DeviceHandler, NullHandler
from kiosk.signalling.devices.hub import DeviceHub
from kiosk.signalling.devices.link import CloseCode, LinkTimers
from kiosk.signalling.devices.tls_accept import TlsSite
from kiosk.wire.messages import MAX_MESSAGE_BYTES

__all__ = [
    "PATH",
    "CloseCode",
    "DeviceHandler",
    "DeviceHub",
    "DeviceListener",
    "LinkTimers",
    "NullHandler",
]

log = get_logger(__name__)

PATH = "/device/v1"
MAINTAIN_EVERY = 3600.0  # seconds between checks of the CRL's and certificate's lifetimes
DEFAULT_BACKLOG = 4096  # connections the kernel queues while the server is busy accepting


class DeviceListener:
    """The device listener's own socket: mutual TLS, ``/device/v1``, the CRL watch."""

    def __init__(
        self,
        hub: DeviceHub,
        pki_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8444,
        *,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.hub = hub
        self.pki_dir = pki_dir
        self.host = host
        self.port = port
        self.backlog = backlog
        self.tls = DeviceTlsContexts(pki_dir)
        self._runner: web.AppRunner | None = None
        self.site: TlsSite | None = None  # .refusals counts handshake refusals by reason
        self._watch: asyncio.Task[None] | None = None
        self._crl_stamp = self.tls.crl_stamp()
        self.maintain()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_get(PATH, self.hub.serve)
        return app

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        self.site = site = TlsSite(
            self._runner,
            self.host,
            self.port,
            ssl_context=self.tls.server_context(),
            handshake_timeout=self.hub.timers.handshake_timeout,
            backlog=self.backlog,
        )
        await site.start()
        self.hub.start()
        self.port = site.port  # the bound port when 0 was asked for
        self._watch = asyncio.create_task(self._watch_crl(), name="device listener CRL watch")
        log.info("device listener started", host=self.host, port=self.port)
        return self.port

    async def check_crl(self) -> list[str]:
        """Reload the CRL if it changed and cut links of newly revoked certificates."""
        stamp = self.tls.crl_stamp()
        if stamp == self._crl_stamp:
            return []
        self._crl_stamp = stamp
        # Reading and parsing the new CRL and TLS context: off the loop (issue 12).
        await asyncio.to_thread(self.tls.current)
        serials = await asyncio.to_thread(revocation.revoked_serials, self.pki_dir)
        return await self.hub.enforce_revocations(serials)

    def maintain(self) -> None:
        """Keep the CRL and the listener's certificate from running out while up.

        An expired CRL would fail every handshake; an expired certificate too.
        Both are re-signed well before (revocation.CRL_RENEW_BEFORE, LISTENER_RENEW_BEFORE)
        and the next handshake uses them.
        """
        revocation.ensure_crl(self.tls.ca)
        if pki.renew_listener_if_due(self.tls.ca):
            log.info("device listener certificate renewed")

    async def _watch_crl(self) -> None:
        interval = min(5.0, self.hub.timers.heartbeat_interval)
        loop = asyncio.get_running_loop()
        maintained = loop.time()
        while True:
            await asyncio.sleep(interval)
            try:
                if loop.time() - maintained >= MAINTAIN_EVERY:
                    maintained = loop.time()
                    await asyncio.to_thread(self.maintain)
                await self.check_crl()
            except Exception:
                log.exception("device listener CRL check failed")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.hub.stop()  # after the links: their last sightings are in the last batch
        log.info("device listener stopped")
