"""The tablet's enrolment service: the protocol served on the USB gadget's serial line.

    python -m kiosk.device.enrol_serial --tty /dev/ttyGS0 --dir /etc/kiosk/agent \\
        --station-keys /etc/kiosk/enrolment/stations.pem [--serial S] [--model M] [--once]

It answers a station's greeting (``kiosk.enrolment.tablet``), stores the
verified bundle through ``kiosk.crypto.keys`` (the key 0600, directories 0700) and,
once the station says the server registered it, moves the files into place
and writes the ``provisioned`` marker that the enrolment unit's
``ConditionPathExists=!`` checks: the tablet leaves enrolment mode and the
agent (``ConditionPathExists=`` the marker) starts. Files in ``--dir``:

    device.key  device.pem  ca.pem  grant.pub  (the agent's [agent] settings' names)
    enrolment.env   KIOSK_AGENT__… lines for the agent unit's EnvironmentFile=
    bundle.json     serial, certificate serial, server, facility, station time
    provisioned     the marker

Until done, everything is written to ``--dir/.staging``: a session that
fails halfway leaves an earlier provisioning (re-provisioning) untouched.
Without ``--once`` the service keeps serving after a refused session, so
that the operator can fix the inventory and plug the tablet in again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kiosk.crypto import keys
from kiosk.enrolment.endpoint import Failed, Progress
from kiosk.enrolment.tablet import (
    DeviceEnrolment,
    DeviceState,
    Provisioned,
    StoreBundle,
)
from kiosk.runtime.serial_line import set_raw

MARKER = "provisioned"
STAGING = ".staging"
FILES = ("device.key", "device.pem", "ca.pem", "grant.pub", "enrolment.env", "bundle.json")
DEFAULT_STATION_KEYS = Path("/etc/kiosk/enrolment/stations.pem")


def load_station_keys(path: Path) -> list[ed25519.Ed25519PublicKey]:
    """One or more PEM public keys (Ed25519) of the deployment's stations."""
    text = path.read_text()
    out = []
    for block in text.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        pem = block[block.index("-----BEGIN PUBLIC KEY-----") :] + "-----END PUBLIC KEY-----\n"
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError(f"{path}: a station key that is not Ed25519")
        out.append(key)
    if not out:
        raise ValueError(f"{path}: no station public key")
    return out


SERIAL_SOURCES = (
    "/sys/class/dmi/id/product_serial",
    "/proc/device-tree/serial-number",
    # What systemd/usb-gadget-setup.sh gave the gadget (from the same sources, as root).
    "/sys/kernel/config/usb_gadget/kiosk/strings/0x409/serialnumber",
)


def hardware_serial() -> str | None:
    for path in SERIAL_SOURCES:
        with contextlib.suppress(OSError):
            value = Path(path).read_bytes().rstrip(b"\x00\n ").decode(errors="replace")
            if value:
                return value
    return None


def hardware_model() -> str:
    for path in ("/sys/class/dmi/id/product_name", "/proc/device-tree/model"):
        with contextlib.suppress(OSError):
            value = Path(path).read_bytes().rstrip(b"\x00\n ").decode(errors="replace")
            if value:
                return value
    return ""


