"""The ``kiosk`` command. Each subcommand lives in its own module under
``kiosk/commands/`` and registers itself; this file only wires them up.

A module there defines ``register(sub)`` for a top-level command and/or
``register_admin(sub)`` for a ``kiosk admin`` command; each parser sets
``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import kiosk.commands


class CommandError(Exception):
    """A command failed for a reason the operator can act on: one line on stderr."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk", description="Prison video calls: server, tablet agent and administration."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    admin = sub.add_parser(
        "admin", help="administration: CA, staff, tokens, devices, database, audit"
    )
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    for info in sorted(pkgutil.iter_modules(kiosk.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"kiosk.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_admin"):
            module.register_admin(admin_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except CommandError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
