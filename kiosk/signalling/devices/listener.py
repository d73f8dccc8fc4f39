"""The device listener: the tablets' WSS endpoint ``/device/v1`` on its own TLS socket.

ARCHITECTURE.md, Trust: tablets speak only WSS with mutual TLS, and a device
is its certificate and nothing else. The TLS layer (``kiosk.crypto.tls``)
refuses any certificate that does not chain to the deployment CA, has
expired or is on the CRL; ``tls_accept.TlsSite`` logs each such refusal
("device refused at handshake") and counts it by reason. Here the
certificate's serial finds the device's row; an unknown or revoked device
gets HTTP 403 before any WebSocket exists.

On the link: the first message must be ``hello``; every frame is parsed
strictly (``kiosk.wire.messages``); a bad one gets ``error{invalid_request}`` and
too many bad ones, an oversized frame, or a flood close the link. Heartbeats:
the tablet sends ``ping`` every ``heartbeat_interval`` and the listener
answers ``pong`` with its clock; a link silent for ``silent_intervals``
intervals is closed. Everything else goes to the injected ``DeviceHandler``
(the calls' runner).

Revocation cuts live links at once: ``DeviceHub.revoke_device`` (after the
caller revoked the device, see ``device_registry.revoke_device``) and, for a
revocation made by another process (``kiosk admin device revoke``), the
listener's watch of ``crl.pem``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.crypto import authority, pki, revocation
from kiosk.crypto.tls import DeviceTlsContexts
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling.devices import registry as device_registry
from kiosk.signalling.devices.tls_accept import TlsSite
from kiosk.wire.messages import (
    MAX_MESSAGE_BYTES,
    ErrorMessage,
    HelloMessage,
    PingMessage,
    PongMessage,
    ProtocolError,
    encode,
    parse_device_message,
)

log = get_logger(__name__)

PATH = "/device/v1"
MAINTAIN_EVERY = 3600.0  # seconds between checks of the CRL's and certificate's lifetimes


class CloseCode(IntEnum):
    """WebSocket close codes the listener uses (4000-4999: application codes)."""

    GOING_AWAY = 1001  # server shutting down
    MESSAGE_TOO_BIG = 1009  # sent by aiohttp itself for a frame over MAX_MESSAGE_BYTES
    REPLACED = 4000  # the same device connected again
    BAD_MESSAGES = 4400
    DEVICE_REVOKED = 4403
    HEARTBEAT_TIMEOUT = 4408
    RATE_LIMITED = 4429
    CERTIFICATE_EXPIRED = 4498
    SLOW_READER = 4499


@dataclass(frozen=True, slots=True)
class LinkTimers:
    """The link's timers and limits.

    The real values: the tablet pings every 10 s, so a dead link (a tablet
    powered off, a cable pulled with no FIN) is noticed within 30 s, while
    three lost pings on a poor network do not cut a call's signalling. The
    rate allows a burst of ICE candidates at call set-up (tens of messages)
    and a sustained 20 per second, far above any honest use. Tests shorten
    the timers to keep runs fast; nothing else should.
    """

    handshake_timeout: float = 10.0  # TLS; asyncio's default would hold an idle socket 60 s
    heartbeat_interval: float = 10.0
    silent_intervals: int = 3
    hello_timeout: float = 10.0
    rate: float = 20.0
    burst: float = 60.0
    max_bad_messages: int = 5
    send_timeout: float = 10.0
    close_timeout: float = 2.0
    touch_every: float = 60.0  # last_seen_at is written at most this often per device

    @property
    def silence_limit(self) -> float:
        return self.heartbeat_interval * self.silent_intervals


class TokenBucket:
    """Per-device rate limit: ``rate`` tokens a second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.stamp)  # a clock that steps back refills nothing
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class DeviceHandler(Protocol):
    """What the listener tells the rest of the server (the calls' runner)."""

    async def on_connect(self, device_id: str) -> None: ...

    async def on_message(self, device_id: str, message: BaseModel) -> None: ...

    async def on_disconnect(self, device_id: str) -> None: ...


class NullHandler:
    """A handler that ignores everything: the listener alone (tests, tools)."""

    async def on_connect(self, device_id: str) -> None:
        return None

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        return None

    async def on_disconnect(self, device_id: str) -> None:
        return None


