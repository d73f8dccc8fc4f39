"""The tablet's USB guard: sysfs and udev around the pure ``kiosk.device.usbpolicy``.

ARCHITECTURE.md "The tablet": ``authorized_default=0`` on every USB host
controller (a root hub ``usbN``), then each device is authorized (``1``
written to its ``authorized``) only if the allow list says so. Everything
refused is deauthorized (``0``: the kernel unbinds any driver that got there
first, e.g. a keyboard plugged in before the agent started) and reported
through ``report(kind, details)``, which the agent sends to the server as
``tamper{kind, details}`` (audit chain; the staff console shows it).

``UsbGuard.start()`` locks the controllers and judges the devices present;
``watch()`` then judges each device as it is plugged in, and locks any
controller that appears later.

    python -m kiosk.device.usbguard [--config agent.toml] [--watch]

runs the guard alone (each decision printed as a JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import pyudev

from kiosk.device.usbpolicy import (
    AllowRule,
    Authorize,
    Decision,
    DescriptorError,
    Refuse,
    UsbDevice,
    decide,
    parse_descriptors,
    parse_rules,
)
from kiosk.runtime.logs import get_logger
from kiosk.wire.messages import TamperMessage

log = get_logger(__name__)

Report = Callable[[str, dict[str, str]], None]
RESEND_AFTER = 1.0  # seconds between tries to report a refusal while the link is down


class GuardError(Exception):
    """The guard cannot enforce the allow list (e.g. a controller it cannot lock)."""


def is_controller(device: pyudev.Device) -> bool:
    """A root hub stands for its host controller: sysfs name ``usbN``."""
    return str(device.sys_name).startswith("usb")


def _write_attr(device: pyudev.Device, name: str, value: str) -> None:
    # Through open(): under umockdev the preload library redirects /sys to the testbed.
    with open(os.path.join(device.sys_path, name), "w") as fh:
        fh.write(value)


def _read_attr(device: pyudev.Device, name: str) -> bytes | None:
    try:
        with open(os.path.join(device.sys_path, name), "rb") as fh:
            return fh.read()
    except OSError:
        return None


def read_device(device: pyudev.Device) -> UsbDevice:
    name = str(device.sys_name)
    serial = _read_attr(device, "serial")
    product = _read_attr(device, "product")
    # A device chooses its own strings: cap them (the tamper message bounds each value).
    text_serial = serial.decode(errors="replace").strip()[:128] if serial is not None else None
    text_product = product.decode(errors="replace").strip()[:128] if product is not None else ""
    raw = _read_attr(device, "descriptors")
    if raw is None:
        return UsbDevice(name, None, text_serial, text_product, "no descriptors attribute")
    try:
        descriptors = parse_descriptors(raw)
    except DescriptorError as exc:
        return UsbDevice(name, None, text_serial, text_product, str(exc))
    return UsbDevice(name, descriptors, text_serial, text_product)


class UsbGuard:
    def __init__(
        self,
        rules: Sequence[AllowRule],
        report: Report,
        context: pyudev.Context | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self._report = report
        self._context = context or pyudev.Context()

    @classmethod
    def from_settings(cls, usb_allow: Sequence[Mapping[str, object]], report: Report) -> UsbGuard:
        return cls(parse_rules(usb_allow), report)

    def _usb_devices(self) -> list[pyudev.Device]:
        devices = self._context.list_devices(subsystem="usb", DEVTYPE="usb_device")
        return sorted(devices, key=lambda d: str(d.sys_path))

    def lock_controllers(self) -> list[str]:
        """``authorized_default=0`` on every host controller; the names locked."""
        locked = []
        for device in self._usb_devices():
            if is_controller(device):
                self.lock(device)
                locked.append(str(device.sys_name))
        return locked

    def lock(self, controller: pyudev.Device) -> None:
        """``authorized_default=0``. Unprivileged, the agent may not write it; then
        70-kiosk-usbguard.rules must have (udev runs as root): check, never assume."""
        name = str(controller.sys_name)
        try:
            _write_attr(controller, "authorized_default", "0")
        except OSError as exc:
            current = _read_attr(controller, "authorized_default")
            if current is None or current.strip() != b"0":
                raise GuardError(f"cannot lock USB controller {name}: {exc.strerror}") from exc
        log.info("usb controller locked", controller=name)

    def judge(self, device: pyudev.Device) -> Decision:
        """Decide about one device and write the decision to its ``authorized``."""
        info = read_device(device)
        decision = decide(info, self.rules)
        if isinstance(decision, Authorize):
            try:
                _write_attr(device, "authorized", "1")
            except OSError as exc:  # the device stays unauthorized: safe, but say so
                log.error("usb device could not be authorized", device=info.name, error=str(exc))
            else:
                log.info("usb device authorized", device=info.name, rule=decision.rule)
        else:
            # Deny by default: even if the write fails, the kernel default is 0.
            with contextlib.suppress(OSError):
                _write_attr(device, "authorized", "0")
            log.warning("usb device refused", reason=decision.reason, **decision.details)
            self._report(decision.kind, {"reason": decision.reason, **decision.details})
        return decision

    def judge_present(self) -> list[tuple[str, Decision]]:
        return [
            (str(d.sys_name), self.judge(d)) for d in self._usb_devices() if not is_controller(d)
        ]

    def start(self) -> list[tuple[str, Decision]]:
        """Lock the controllers, then judge every device already present."""
        self.lock_controllers()
        return self.judge_present()

    async def watch(self, *, start: bool = True) -> AsyncIterator[tuple[str, Decision]]:
        """With ``start``: lock and judge what is present first, after the monitor is
        listening, so that nothing plugged in meanwhile slips between the two."""
        monitor = pyudev.Monitor.from_netlink(self._context)
        monitor.filter_by("usb", "usb_device")
        monitor.start()
        if start:
            for judged in self.start():
                yield judged
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[pyudev.Device] = asyncio.Queue()

        def readable() -> None:
            while (device := monitor.poll(timeout=0)) is not None:
                queue.put_nowait(device)

        loop.add_reader(monitor.fileno(), readable)
        try:
            while True:
                device = await queue.get()
                if device.action != "add":
                    continue
                if is_controller(device):
                    self.lock(device)  # a controller that appeared later (a dock)
                    continue
                yield str(device.sys_name), self.judge(device)
        finally:
            loop.remove_reader(monitor.fileno())


def tamper_message(kind: str, details: Mapping[str, str]) -> TamperMessage:
    """The protocol message the agent sends for a refused device."""
    return TamperMessage(kind=kind, details=dict(details))


async def guard_service(
    usb_allow: Sequence[Mapping[str, object]],
    send: Callable[[TamperMessage], Awaitable[object]],
) -> None:
    """The agent's USB guard, for its lifetime: locks, judges, and hands every refusal
    to ``send`` (the agent's link) in order; a slow or absent link never delays a
    decision, because decisions are written first and reports queued."""
    reports: asyncio.Queue[TamperMessage] = asyncio.Queue()
    guard = UsbGuard.from_settings(
        usb_allow, lambda kind, details: reports.put_nowait(tamper_message(kind, details))
    )

    async def forward() -> None:
        while True:
            message = await reports.get()
            # The agent's link answers False while it is down: keep the report until
            # the server can take it (the audit chain must hear of every refusal).
            for attempt in itertools.count():
                if attempt:
                    await asyncio.sleep(RESEND_AFTER)
                if await send(message) is not False:
                    break

    sender = asyncio.ensure_future(forward())
    try:
        async for _ in guard.watch():
            pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


def _print_decision(name: str, decision: Decision) -> None:
    if isinstance(decision, Refuse):
        line = {"device": name, "authorized": False, "reason": decision.reason, **decision.details}
    else:
        line = {"device": name, "authorized": True, "rule": decision.rule}
    print(json.dumps(line), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from kiosk.runtime.config import AgentProgramSettings, ConfigError, load
    from kiosk.runtime.logs import configure

    parser = argparse.ArgumentParser(prog="kiosk-usbguard", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--watch", action="store_true", help="keep judging hot-plugged devices")
    args = parser.parse_args(argv)
    try:
        settings = load(AgentProgramSettings, args.config)
        configure(settings.log.level, settings.log.format == "json")
        guard = UsbGuard.from_settings(settings.agent.usb_allow, lambda kind, details: None)
        locked = guard.lock_controllers()
    except (ConfigError, ValueError, GuardError) as exc:
        print(f"kiosk-usbguard: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"locked": locked}), flush=True)
    for name, decision in guard.judge_present():
        _print_decision(name, decision)
    if args.watch:

        async def run() -> None:
            async for name, decision in guard.watch(start=False):
                _print_decision(name, decision)

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
