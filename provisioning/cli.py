"""``kiosk-provision``: the provisioning station.

    kiosk-provision [--config F] key                    the station key to bake into tablet images
    kiosk-provision [--config F] inventory add SERIAL [--model M] [--note N]
    kiosk-provision [--config F] inventory list | remove SERIAL
    kiosk-provision [--config F] watch [--reprovision SERIAL]... [--count N]
    kiosk-provision [--config F] enrol TTY [--reprovision]

``watch`` enrols every tablet in enrolment mode that is plugged in, several
at once, each with its own progress line; the operator confirms each serial
against the one printed on the case. Ctrl-C (or ``--count``) ends it with a
summary. ``enrol`` does one tablet on a given serial device, without udev.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kiosk.crypto import authority, keys, revocation
from kiosk.enrolment.endpoint import Dropped, Progress
from kiosk.enrolment.station import (
    Enrolled,
    Event,
    StationConfig,
    StationEnrolment,
)
from kiosk.runtime.config import ConfigError, StationProgramSettings, load
from kiosk.runtime.logs import configure, get_logger
from provisioning.console import Console, stdin_reader
from provisioning.inventory import Inventory, InventoryError
from provisioning.serial_port import LineClosed, SerialPort
from provisioning.station import (
    Gadget,
    GadgetIds,
    GadgetWatcher,
    ServerRegistrar,
    api_ssl_context,
    enrol,
    pki_issuer,
)

KEY_FILE = "provisioning.key"

log = get_logger(__name__)


class CommandError(Exception):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- the station -----------------------------------------------------------


@dataclass
class Station:
    settings: StationProgramSettings
    config: StationConfig
    inventory: Inventory
    ca: authority.CertificateAuthority
    registrar: ServerRegistrar
    results: list[tuple[str, str, str]] = field(default_factory=list)  # tty, serial, outcome
    in_flight: set[str] = field(default_factory=set)  # serials being enrolled right now

    @classmethod
    def load(cls, settings: StationProgramSettings) -> Station:
        s = settings.station
        if not s.api_token:
            raise CommandError("[station] api_token is not set: tablets cannot be registered")
        try:
            ca = authority.load_ca(settings.pki_dir)
        except authority.PkiError as exc:
            raise CommandError(str(exc)) from exc
        key = keys.load_or_create_ed25519(s.data_dir / KEY_FILE)
        config = StationConfig(
            provisioning_key=key,
            ca_pem=ca.paths.ca_cert.read_text(),
            server_url=s.device_server_url,
            grant_public_key_pem=ca.paths.grant_pub.read_text(),
            facility={
                "facility_id": s.facility_id,
                "facility_name": s.facility_name,
                "timezone": s.timezone,
            },
        )
        registrar = ServerRegistrar(
            api_url=s.api_url,
            token=s.api_token,
            pki_dir=settings.pki_dir,
            ssl_context=api_ssl_context(s.api_ca) if s.api_url.startswith("https:") else None,
        )
        return cls(settings, config, Inventory(s.data_dir), ca, registrar)

    async def enrol_one(
        self,
        console: Console,
        name: str,
        port: SerialPort,
        usb_serial: str | None,
        reprovision: bool,
    ) -> bool:
        def report(event: Event) -> None:
            if isinstance(event, Progress):
                console.progress(name, event.step)
            elif isinstance(event, Dropped):
                console.progress(name, f"garbled frame dropped ({event.detail}); repeating")

        async def confirm(serial: str, model: str) -> bool:
            console.progress(name, f"tablet {serial} ({model}): waiting for the operator")
            return await console.ask(name, f"Is {serial} the serial printed on the case?")

        claimed: list[str] = []

        def claim(serial: str) -> bool:
            """One enrolment per serial at a time across this station's sessions."""
            if serial in self.in_flight:
                return False
            self.in_flight.add(serial)
            claimed.append(serial)
            return True

        machine = StationEnrolment(
            nonce=secrets.token_bytes(32),
            now=asyncio.get_running_loop().time(),
            config=self.config,
            lookup=self.inventory.lookup,
            issue=pki_issuer(self.ca),
            started_at=utc_now(),
            reprovision=reprovision,
            usb_serial=usb_serial,
            claim=claim,
        )
        console.progress(name, "greeting the tablet")
        try:
            outcome = await enrol(
                port,
                machine,
                confirm=confirm,
                registrar=self.registrar,
                report=report,
                clock=asyncio.get_running_loop().time,
            )
        finally:
            self.in_flight.difference_update(claimed)
        serial = machine.serial or usb_serial or "?"
        if isinstance(outcome, Enrolled):
            self.inventory.mark_enrolled(
                outcome.serial,
                certificate_serial=outcome.certificate_serial,
                device_id=outcome.device_id,
                now=utc_now(),
            )
            text = f"device {outcome.device_id}, certificate {outcome.certificate_serial}"
            console.progress(name, f"DONE {serial}: {text}")
            self.results.append((name, serial, f"enrolled ({text})"))
            return True
        if machine.issued_serial is not None:
            # The certificate went over the line but the enrolment failed: a tablet
            # that kept it must not be able to use it.
            revocation.revoke(self.settings.pki_dir, machine.issued_serial)
            log.info("certificate of a failed enrolment revoked", certificate=machine.issued_serial)
        who = "refused by the tablet" if outcome.by_peer else "refused"
        text = f"{who}: [{outcome.reason.value}] {outcome.message}"
        console.progress(name, f"FAILED {serial}: {text}")
        self.results.append((name, serial, text))
        return False

    def summary(self, console: Console) -> None:
        ok = sum(r[2].startswith("enrolled") for r in self.results)
        console.say(f"\nSummary: {ok} enrolled, {len(self.results) - ok} refused")
        for name, serial, outcome in self.results:
            console.say(f"  {serial:<20} {name:<10} {outcome}")