class _Link:
    __slots__ = ("certificate_serial", "cut", "device_id", "lock", "not_after", "ws")

    def __init__(
        self,
        device_id: str,
        ws: web.WebSocketResponse,
        certificate_serial: str,
        not_after: datetime,
    ) -> None:
        self.device_id = device_id
        self.ws = ws
        self.certificate_serial = certificate_serial
        self.not_after = not_after
        self.lock = asyncio.Lock()
        self.cut = False  # being closed by the server: no more messages either way


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeviceHub:
    """The connected tablets, by device id: send to one, revoke one, hear from all."""

    def __init__(
        self,
        engine: AsyncEngine,
        handler: DeviceHandler | None = None,
        timers: LinkTimers | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.engine = engine
        self.handler: DeviceHandler = handler or NullHandler()
        self.timers = timers or LinkTimers()
        self.monotonic = monotonic
        self.now = now
        self._links: dict[str, _Link] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._touched: dict[str, float] = {}

    # --- for the rest of the server -------------------------------------------------

    def connected(self, device_id: str) -> bool:
        link = self._links.get(device_id)
        return link is not None and not link.cut

    def device_ids(self) -> list[str]:
        return [d for d, link in self._links.items() if not link.cut]

    async def send(self, device_id: str, message: BaseModel) -> bool:
        """Send one message; False if the device is not connected (or the link broke)."""
        link = self._links.get(device_id)
        if link is None or link.cut:
            return False
        return await self._send(link, message)

    async def revoke_device(self, device_id: str) -> bool:
        """Cut the device's live link at once. True if it was connected."""
        link = self._links.get(device_id)
        if link is None or link.cut:
            return False
        link.cut = True
        log.warning("device link cut: revoked", device_id=device_id)
        await self._close(link, CloseCode.DEVICE_REVOKED, Reason.DEVICE_REVOKED)
        return True

    async def enforce_revocations(self, revoked_serials: set[str]) -> list[str]:
        """Cut every live link whose certificate is now revoked (CRL changed elsewhere)."""
        cut = [
            d
            for d, link in self._links.items()
            if link.certificate_serial in revoked_serials and not link.cut
        ]
        for device_id in cut:
            await self.revoke_device(device_id)
        return cut

    async def close_all(self) -> None:
        links = list(self._links.values())
        for link in links:
            link.cut = True
        await asyncio.gather(
            *(self._close(link, CloseCode.GOING_AWAY, None) for link in links),
            return_exceptions=True,
        )

    # --- the link ---------------------------------------------------------------------

    async def _send(self, link: _Link, message: BaseModel) -> bool:
        if link.ws.closed:
            return False
        try:
            async with link.lock:
                await asyncio.wait_for(link.ws.send_str(encode(message)), self.timers.send_timeout)
        except TimeoutError:
            # A tablet that does not read must not hold up the server.
            log.warning("device link cut: not reading", device_id=link.device_id)
            link.cut = True
            await self._close(link, CloseCode.SLOW_READER, None)
            return False
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def _close(self, link: _Link, code: CloseCode, reason: Reason | None) -> None:
        if reason is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    link.ws.send_str(encode(ErrorMessage.of(reason))), self.timers.close_timeout
                )
        message = (reason.value if reason else code.name.lower()).encode()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                link.ws.close(code=code, message=message), self.timers.close_timeout
            )

    async def _error(self, link: _Link, code: Reason, detail: str = "") -> None:
        await self._send(link, ErrorMessage.of(code, detail[:200] if detail else ""))

    async def _touch(self, device_id: str, force: bool = False) -> None:
        mono = self.monotonic()
        last = self._touched.get(device_id)
        if not force and last is not None and mono - last < self.timers.touch_every:
            return
        self._touched[device_id] = mono
        try:
            await device_registry.touch(self.engine, device_id, self.now())
        except Exception:
            log.exception("device last-seen update failed", device_id=device_id)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The ``/device/v1`` handler: identify by certificate, then run the link."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:  # cannot happen with CERT_REQUIRED; deny by default all the same
            return _refuse(Reason.NOT_AUTHENTICATED)
        cert = x509.load_der_x509_certificate(der)
        serial = authority.certificate_serial_text(cert)
        try:
            device = await device_registry.device_for_certificate(self.engine, serial)
            revoked = await device_registry.certificate_revoked(self.engine, serial)
        except Exception:
            # The database is away: refuse (deny by default), the tablet retries.
            log.exception("device lookup failed", certificate_serial=serial)
            return _refuse(Reason.INTERNAL_ERROR, status=503)
        if device is None:
            log.warning("device refused: unknown certificate", certificate_serial=serial)
            return _refuse(Reason.NOT_AUTHENTICATED)
        if device.revoked or revoked:
            log.warning("device refused: revoked", device_id=device.id)
            return _refuse(Reason.DEVICE_REVOKED)
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or cns[0].value != device.serial:
            log.warning("device refused: certificate names another serial", device_id=device.id)
            return _refuse(Reason.NOT_AUTHENTICATED)

        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE_BYTES,
            compress=False,  # no decompression bombs; messages are small JSON
            autoping=True,
            heartbeat=None,  # the application's own ping/pong is the heartbeat
            timeout=self.timers.close_timeout,
        )
        await ws.prepare(request)
        link = _Link(device.id, ws, serial, cert.not_valid_after_utc)
        try:
            hello = await self._await_hello(link)
            if hello is None:
                return ws
            previous = self._links.get(device.id)
            self._links[device.id] = link
            if previous is not None:
                previous.cut = True
                log.info("device link replaced by a new connection", device_id=device.id)
                await self._close(previous, CloseCode.REPLACED, None)
            log.info("device connected", device_id=device.id, agent_version=hello.agent_version)
            await self._touch(device.id, force=True)
            await self._dispatch_connect(device.id, hello)
            await self._run(link)
        finally:
            if self._links.get(device.id) is link:
                del self._links[device.id]
                log.info("device disconnected", device_id=device.id, close_code=ws.close_code)
                await self._touch(device.id, force=True)
                with contextlib.suppress(Exception):
                    await self.handler.on_disconnect(device.id)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    async def _await_hello(self, link: _Link) -> HelloMessage | None:
        try:
            msg = await link.ws.receive(timeout=self.timers.hello_timeout)
        except TimeoutError:
            await self._close(link, CloseCode.HEARTBEAT_TIMEOUT, None)
            return None
        if msg.type != WSMsgType.TEXT:
            await self._close(link, CloseCode.BAD_MESSAGES, Reason.INVALID_REQUEST)
            return None
        try:
            message = parse_device_message(msg.data)
        except ProtocolError as exc:
            await self._error(link, Reason.INVALID_REQUEST, exc.detail)
            await self._close(link, CloseCode.BAD_MESSAGES, None)
            return None
        if not isinstance(message, HelloMessage):
            await self._error(link, Reason.INVALID_REQUEST, "the first message must be hello")
            await self._close(link, CloseCode.BAD_MESSAGES, None)
            return None
        return message

    async def _dispatch_connect(self, device_id: str, hello: HelloMessage) -> None:
        try:
            await self.handler.on_connect(device_id)
            await self.handler.on_message(device_id, hello)
        except Exception:
            log.exception("device connect handler failed", device_id=device_id)

    async def _run(self, link: _Link) -> None:
        bucket = self._buckets.get(link.device_id)
        if bucket is None:  # kept across reconnections: reconnecting does not refill it
            bucket = TokenBucket(self.timers.rate, self.timers.burst, self.monotonic())
            self._buckets[link.device_id] = bucket
        bad = 0
        ws = link.ws
        while True:
            try:
                msg = await ws.receive(timeout=self.timers.silence_limit)
            except TimeoutError:
                log.info("device link silent; closing", device_id=link.device_id)
                await self._close(link, CloseCode.HEARTBEAT_TIMEOUT, None)
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:
                # aiohttp already closed the link (e.g. 1009 for a frame over the limit).
                log.info("device link error", device_id=link.device_id, error=str(ws.exception()))
                return
            if link.cut or self._links.get(link.device_id) is not link:
                return  # replaced or revoked while this frame was in flight
            if not bucket.take(self.monotonic()):
                log.warning("device rate limited; closing", device_id=link.device_id)
                await self._close(link, CloseCode.RATE_LIMITED, Reason.RATE_LIMITED)
                return
            try:
                if msg.type != WSMsgType.TEXT:
                    raise ProtocolError("messages are JSON text")
                message = parse_device_message(msg.data)
                if isinstance(message, HelloMessage):
                    raise ProtocolError("hello is only the first message")
            except ProtocolError as exc:
                bad += 1
                await self._error(link, Reason.INVALID_REQUEST, exc.detail)
                if bad >= self.timers.max_bad_messages:
                    log.warning(
                        "device sent too many bad messages; closing", device_id=link.device_id
                    )
                    await self._close(link, CloseCode.BAD_MESSAGES, None)
                    return
                continue
            if isinstance(message, PingMessage):
                if self.now() >= link.not_after:
                    await self._close(link, CloseCode.CERTIFICATE_EXPIRED, Reason.NOT_AUTHENTICATED)
                    return
                await self._send(link, PongMessage(seq=message.seq, server_time=self.now()))
                await self._touch(link.device_id)
                continue
            try:
                await self.handler.on_message(link.device_id, message)
            except Exception:
                log.exception(
                    "device message handler failed",
                    device_id=link.device_id,
                    message_type=message.type,
                )
                await self._error(link, Reason.INTERNAL_ERROR)


def _refuse(reason: Reason, status: int = 403) -> web.Response:
    body = encode(ErrorMessage.of(reason))
    return web.Response(status=status, text=body, content_type="application/json")


class DeviceListener:
    """The device listener's own socket: mutual TLS, ``/device/v1``, the CRL watch."""

    def __init__(
        self,
        hub: DeviceHub,
        pki_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8444,
    ) -> None:
        self.hub = hub
        self.pki_dir = pki_dir
        self.host = host
        self.port = port
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
        )
        await site.start()
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
        self.tls.current()
        return await self.hub.enforce_revocations(revocation.revoked_serials(self.pki_dir))

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
        log.info("device listener stopped")
