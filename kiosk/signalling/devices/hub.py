"""The connected tablets, by device id: identify, greet, hear, answer, watch, cut.

A device is its certificate (ARCHITECTURE.md, Trust): the TLS layer has
already refused any certificate that does not chain to the deployment CA,
has expired or is on the CRL; here the certificate's serial finds the
device's row in one query, and an unknown or revoked device gets HTTP 403
before any WebSocket exists.

On the link: the first message must be ``hello``; every frame is parsed
strictly (``kiosk.wire.messages``); a bad one gets ``error{invalid_request}``
and too many bad ones, an oversized frame, or a flood close the link.
Heartbeats: the tablet sends ``ping`` every ``heartbeat_interval`` and the
hub answers ``pong`` with its clock. Everything else goes to the injected
``DeviceHandler`` (the calls' runner).

Time: one timer wheel (``wheel.py``) watches every link, instead of a
receive timeout and a send timeout per link: a link not greeted within
``hello_timeout``, silent for ``silent_intervals`` heartbeats, or not
reading what is sent to it for ``send_timeout`` is closed. Last-seen times
are written in batches (``last_seen.py``), never on a link's own path.
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
from kiosk.domain.model import Device
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling.devices import registry as device_registry
from kiosk.signalling.devices.handler import DeviceHandler, NullHandler
from kiosk.signalling.devices.last_seen import LastSeen
from kiosk.signalling.devices.link import CloseCode, Link, LinkTimers, TokenBucket
from kiosk.signalling.devices.wheel import TimerWheel
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

_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _refuse(reason: Reason, status: int = 403) -> web.Response:
    body = encode(ErrorMessage.of(reason))
    return web.Response(status=status, text=body, content_type="application/json")


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
        self.last_seen = LastSeen(
            engine, lambda: self.timers.touch_every, monotonic=monotonic, now=now
        )
        self._links: dict[str, Link] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._wheel: TimerWheel[Link] = TimerWheel(self.timers.wheel_tick, monotonic())
        self._ticker: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the wheel and the last-seen writer (the listener does, when it listens)."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="device link wheel")
        self.last_seen.start()

    async def stop(self) -> None:
        """Stop both; the last sightings are written."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.last_seen.stop()

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
        return await self._send(link, encode(message))

    async def send_text(self, device_id: str, text: str) -> bool:
        """Send a message already encoded (it came over a cluster's bus)."""
        link = self._links.get(device_id)
        if link is None or link.cut:
            return False
        return await self._send(link, text)

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
            *list(self._closing),
            return_exceptions=True,
        )

    # --- the wheel --------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._wheel.tick)
            now = self.monotonic()
            for link in self._wheel.due(now):
                self._check(link, now)

    def _check(self, link: Link, now: float) -> None:
        if link.cut or link.ws.closed:
            return  # being closed or gone: out of the wheel
        overdue = link.overdue(self.timers, now)
        if overdue is None:
            self._wheel.add(link, link.due(self.timers))
            return
        link.cut = True
        log.info("device link closed by the server", device_id=link.device_id, why=overdue.value)
        task = asyncio.create_task(self._close(link, overdue.close_code, None))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- the link ---------------------------------------------------------------------

    async def _send(self, link: Link, text: str) -> bool:
        ws = link.ws
        if ws.closed:
            return False
        if link.sending == 0:
            link.sending_since = self.monotonic()
            self._wheel.add(link, link.sending_since + self.timers.send_timeout)
        link.sending += 1
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not this task: blocked sends share aiohttp's drain waiter, and a close
            # that gave up on the link cancelled it. The link is gone.
            return False
        finally:
            link.sending -= 1
            if link.sending == 0:
                link.sending_since = None
        return True

    async def _close(self, link: Link, code: CloseCode, reason: Reason | None) -> None:
        if link.sending:
            # A send to it is stuck (seen from here, a send under way is one that waits):
            # it does not read, and a close frame would wait behind it.
            link.transport_abort()
            return
        timeout = self.timers.close_timeout
        try:
            if reason is not None:
                async with asyncio.timeout(timeout):
                    await link.ws.send_str(encode(ErrorMessage.of(reason)))
            message = (reason.value if reason else code.name.lower()).encode()
            async with asyncio.timeout(timeout * 2):
                await link.ws.close(code=code, message=message)
        except Exception:
            # A tablet that neither reads nor answers the close: drop the connection.
            link.transport_abort()

    async def _error(self, link: Link, code: Reason, detail: str = "") -> None:
        await self._send(link, encode(ErrorMessage.of(code, detail[:200] if detail else "")))

    async def _identify(self, request: web.Request) -> tuple[Device, str, datetime] | web.Response:
        """The device, its certificate's serial and end, or the refusal to send."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:  # cannot happen with CERT_REQUIRED; deny by default all the same
            return _refuse(Reason.NOT_AUTHENTICATED)
        cert = x509.load_der_x509_certificate(der)
        serial = authority.certificate_serial_text(cert)
        try:
            device, revoked = await device_registry.identify(self.engine, serial)
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
        return device, serial, cert.not_valid_after_utc

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The ``/device/v1`` handler: identify by certificate, then run the link."""
        # In a function of its own: the certificate is not held for the link's life.
        who = await self._identify(request)
        if isinstance(who, web.Response):
            return who
        device, serial, not_after = who
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE_BYTES,
            compress=False,  # no decompression bombs; messages are small JSON
            autoping=True,
            heartbeat=None,  # the application's own ping/pong is the heartbeat
            timeout=self.timers.close_timeout,
        )
        await ws.prepare(request)
        link = Link(device.id, ws, serial, not_after, self.monotonic(), request.transport)
        self._wheel.add(link, link.due(self.timers))
        try:
            if await self._greet(link):
                await self._run(link)
        finally:
            if self._links.get(device.id) is link:
                del self._links[device.id]
                log.info("device disconnected", device_id=device.id, close_code=ws.close_code)
                self.last_seen.note(device.id, link.heard)
                with contextlib.suppress(Exception):
                    await self.handler.on_disconnect(device.id)
            link.cut = True
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    async def _await_hello(self, link: Link) -> HelloMessage | None:
        msg = await link.ws.receive()  # the wheel closes a link that says nothing
        link.heard = self.monotonic()
        if msg.type in _ENDED or link.cut:
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

    async def _greet(self, link: Link) -> bool:
        """Wait for hello, then the link is the device's (replacing any other) and is told."""
        hello = await self._await_hello(link)
        if hello is None:
            return False
        device_id = link.device_id
        link.greeted = True
        previous = self._links.get(device_id)
        self._links[device_id] = link
        if previous is not None:
            previous.cut = True
            log.info("device link replaced by a new connection", device_id=device_id)
            await self._close(previous, CloseCode.REPLACED, None)
        log.info("device connected", device_id=device_id, agent_version=hello.agent_version)
        self.last_seen.note(device_id, link.heard)
        try:
            await self.handler.on_connect(device_id)
            await self.handler.on_message(device_id, hello)
        except Exception:
            log.exception("device connect handler failed", device_id=device_id)
        return True

    async def _run(self, link: Link) -> None:
        bucket = self._buckets.get(link.device_id)
        if bucket is None:  # kept across reconnections: reconnecting does not refill it
            bucket = TokenBucket(self.timers.rate, self.timers.burst, self.monotonic())
            self._buckets[link.device_id] = bucket
        ws = link.ws
        while True:
            msg = await ws.receive()  # no timeout here: the wheel watches for silence
            link.heard = heard = self.monotonic()
            if msg.type in _ENDED:
                if msg.type == WSMsgType.ERROR:
                    # aiohttp already closed the link (e.g. 1009 for a frame over the limit).
                    log.info("device link error", device_id=link.device_id, error=str(msg.data))
                return
            if link.cut or self._links.get(link.device_id) is not link:
                return  # replaced or revoked while this frame was in flight
            if not bucket.take(heard):
                log.warning("device rate limited; closing", device_id=link.device_id)
                link.cut = True
                await self._close(link, CloseCode.RATE_LIMITED, Reason.RATE_LIMITED)
                return
            try:
                if msg.type != WSMsgType.TEXT:
                    raise ProtocolError("messages are JSON text")
                message = parse_device_message(msg.data)
                if isinstance(message, HelloMessage):
                    raise ProtocolError("hello is only the first message")
            except ProtocolError as exc:
                link.bad += 1
                await self._error(link, Reason.INVALID_REQUEST, exc.detail)
                if link.bad >= self.timers.max_bad_messages:
                    log.warning(
                        "device sent too many bad messages; closing", device_id=link.device_id
                    )
                    link.cut = True
                    await self._close(link, CloseCode.BAD_MESSAGES, None)
                    return
                continue
            if isinstance(message, PingMessage):
                now = self.now()
                if now >= link.not_after:
                    link.cut = True
                    await self._close(link, CloseCode.CERTIFICATE_EXPIRED, Reason.NOT_AUTHENTICATED)
                    return
                await self._send(link, encode(PongMessage(seq=message.seq, server_time=now)))
                self.last_seen.note(link.device_id, heard)
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
