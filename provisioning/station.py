"""The station's I/O around the pure protocol: udev, the serial line, the CA, the server.

- ``GadgetWatcher`` finds our USB gadget's tty devices with pyudev: those
  present at start and those plugged in later (a netlink monitor on the
  ``tty`` subsystem), matched on the parent USB device's vendor, product and
  product string (``GadgetIds``, from ``[station]`` settings).
- ``SerialPort`` (``provisioning.serial_port``) is the tty in raw mode, read
  and written without blocking the event loop.
- ``enrol()`` runs one ``StationEnrolment`` over one port: the operator's
  confirmation and the server registration are awaited alongside the line,
  so a refusal from the tablet is never missed while a person thinks.
- ``pki_issuer`` adapts ``kiosk.crypto.pki`` to the protocol's injected issuer;
  ``ServerRegistrar`` registers the tablet (``POST /api/v1/devices``, bearer
  token) and revokes the old certificate on re-provisioning.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pyudev
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kiosk.crypto import authority, pki
from kiosk.domain.reasons import Reason
from kiosk.enrolment.endpoint import Failed
from kiosk.enrolment.station import (
    ConfirmSerial,
    Enrolled,
    Event,
    Issued,
    Issuer,
    IssueRefused,
    Register,
    StationEnrolment,
    StationState,
)
from kiosk.runtime.config import StationSettings
from kiosk.runtime.logs import get_logger
from provisioning.serial_port import LineClosed, SerialPort

log = get_logger(__name__)

# --- udev ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GadgetIds:
    vendor: str
    product: str
    product_name: str

    @classmethod
    def from_settings(cls, s: StationSettings) -> GadgetIds:
        return cls(s.gadget_vendor.lower(), s.gadget_product.lower(), s.gadget_product_name)


@dataclass(frozen=True, slots=True)
class Gadget:
    """A tablet in enrolment mode, as udev shows it."""

    devnode: str
    sys_path: str
    usb_serial: str | None

    @property
    def name(self) -> str:
        return Path(self.devnode).name


def _attr(device: pyudev.Device, name: str) -> str | None:
    try:
        value = device.attributes.asstring(name)
    except (KeyError, UnicodeDecodeError):
        return None
    return str(value).strip()


def match_gadget(device: pyudev.Device, ids: GadgetIds) -> Gadget | None:
    """Our gadget's tty, or None. Only sysfs attributes of the USB device count."""
    if device.subsystem != "tty" or not device.device_node:
        return None
    usb = device.find_parent("usb", "usb_device")
    if usb is None:
        return None
    if (_attr(usb, "idVendor") or "").lower() != ids.vendor:
        return None
    if (_attr(usb, "idProduct") or "").lower() != ids.product:
        return None
    if _attr(usb, "product") != ids.product_name:
        return None
    return Gadget(str(device.device_node), str(device.sys_path), _attr(usb, "serial"))


class GadgetWatcher:
    """Our gadgets now present, then each one as it is plugged in."""

    def __init__(self, ids: GadgetIds, context: pyudev.Context | None = None) -> None:
        self._ids = ids
        self._context = context or pyudev.Context()

    def present(self) -> list[Gadget]:
        found = (match_gadget(d, self._ids) for d in self._context.list_devices(subsystem="tty"))
        return sorted((g for g in found if g is not None), key=lambda g: g.devnode)

    async def watch(self, listening: Callable[[], None] = lambda: None) -> AsyncIterator[Gadget]:
        """Present gadgets first, then hot-plugged ones; each devnode once while present.

        ``listening`` is called once udev's events are heard, before the present
        gadgets are listed: a tablet plugged in after it is never missed.
        """
        monitor = pyudev.Monitor.from_netlink(self._context)
        monitor.filter_by("tty")
        monitor.start()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[pyudev.Device] = asyncio.Queue()

        def readable() -> None:
            while (device := monitor.poll(timeout=0)) is not None:
                queue.put_nowait(device)

        loop.add_reader(monitor.fileno(), readable)
        listening()
        seen: set[str] = set()
        try:
            for present in self.present():
                seen.add(present.sys_path)
                yield present
            while True:
                device = await queue.get()
                if device.action == "remove":
                    seen.discard(str(device.sys_path))
                    continue
                if device.action != "add":
                    continue
                gadget = match_gadget(device, self._ids)
                if gadget is not None and gadget.sys_path not in seen:
                    seen.add(gadget.sys_path)
                    yield gadget
        finally:
            loop.remove_reader(monitor.fileno())


# --- one enrolment ---------------------------------------------------------

Confirm = Callable[[str, str], Awaitable[bool]]
Report = Callable[[Event], None]


class RegistrationError(Exception):
    pass


class Registrar:
    """Registers a tablet with the server; revokes the old certificate when asked."""

    async def register(self, event: Register) -> str:  # the server's device id
        raise NotImplementedError


LINGER = 2.0  # after done: answer a repeated ack if our done was lost


