"""``kiosk admin ca init`` and local enrolment of a tablet (demo and tests).

``kiosk admin ca enrol-local`` (and ``kiosk admin device enrol-local``, where
the device command group includes it through ``add_enrol_local``) does on one
machine what the USB station does: the tablet's key is made in the agent's
directory, the CA issues its certificate from a CSR, and the device row is
registered (and assigned to an inmate if asked), all in the audit chain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes

from kiosk.cli import CommandError
from kiosk.crypto import authority, local_enrolment, pki, revocation
from kiosk.runtime.config import ConfigError, Settings, load_settings


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc


def register_admin(sub: Any) -> None:
    ca = sub.add_parser("ca", help="the deployment's certificate authority")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True)
    init = ca_sub.add_parser(
        "init",
        help="create the CA, the device listener's certificate and the signing keys",
        description="Create what is missing in the PKI directory (pki.dir, default "
        "<data_dir>/pki): the deployment CA, the device listener's certificate (90 days; "
        "renewed by running this again when less than 30 days are left or the hosts "
        "change), the grant and audit signing keys and the CRL. An existing CA and "
        "existing keys are never replaced.",
    )
    init.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="host name or address tablets use for the device listener (repeatable; "
        "default: server.device_host, localhost, 127.0.0.1, ::1)",
    )
    init.set_defaults(func=run_init)
    add_enrol_local(ca_sub)


def add_enrol_local(group: Any) -> None:
    """Add ``enrol-local`` to a command group (``ca`` here; ``device`` may include it too)."""
    enrol = group.add_parser(
        "enrol-local",
        help="enrol a tablet on this machine (demo, tests)",
        description="Make a device key and CSR, issue the certificate from the CA and write "
        "device.pem, device.key, ca.pem, grant.pub and agent.toml into DIR; register the "
        "device (and assign it to an inmate with --inmate).",
    )
    enrol.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    enrol.add_argument("--serial", required=True, help="the tablet's hardware serial")
    enrol.add_argument("--out", type=Path, required=True, metavar="DIR", help="agent directory")
    enrol.add_argument("--inmate", default=None, metavar="ID", help="assign to this inmate")
    enrol.set_defaults(func=run_enrol_local)


def run_init(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    hosts = args.host or [settings.server.device_host, *pki.DEFAULT_HOSTS]
    try:
        ca = pki.init_ca(settings.pki_dir, hosts)
        revocation.ensure_crl(ca)
    except authority.PkiError as exc:
        raise CommandError(f"cannot initialise the CA: {exc}") from exc
    except OSError as exc:
        raise CommandError(f"cannot write {settings.pki_dir}: {exc.strerror}") from exc
    fingerprint = ca.cert.fingerprint(hashes.SHA256()).hex(":")
    print(f"CA ready in {ca.paths.dir} ({ca.cert.subject.rfc4514_string()})")
    print(f"CA certificate SHA-256 {fingerprint}")
    return 0


def _agent_toml(settings: Settings, enrolled: local_enrolment.EnrolledDevice) -> str:
    host = settings.server.device_host
    shown = f"[{host}]" if ":" in host else host
    lines = {
        "server_url": f"wss://{shown}:{settings.server.device_port}/device/v1",
        "ca_cert": str(enrolled.ca_cert),
        "cert": str(enrolled.cert),
        "key": str(enrolled.key),
        "grant_public_key": str(enrolled.grant_pub),
    }
    # A tablet enrolled on this machine (demo, tests) is simulated: locking this
    # machine's USB down would only lock out its own keyboard.
    return (
        "[agent]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in lines.items())
        + "usb_guard = false\n"
    )


async def _register(
    settings: Settings, serial: str, out: Path, inmate_id: str | None
) -> tuple[str, local_enrolment.EnrolledDevice]:
    from kiosk.domain.model import Device
    from kiosk.signalling.context import open_context
    from kiosk.store.db import write_transaction
    from kiosk.store.devices import device_serial_taken, insert_device
    from kiosk.store.ids import new_id
    from kiosk.store.inmates import get_inmate

    async with open_context(settings) as ctx:
        async with write_transaction(ctx.engine) as conn:
            if await device_serial_taken(conn, serial, None):
                raise CommandError(f"a tablet with serial {serial} is already registered")
            if inmate_id is not None:
                inmate = await get_inmate(conn, inmate_id)
                if inmate is None:
                    raise CommandError(f"no inmate {inmate_id}")
                if not inmate.active:
                    raise CommandError(f"inmate {inmate_id} is not active")
            # The key and certificate are made inside the transaction: if the row
            # cannot be written, the command fails and the files are of no use to anyone.
            enrolled = local_enrolment.enrol_local(settings.pki_dir, serial, out)
            device = Device(
                id=new_id(),
                serial=serial,
                inmate_id=inmate_id,
                certificate_serial=enrolled.certificate_serial,
            )
            now = ctx.clock()
            await insert_device(conn, device, "local", now)
            subjects = {"device": device.id, "certificate": enrolled.certificate_serial}
            await ctx.audit.append("system", "device.registered", subjects, conn=conn)
            if inmate_id is not None:
                await ctx.audit.append(
                    "system",
                    "device.assigned",
                    {"device": device.id, "inmate": inmate_id},
                    conn=conn,
                )
    return device.id, enrolled


def run_enrol_local(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    try:
        pki.check_device_serial(args.serial)
        authority.load_ca(settings.pki_dir)
        out = args.out.resolve()
        device_id, enrolled = asyncio.run(_register(settings, args.serial, out, args.inmate))
    except authority.PkiError as exc:
        raise CommandError(str(exc)) from exc
    (out / "agent.toml").write_text(_agent_toml(settings, enrolled), encoding="utf-8")
    print(f"enrolled {args.serial} as device {device_id}; agent files in {out}")
    return 0
