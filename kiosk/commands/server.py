"""``kiosk server --config FILE``: the signalling server (web listener)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from kiosk.cli import CommandError
from kiosk.runtime.config import ConfigError, Settings, load_settings
from kiosk.runtime.logs import configure


def register(sub: Any) -> None:
    p = sub.add_parser(
        "server",
        help="run the signalling server",
        description="Run the server: staff API and pages on the web listener. "
        "Stops cleanly on SIGINT or SIGTERM (the audit chain is checkpointed).",
    )
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    p.set_defaults(func=run_server)


def load(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc


def run_server(args: argparse.Namespace) -> int:
    settings = load(args.config)
    refusal = settings.cluster_refusal()
    if refusal is not None:
        raise CommandError(f"cannot start the server: {refusal}")
    configure(settings.log.level, json=settings.log.format == "json")
    from kiosk.runtime.open_files import OpenFilesError
    from kiosk.signalling.process import run

    try:
        asyncio.run(run(settings))
    except OpenFilesError as exc:
        raise CommandError(f"cannot start the server: {exc}") from exc
    except OSError as exc:
        raise CommandError(f"cannot start the server: {exc.strerror or exc}") from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"cannot open the database: {reason}") from exc
    return 0
