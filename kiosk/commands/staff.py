"""``kiosk admin staff add|password-link`` and ``kiosk admin token create|list|revoke``.

An operator never chooses another person's password (issue 16): a new account
has none, and the command prints its one-time set-password link for the
owner. ``--password-stdin`` is for automation that provisions its own account.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from kiosk.cli import CommandError
from kiosk.commands.server import load
from kiosk.domain.model import Role
from kiosk.runtime.config import Settings
from kiosk.signalling import auth
from kiosk.signalling.context import ServerContext, open_context
from kiosk.signalling.staff_passwords import MIN_PASSWORD, issue_link, link_url
from kiosk.store.db import write_transaction
from kiosk.store.staff import (
    TOKEN_ID_LENGTH,
    ApiTokenRecord,
    get_staff_by_username,
    list_api_tokens,
)


def register_admin(sub: Any) -> None:
    staff = sub.add_parser("staff", help="staff accounts")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    add = staff_sub.add_parser(
        "add",
        help="add a staff member",
        description="Add a staff account. Without --password-stdin it has no password: a "
        "one-time link is printed, through which its owner sets one (server.public_url "
        "is the link's base).",
    )
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--name", default="", help="display name (default: the username)")
    add.add_argument("--email", default="", help="where the console mails later links")
    add.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input (automation)",
    )  # fmt: skip
    add.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    add.set_defaults(func=run_staff_add)
    link = staff_sub.add_parser(
        "password-link",
        help="print a one-time set-password link for a staff member",
        description="Print a new one-time link through which USERNAME sets their own "
        "password; earlier links stop working. The current password works until then.",
    )
    link.add_argument("username")
    link.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    link.set_defaults(func=run_staff_password_link)

    token = sub.add_parser("token", help="API bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser(
        "create",
        help="create a bearer token for a staff member",
        description="Print a new bearer token for USERNAME (shown once, stored hashed). "
        "It carries the staff member's role.",
    )
    create.add_argument("username")
    create.add_argument("--label", default="", help="what the token is for")
    create.add_argument("--days", type=int, default=None, help="expire after this many days")
    create.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    create.set_defaults(func=run_token_create)
    listing = token_sub.add_parser(
        "list",
        help="list bearer tokens",
        description="One line per token: its id (the start of its hash, never the token), "
        "the staff member, label, created, expires and whether it is revoked.",
    )
    listing.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    listing.set_defaults(func=run_token_list)
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a bearer token",
        description="Revoke the token with this id (from `kiosk admin token list`); "
        "it is refused from the next request on.",
    )
    revoke.add_argument("token_id", metavar="ID")
    revoke.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    revoke.set_defaults(func=run_token_revoke)


def _base(settings: Settings) -> str:
    """The link's base: ``server.public_url``, else the web listener as configured."""
    if settings.server.public_url:
        return settings.server.public_url
    print("note: server.public_url is not set; the link names the web listener itself",
          file=sys.stderr)
    scheme = "https" if settings.server.web_cert else "http"
    return f"{scheme}://{settings.server.web_host}:{settings.server.web_port}"


async def _link(ctx: ServerContext, conn: Any, staff_id: str) -> tuple[str, datetime]:
    lifetime = timedelta(hours=ctx.settings.server.password_link_hours)
    token, expires = await issue_link(conn, ctx.audit, staff_id, ctx.clock(), lifetime)
    return link_url(_base(ctx.settings), token), expires


async def _add(args: argparse.Namespace, password: str | None) -> tuple[str, str, datetime]:
    settings = load(args.config)
    async with open_context(settings) as ctx:
        try:
            async with write_transaction(ctx.engine) as conn:
                staff_id = await auth.add_staff(
                    conn,
                    ctx.audit,
                    args.username,
                    args.name or args.username,
                    Role(args.role),
                    password,
                    ctx.clock(),
                    email=args.email,
                )
                if password is not None:
                    return staff_id, "", ctx.clock()
                return staff_id, *await _link(ctx, conn, staff_id)
        except IntegrityError:
            raise CommandError(f"staff member {args.username!r} exists already") from None


