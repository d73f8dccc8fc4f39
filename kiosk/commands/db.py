"""``kiosk admin db upgrade``: bring the database to the newest schema."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from kiosk.cli import CommandError
from kiosk.runtime.config import ConfigError, load_settings
from kiosk.store.db import DatabaseURLError, current_revision, head_revision, make_engine, upgrade


def register_admin(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser(
        "upgrade",
        help="migrate the database to the newest schema (safe to repeat)",
        description="Run the Alembic migrations up to the newest revision. "
        "Safe to run again: an up-to-date database is left as it is.",
    )
    up.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    up.set_defaults(func=run_upgrade)


async def _upgrade(url: str) -> str | None:
    await upgrade(url)
    engine = make_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


def run_upgrade(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    url = settings.database_url
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        revision = asyncio.run(_upgrade(url))
    except DatabaseURLError as exc:
        raise CommandError(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"cannot upgrade the database at {shown}: {reason}") from exc
    print(f"database at {shown} is at revision {revision} (newest: {head_revision()})")
    return 0
