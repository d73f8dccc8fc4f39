"""``kiosk demo [--data-dir DIR]``: everything on one machine with SQLite."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from kiosk.cli import CommandError
from kiosk.runtime.logs import configure


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run everything on this machine with demo data",
        description="Create DIR (database, CA and keys), start the server on loopback with a "
        "demo facility, staff, inmates, contacts and bookings, print the URLs and logins and "
        "write them to DIR/demo.json. Re-running starts the demo data over (keys are kept). "
        "Ctrl-C stops it.",
    )
    p.add_argument("--data-dir", type=Path, default=Path("demo-data"), help="default: ./demo-data")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="web port (0: any free port)")
    p.add_argument("--device-port", type=int, default=8444, help="tablets' port (0: any free port)")
    p.add_argument(
        "--tablet-port", type=int, default=8080, help="the simulated tablet's kiosk page port"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kiosk.demo import run_demo
    from kiosk.demo_seed import DemoError
    from kiosk.runtime.open_files import OpenFilesError

    configure("info", json=False)
    try:
        asyncio.run(
            run_demo(
                args.data_dir,
                host=args.host,
                port=args.port,
                device_port=args.device_port,
                tablet_port=args.tablet_port,
            )
        )
    except DemoError as exc:
        raise CommandError(str(exc)) from exc
    except OpenFilesError as exc:
        raise CommandError(f"cannot start the demo: {exc}") from exc
    except OSError as exc:
        raise CommandError(f"cannot start the demo: {exc.strerror or exc}") from exc
    return 0
