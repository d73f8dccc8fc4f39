"""``kiosk admin mail list`` and ``kiosk admin mail retry``: the outbox for the operator.

A mail the server gave up on (``dead``: its last attempt failed, or the mail
server refused it for good) stays in the outbox with its error; once the
cause is fixed, ``retry`` puts it back in line. Addresses are not shown.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from kiosk.cli import CommandError
from kiosk.commands.server import load
from kiosk.signalling.context import open_context
from kiosk.store import outbox
from kiosk.store.db import write_transaction


def register_admin(sub: Any) -> None:
    mail = sub.add_parser("mail", help="the mail outbox")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True)
    ls = mail_sub.add_parser("list", help="mails in the outbox (no addresses)")
    ls.add_argument("--state", choices=outbox.STATES, default=None)
    ls.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    ls.set_defaults(func=run_list)
    rt = mail_sub.add_parser(
        "retry",
        help="send dead mails again",
        description="Put a dead mail (or every dead mail) back in line with fresh attempts; "
        "a running server sends it within half a minute.",
    )
    rt.add_argument("mail_id", nargs="?", default=None, help="one mail's id (default: all dead)")
    rt.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    rt.set_defaults(func=run_retry)


async def _list(args: argparse.Namespace) -> list[outbox.OutboxMail]:
    async with open_context(load(args.config)) as ctx, ctx.engine.connect() as conn:
        return await outbox.list_mails(conn, args.state)


def run_list(args: argparse.Namespace) -> int:
    print(f"{'id':36}  {'kind':9}  {'state':7}  {'tries':>5}  {'queued':20}  last error")
    for m in asyncio.run(_list(args)):
        queued = m.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{m.id:36}  {m.kind:9}  {m.state:7}  {m.attempts:>5}  {queued:20}  "
              f"{m.last_error or '-'}")
    return 0


async def _retry(args: argparse.Namespace) -> int:
    async with open_context(load(args.config)) as ctx, write_transaction(ctx.engine) as conn:
        return await outbox.retry_dead(conn, ctx.clock(), args.mail_id)


def run_retry(args: argparse.Namespace) -> int:
    count = asyncio.run(_retry(args))
    if args.mail_id is not None and count == 0:
        raise CommandError(f"{args.mail_id}: no dead mail with this id")
    print(f"{count} mail(s) back in the outbox")
    return 0