async def _watch(station: Station, reprovision: set[str], count: int | None) -> int:
    console = Console(sys.stdout, await stdin_reader())
    watcher = GadgetWatcher(GadgetIds.from_settings(station.settings.station))
    finished = asyncio.Event()
    running: dict[asyncio.Task[bool], Gadget] = {}

    async def one(gadget: Gadget) -> bool:
        try:
            try:
                port = await SerialPort.open_when_ready(gadget.devnode)
            except OSError as exc:
                text = f"cannot open {gadget.devnode}: {exc.strerror}"
                console.progress(gadget.name, f"FAILED: {text}")
                station.results.append((gadget.name, gadget.usb_serial or "?", text))
                return False
            try:
                return await station.enrol_one(
                    console, gadget.name, port, gadget.usb_serial, gadget.usb_serial in reprovision
                )
            except LineClosed:
                return False
            finally:
                port.close()
        finally:
            if count is not None and len(station.results) >= count:
                finished.set()

    def listening() -> None:
        console.say("Waiting for tablets in enrolment mode; Ctrl-C ends with a summary.")

    async def discover() -> None:
        async for gadget in watcher.watch(listening):
            console.progress(gadget.name, f"tablet found (USB serial {gadget.usb_serial or '?'})")
            task = asyncio.ensure_future(one(gadget))
            running[task] = gadget
            task.add_done_callback(lambda t: running.pop(t, None))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, finished.set)
    discovery = asyncio.ensure_future(discover())
    waiter = asyncio.ensure_future(finished.wait())
    await asyncio.wait({discovery, waiter}, return_when=asyncio.FIRST_COMPLETED)
    discovery.cancel()
    waiter.cancel()
    for task in list(running):
        task.cancel()
    for pending in (discovery, *running):
        with contextlib.suppress(asyncio.CancelledError):
            await pending
    station.summary(console)
    return 0 if all(r[2].startswith("enrolled") for r in station.results) else 1


