"""``kiosk admin audit``: ``verify`` proves the audit chain intact or names the first bad
entry; ``key`` prints the log's public key for people outside; ``privilege-report`` lists
every privileged call of a period with its proof (kiosk.commands.privilege_report)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from kiosk.audit.keys import load_verify_key, log_origin, log_verifier
from kiosk.audit.log import verify
from kiosk.audit.verify import VerifyResult
from kiosk.cli import CommandError
from kiosk.runtime.config import ConfigError, Settings, load_settings
from kiosk.store.db import DatabaseURLError, current_revision, make_engine

T = TypeVar("T")

# Distinct from 1 (could not check at all) so that scripts can tell the two apart.
EXIT_BROKEN = 3


def register_admin(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser(
        "verify",
        help="check every entry and signed checkpoint of the audit chain",
        description="Recompute every hash and link of the audit chain and check every "
        "checkpoint signature with <pki_dir>/audit.pub.",
        epilog=f"Exit status: 0 intact; {EXIT_BROKEN} the chain was tampered with (the first "
        "bad sequence number and what is wrong are printed on stderr); 1 it could not be "
        "checked (no key, no database).",
    )
    v.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    v.set_defaults(func=run_verify)
    k = audit_sub.add_parser(
        "key",
        help="print the audit log's verifier key (for lawyers, auditors and witnesses)",
        description="The C2SP verifier key of the log (<origin>+<key id>+<key>): what "
        "kiosk verify-receipt --key, the verification page and witnesses check against.",
    )
    k.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    k.set_defaults(func=run_key)
    r = audit_sub.add_parser(
        "privilege-report",
        help="every privileged call in a period, with proof; fails if any was monitored",
        description="Verify the chain, then list every defence-counsel and police call "
        "granted in [--from, --to] with its route, control, refused monitor attempts and the "
        "inclusion proof of its entries in the newest signed checkpoint.",
        epilog="Dates are whole days in UTC (2026-12-07) or ISO date-times with an offset. "
        "Exit status: 0 every privileged call was peer to peer with nobody attached; 3 one "
        "was not, a proof fails, or the chain is broken; 1 it could not be checked.",
    )
    r.add_argument("--from", dest="start", required=True)
    r.add_argument("--to", dest="end", required=True)
    r.add_argument("--out", type=Path, default=None, help="write each call's receipt here")
    r.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    r.set_defaults(func=run_report)


async def _verify(url: str, pki_dir: Path) -> VerifyResult:
    public_key = load_verify_key(pki_dir)
    engine = make_engine(url)
    try:
        if await current_revision(engine) is None:
            raise CommandError("the database has no schema; run: kiosk admin db upgrade")
        return await verify(engine, public_key)
    finally:
        await engine.dispose()


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc


def _run(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``, turning what can go wrong reading the chain into one line."""
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        return asyncio.run(work)
    except FileNotFoundError as exc:
        raise CommandError(f"{exc}; run: kiosk admin ca init") from exc
    except DatabaseURLError as exc:
        raise CommandError(str(exc)) from exc
    except (SQLAlchemyError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"cannot read the audit chain at {shown}: {reason}") from exc


def run_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    result = _run(settings, _verify(settings.database_url, settings.pki_dir))
    if not result.ok:
        print(f"kiosk: {result.summary()}", file=sys.stderr)
        return EXIT_BROKEN
    print(result.summary())
    return 0


def run_key(args: argparse.Namespace) -> int:
    settings = _settings(args)
    origin = log_origin(settings.audit.origin, settings.server.public_url)
    try:
        print(log_verifier(settings.pki_dir, origin).vkey())
    except FileNotFoundError as exc:
        raise CommandError(f"{exc}; run: kiosk admin ca init") from exc
    return 0


async def _report(settings: Settings, args: argparse.Namespace) -> int:
    from kiosk.commands.privilege_report import parse_when, report

    start, end = parse_when(args.start, False), parse_when(args.end, True)
    if end <= start:
        raise CommandError("--to must be after --from")
    engine = make_engine(settings.database_url)
    try:
        if await current_revision(engine) is None:
            raise CommandError("the database has no schema; run: kiosk admin db upgrade")
        return await report(engine, settings.pki_dir, start, end, args.out, datetime.now(UTC))
    finally:
        await engine.dispose()


def run_report(args: argparse.Namespace) -> int:
    settings = _settings(args)
    return _run(settings, _report(settings, args))