def run_staff_add(args: argparse.Namespace) -> int:
    if not 1 <= len(args.username) <= 100:
        raise CommandError("the username must be 1 to 100 characters")
    if len(args.email) > 254 or (args.email and "@" not in args.email):
        raise CommandError("--email must be an e-mail address")
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < MIN_PASSWORD:
            raise CommandError(f"the password must be at least {MIN_PASSWORD} characters")
    staff_id, url, expires = asyncio.run(_add(args, password))
    print(f"added {args.username} ({args.role}), id {staff_id}")
    if url:
        print(f"{args.username} sets a password through this link, once, "
              f"until {expires:%Y-%m-%d %H:%M} UTC:")
        print(url)
    return 0


async def _password_link(args: argparse.Namespace) -> tuple[str, datetime]:
    settings = load(args.config)
    async with open_context(settings) as ctx, write_transaction(ctx.engine) as conn:
        staff = await get_staff_by_username(conn, args.username)
        if staff is None or not staff.active:
            raise CommandError(f"no active staff member {args.username!r}")
        return await _link(ctx, conn, staff.id)


def run_staff_password_link(args: argparse.Namespace) -> int:
    url, expires = asyncio.run(_password_link(args))
    print(f"{args.username} sets a password through this link, once, "
          f"until {expires:%Y-%m-%d %H:%M} UTC:")
    print(url)
    return 0


async def _token(args: argparse.Namespace) -> str:
    settings = load(args.config)
    async with open_context(settings) as ctx:
        now = ctx.clock()
        async with write_transaction(ctx.engine) as conn:
            staff = await get_staff_by_username(conn, args.username)
            if staff is None or not staff.active:
                raise CommandError(f"no active staff member {args.username!r}")
            expires = now + timedelta(days=args.days) if args.days else None
            return await auth.issue_api_token(
                conn, ctx.audit, staff.id, args.label[:200], now, expires
            )


def run_token_create(args: argparse.Namespace) -> int:
    if args.days is not None and args.days < 1:
        raise CommandError("--days must be at least 1")
    print(asyncio.run(_token(args)))
    return 0


async def _list(args: argparse.Namespace) -> list[ApiTokenRecord]:
    settings = load(args.config)
    async with open_context(settings) as ctx, ctx.engine.connect() as conn:
        return await list_api_tokens(conn)


def run_token_list(args: argparse.Namespace) -> int:
    tokens = asyncio.run(_list(args))
    print(f"{'ID':<16}  {'STAFF':<20}  {'CREATED':<20}  {'EXPIRES':<20}  {'STATE':<7}  LABEL")
    for tok in tokens:
        expires = tok.expires_at.strftime("%Y-%m-%d %H:%M") if tok.expires_at else "never"
        print(
            f"{tok.id:<16}  {tok.username[:20]:<20}  "
            f"{tok.created_at.strftime('%Y-%m-%d %H:%M'):<20}  {expires:<20}  "
            f"{'revoked' if tok.revoked else 'active':<7}  {tok.label}"
        )
    return 0


async def _revoke(args: argparse.Namespace) -> ApiTokenRecord | None:
    settings = load(args.config)
    async with open_context(settings) as ctx, write_transaction(ctx.engine) as conn:
        return await auth.revoke_api_token(conn, ctx.audit, args.token_id)


def run_token_revoke(args: argparse.Namespace) -> int:
    token_id = args.token_id.strip().lower()
    if len(token_id) != TOKEN_ID_LENGTH or any(c not in "0123456789abcdef" for c in token_id):
        raise CommandError(
            f"a token id is {TOKEN_ID_LENGTH} hex digits, as `kiosk admin token list` shows"
        )
    args.token_id = token_id
    revoked = asyncio.run(_revoke(args))
    if revoked is None:
        raise CommandError(f"no token with id {token_id}")
    print(f"revoked token {token_id} of {revoked.username}")
    return 0
