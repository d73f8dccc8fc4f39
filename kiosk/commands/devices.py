"""``kiosk admin device list`` and ``kiosk admin device revoke``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from kiosk.cli import CommandError
from kiosk.commands.server import load
from kiosk.signalling.api.base import ApiError
from kiosk.signalling.api.devices import revoke_device
from kiosk.signalling.context import open_context
from kiosk.store.db import write_transaction
from kiosk.store.devices import DeviceRecord, list_devices


def register_admin(sub: Any) -> None:
    device = sub.add_parser("device", help="tablets")
    device_sub = device.add_subparsers(dest="device_command", required=True)
    ls = device_sub.add_parser("list", help="list tablets")
    ls.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    ls.set_defaults(func=run_list)
    rv = device_sub.add_parser(
        "revoke",
        help="revoke a tablet",
        description="Mark the tablet revoked and its certificate serial refused (database "
        "and the CA's CRL). A running server cuts its connection at the next handshake "
        "check; revoking through the API cuts live calls at once.",
    )
    rv.add_argument("device", help="device id or hardware serial")
    rv.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    rv.set_defaults(func=run_revoke)
    from kiosk.commands.ca import add_enrol_local

    add_enrol_local(device_sub)


async def _list(args: argparse.Namespace) -> list[DeviceRecord]:
    async with open_context(load(args.config)) as ctx, ctx.engine.connect() as conn:
        return await list_devices(conn)


def run_list(args: argparse.Namespace) -> int:
    records = asyncio.run(_list(args))
    print(f"{'id':36}  {'serial':20}  {'state':8}  {'inmate':36}  certificate")
    for r in records:
        d = r.device
        state = "revoked" if d.revoked else "active"
        print(
            f"{d.id:36}  {d.serial:20}  {state:8}  {d.inmate_id or '-':36}  "
            f"{d.certificate_serial or '-'}"
        )
    return 0


async def _revoke(args: argparse.Namespace) -> DeviceRecord:
    settings = load(args.config)
    async with open_context(settings) as ctx:
        try:
            async with write_transaction(ctx.engine) as conn:
                record = await revoke_device(
                    conn, ctx.audit, args.device, "system", ctx.clock(), settings.pki_dir
                )
        except ApiError as exc:
            raise CommandError(f"{args.device}: {exc.message}") from None
    return record


def run_revoke(args: argparse.Namespace) -> int:
    record = asyncio.run(_revoke(args))
    print(f"revoked {record.device.serial} ({record.device.id})")
    return 0
