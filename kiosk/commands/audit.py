"""``kiosk admin audit verify``: prove the audit chain intact, or name the first bad entry."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from kiosk.audit.keys import load_verify_key
from kiosk.audit.log import verify
from kiosk.audit.verify import VerifyResult
from kiosk.cli import CommandError
from kiosk.runtime.config import ConfigError, load_settings
from kiosk.store.db import DatabaseURLError, current_revision, make_engine

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


async def _verify(url: str, pki_dir: Path) -> VerifyResult:
    public_key = load_verify_key(pki_dir)
    engine = make_engine(url)
    try:
        if await current_revision(engine) is None:
            raise CommandError("the database has no schema; run: kiosk admin db upgrade")
        return await verify(engine, public_key)
    finally:
        await engine.dispose()


def run_verify(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        result = asyncio.run(_verify(settings.database_url, settings.pki_dir))
    except FileNotFoundError as exc:
        raise CommandError(f"{exc}; run: kiosk admin ca init") from exc
    except DatabaseURLError as exc:
        raise CommandError(str(exc)) from exc
    except (SQLAlchemyError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"cannot read the audit chain at {shown}: {reason}") from exc
    if not result.ok:
        print(f"kiosk: {result.summary()}", file=sys.stderr)
        return EXIT_BROKEN
    print(result.summary())
    return 0
