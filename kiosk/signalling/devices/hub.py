"""The connected tablets: identify each by its certificate, run its link, send to it, cut it.

The rules of the link are in ``kiosk.signalling.devices.listener``'s docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.crypto import authority
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling.devices import registry as device_registry
from kiosk.signalling.devices.link import (
    CloseCode,
    DeviceHandler,
    Link,
    LinkTimers,
    NullHandler,
    TokenBucket,
)
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
        self._links: dict[str, Link] = {}
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

    async def _send(self, link: Link, message: BaseModel) -> bool:
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

    async def _close(self, link: Link, code: CloseCode, reason: Reason | None) -> None:
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

    async def _error(self, link: Link, code: Reason, detail: str = "") -> None:
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
        link = Link(device.id, ws, serial, cert.not_valid_after_utc)
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

    async def _await_hello(self, link: Link) -> HelloMessage | None:
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

    async def _run(self, link: Link) -> None:
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