class Store:
    """Where the bundle goes: staged, then moved into place at once."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.staging = directory / STAGING

    @property
    def provisioned(self) -> bool:
        return (self.dir / MARKER).exists()

    def stage(self, event: StoreBundle) -> None:
        b = event.bundle
        keys.ensure_private_dir(self.dir)
        staging = keys.ensure_private_dir(self.staging)
        keys.save_private_key(staging / "device.key", event.key)
        keys.write_public(staging / "device.pem", "".join([b.certificate, *b.chain]).encode())
        keys.write_public(staging / "ca.pem", b.ca.encode())
        keys.write_public(staging / "grant.pub", b.grant_public_key.encode())
        env = {
            "KIOSK_AGENT__SERVER_URL": b.server_url,
            "KIOSK_AGENT__CA_CERT": str(self.dir / "ca.pem"),
            "KIOSK_AGENT__CERT": str(self.dir / "device.pem"),
            "KIOSK_AGENT__KEY": str(self.dir / "device.key"),
            "KIOSK_AGENT__GRANT_PUBLIC_KEY": str(self.dir / "grant.pub"),
        }
        keys.write_public(
            staging / "enrolment.env", "".join(f"{k}={v}\n" for k, v in env.items()).encode()
        )
        summary = {
            "serial": b.serial,
            "certificate_serial": event.certificate_serial,
            "server_url": b.server_url,
            "facility": b.facility,
            "issued_at": b.issued_at,
        }
        keys.write_public(staging / "bundle.json", json.dumps(summary, indent=2).encode())

    def commit(self, event: Provisioned) -> None:
        if event.device_id:
            # Pins the id the server registered: the agent then refuses a state for
            # any other tablet (kiosk.device.session).
            env = (self.staging / "enrolment.env").read_text()
            env += f"KIOSK_AGENT__DEVICE_ID={event.device_id}\n"
            keys.write_public(self.staging / "enrolment.env", env.encode())
        for name in FILES:
            os.replace(self.staging / name, self.dir / name)
        self.staging.rmdir()
        marker = {
            "device_id": event.device_id,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        keys.write_public(self.dir / MARKER, json.dumps(marker).encode())
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def open_line(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    set_raw(fd)
    return fd


def say(text: str) -> None:
    print(f"enrolment: {text}", file=sys.stderr, flush=True)


def serve(
    fd: int,
    *,
    store: Store,
    serial: str,
    model: str,
    station_keys: Sequence[ed25519.Ed25519PublicKey],
    once: bool,
) -> int:
    """Serve sessions until provisioned (0), or until the first refusal with ``once`` (1)."""
    while True:
        machine = DeviceEnrolment(
            serial=serial, model=model, station_keys=station_keys, provisioned=store.provisioned
        )
        say(f"tablet {serial} waiting for a station")
        result = _session(fd, machine, store)
        if result == 0 or once:
            return result


def _session(fd: int, machine: DeviceEnrolment, store: Store) -> int:
    while True:
        out = machine.data_to_send()
        if out:
            _write_all(fd, out)
        if machine.state is DeviceState.PROVISIONED:
            return 0
        if machine.state is DeviceState.FAILED:
            store.discard()
            return 1
        deadline = machine.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([fd], [], [], timeout)
        now = time.monotonic()
        events = []
        if readable:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                # The host closed its end (unplugged): nothing to read until it comes back.
                time.sleep(0.2)
            events += machine.receive(data, now)
        events += machine.timer(now)
        for event in events:
            if isinstance(event, Progress):
                say(event.step)
            elif isinstance(event, StoreBundle):
                try:
                    store.stage(event)
                except OSError as exc:
                    events += machine.store_failed(str(exc))
                else:
                    events += machine.stored(time.monotonic())
            elif isinstance(event, Provisioned):
                store.commit(event)
                say(f"provisioned as device {event.device_id}; leaving enrolment mode")
            elif isinstance(event, Failed):
                who = "refused by the station" if event.by_peer else "refused"
                say(f"{who}: [{event.reason.value}] {event.message}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kiosk-enrol", description="Serve enrolment on the USB gadget's serial line."
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tty", default="/dev/ttyGS0", help="the gadget's serial device")
    where.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--dir", type=Path, default=Path("/etc/kiosk/agent"))
    parser.add_argument("--station-keys", type=Path, default=DEFAULT_STATION_KEYS)
    parser.add_argument("--serial", default=None, help="default: DMI or device-tree serial")
    parser.add_argument("--model", default=None)
    parser.add_argument("--once", action="store_true", help="stop after one refused session")
    args = parser.parse_args(argv)
    serial = args.serial or hardware_serial()
    if not serial:
        say("no hardware serial found; pass --serial")
        return 2
    try:
        station_keys = load_station_keys(args.station_keys)
    except (OSError, ValueError) as exc:
        say(f"cannot load the pinned station keys: {exc}")
        return 2
    if args.fd is not None:
        fd = args.fd
        set_raw(fd)
    else:
        fd = open_line(args.tty)
    return serve(
        fd,
        store=Store(args.dir),
        serial=serial,
        model=args.model if args.model is not None else hardware_model(),
        station_keys=station_keys,
        once=args.once,
    )


if __name__ == "__main__":
    sys.exit(main())