async def enrol(
    port: SerialPort,
    machine: StationEnrolment,
    *,
    confirm: Confirm,
    registrar: Registrar,
    report: Report,
    clock: Callable[[], float] = time.monotonic,
) -> Enrolled | Failed:
    outcome: Enrolled | Failed | None = None
    tasks: dict[asyncio.Task[Any], str] = {}

    def handle(events: list[Event]) -> None:
        nonlocal outcome
        for event in events:
            report(event)
            if isinstance(event, ConfirmSerial):
                tasks[asyncio.ensure_future(confirm(event.serial, event.model))] = "confirm"
            elif isinstance(event, Register):
                tasks[asyncio.ensure_future(registrar.register(event))] = "register"
            elif isinstance(event, Enrolled | Failed):
                outcome = event

    reader = asyncio.ensure_future(port.read())
    try:
        while True:
            await port.write(machine.data_to_send())
            if machine.state is StationState.FAILED:
                assert machine.failure is not None
                return machine.failure
            if machine.state is StationState.DONE:
                break
            deadline = machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - clock())
            done, _ = await asyncio.wait(
                {reader, *tasks}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            now = clock()
            for task in done:
                if task is not reader:
                    continue
                try:
                    data = reader.result()
                except LineClosed as exc:
                    return Failed(Reason.ENROLMENT_TIMEOUT, f"the tablet went away: {exc}", True)
                handle(machine.receive(data, now))
                reader = asyncio.ensure_future(port.read())
            for task in done:
                if task not in tasks:
                    continue
                kind = tasks.pop(task)
                if kind == "confirm":
                    ok = bool(task.result()) if task.exception() is None else False
                    handle(machine.confirm(ok, now))
                elif (error := task.exception()) is None:
                    handle(machine.registered(True, now, device_id=str(task.result())))
                else:
                    log.warning("tablet registration failed", error=str(error))
                    handle(machine.registered(False, now, detail=str(error)))
            handle(machine.timer(clock()))
        # Done: linger briefly so that a lost `done` is repeated when the ack is.
        end = clock() + LINGER
        while (left := end - clock()) > 0:
            done, _ = await asyncio.wait({reader}, timeout=left)
            if not done:
                break
            try:
                data = reader.result()
            except LineClosed:
                break
            handle(machine.receive(data, clock()))
            await port.write(machine.data_to_send())
            reader = asyncio.ensure_future(port.read())
        assert isinstance(outcome, Enrolled)
        return outcome
    finally:
        reader.cancel()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, LineClosed, OSError):
            await reader


# --- the CA and the server -------------------------------------------------

_PKI_REASONS = {
    authority.PkiError.BAD_CSR_SIGNATURE: Reason.BAD_CSR_SIGNATURE,
    authority.PkiError.CSR_SUBJECT_MISMATCH: Reason.CSR_SUBJECT_MISMATCH,
}


def pki_issuer(ca: authority.CertificateAuthority) -> Issuer:
    def issue(csr: x509.CertificateSigningRequest, serial: str) -> Issued:
        try:
            cert = pki.issue_device_certificate(ca, csr, serial)
        except authority.PkiError as exc:
            reason = _PKI_REASONS.get(exc.code, Reason.INVALID_REQUEST)
            raise IssueRefused(reason, exc.detail or exc.code) from exc
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        return Issued(pem, (), authority.certificate_serial_text(cert))

    return issue


class ServerRegistrar(Registrar):
    """``POST {api_url}/devices`` with the station's bearer token."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        pki_dir: Path,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 20.0,
    ) -> None:
        self._url = api_url.rstrip("/") + "/devices"
        self._token = token
        self._pki_dir = pki_dir
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def register(self, event: Register) -> str:
        if event.revoke:
            # Re-provisioning: the server takes the new certificate and revokes the
            # old one (its CRL, its live link) in one step; a refusal leaves the
            # tablet its working identity.
            return await self._post(
                event,
                f"{self._url}/{event.serial}/certificate",
                {"certificate_serial": event.certificate_serial},
            )
        return await self._post(
            event,
            self._url,
            {
                "serial": event.serial,
                "model": event.model,
                "certificate_serial": event.certificate_serial,
            },
        )

    async def _post(self, event: Register, url: str, body: dict[str, str]) -> str:
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(url, json=body, headers=headers, ssl=self._ssl or True) as resp,
            ):
                data: Any = await resp.json(content_type=None)
                if resp.status not in (200, 201):
                    error = data.get("error", {}) if isinstance(data, dict) else {}
                    code = error.get("code", f"HTTP {resp.status}")
                    text = f"{code}: {error.get('message', '')}".strip(": ")
                    raise RegistrationError(text)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RegistrationError(f"server unreachable: {exc}") from exc
        device_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(device_id, str):
            raise RegistrationError("the server's answer has no device id")
        if event.revoke:
            log.info("old tablet certificate revoked by the server", certificate=event.revoke)
        return device_id


def api_ssl_context(cafile: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