async def _enrol_tty(station: Station, path: str, reprovision: bool) -> int:
    console = Console(sys.stdout, await stdin_reader())
    try:
        port = SerialPort.open(path)
    except OSError as exc:
        raise CommandError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        ok = await station.enrol_one(console, path.removeprefix("/dev/"), port, None, reprovision)
    finally:
        port.close()
    station.summary(console)
    return 0 if ok else 1


# --- commands --------------------------------------------------------------


def _settings(args: argparse.Namespace) -> StationProgramSettings:
    try:
        settings = load(StationProgramSettings, args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    configure(settings.log.level, settings.log.format == "json")
    return settings


def cmd_key(args: argparse.Namespace) -> int:
    s = _settings(args).station
    key = keys.load_or_create_ed25519(s.data_dir / KEY_FILE)
    pub = (s.data_dir / KEY_FILE).with_suffix(".pub")
    print(f"# {pub}: add it to the tablet image's /etc/kiosk/enrolment/stations.pem")
    print(keys.public_key_pem(key.public_key()).decode(), end="")
    return 0


def cmd_inventory_add(args: argparse.Namespace) -> int:
    inv = Inventory(_settings(args).station.data_dir)
    record = inv.add(args.serial, model=args.model, note=args.note, now=utc_now())
    print(f"added {record.serial}")
    return 0


def cmd_inventory_list(args: argparse.Namespace) -> int:
    records = Inventory(_settings(args).station.data_dir).list()
    print(f"{'serial':<24} {'model':<12} {'state':<10} {'device':<36} certificate")
    for r in records:
        state = "enrolled" if r.certificate_serial else "expected"
        print(
            f"{r.serial:<24} {r.model:<12} {state:<10} {r.device_id or '-':<36} "
            f"{r.certificate_serial or '-'}"
        )
    return 0


def cmd_inventory_remove(args: argparse.Namespace) -> int:
    Inventory(_settings(args).station.data_dir).remove(args.serial)
    print(f"removed {args.serial}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    station = Station.load(_settings(args))
    return asyncio.run(_watch(station, set(args.reprovision), args.count))


def cmd_enrol(args: argparse.Namespace) -> int:
    station = Station.load(_settings(args))
    return asyncio.run(_enrol_tty(station, args.tty, args.reprovision))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk-provision", description="Provisioning station: enrol tablets over USB."
    )
    parser.add_argument("--config", type=Path, default=None, help="settings TOML file")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("key", help="print the station's provisioning public key").set_defaults(
        func=cmd_key
    )
    inv = sub.add_parser("inventory", help="the serials staff expect").add_subparsers(
        dest="inventory_command", required=True
    )
    add = inv.add_parser("add", help="expect a tablet by the serial printed on its case")
    add.add_argument("serial")
    add.add_argument("--model", default="")
    add.add_argument("--note", default="")
    add.set_defaults(func=cmd_inventory_add)
    inv.add_parser("list", help="expected and enrolled tablets").set_defaults(
        func=cmd_inventory_list
    )
    rm = inv.add_parser("remove", help="no longer expect a tablet")
    rm.add_argument("serial")
    rm.set_defaults(func=cmd_inventory_remove)
    watch = sub.add_parser("watch", help="enrol every tablet plugged in (udev)")
    watch.add_argument(
        "--reprovision",
        action="append",
        default=[],
        metavar="SERIAL",
        help="re-provision this already enrolled tablet (revokes its certificate)",
    )
    watch.add_argument("--count", type=int, default=None, help="stop after N enrolments")
    watch.set_defaults(func=cmd_watch)
    one = sub.add_parser("enrol", help="enrol one tablet on a given serial device")
    one.add_argument("tty")
    one.add_argument("--reprovision", action="store_true")
    one.set_defaults(func=cmd_enrol)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CommandError, InventoryError) as exc:
        print(f"kiosk-provision: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
