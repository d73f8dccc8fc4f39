"""``kiosk verify-receipt FILE --key PUB``: check a privileged call's receipt offline (issue 18).

With ``--log URL`` it also asks the prison's server for its newest
checkpoint and the consistency proof from the receipt's: a receipt issued
before a rewrite of history is caught there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.audit.note import (
    COSIGNATURE_V1,
    ED25519,
    NoteError,
    Verifier,
    open_checkpoint,
    parse_log_key,
    parse_vkey,
    verifier_for,
)
from kiosk.audit.receipt import verify_receipt
from kiosk.cli import CommandError

EXIT_NOT_VERIFIED = 3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify-receipt",
        help="check a privileged call's receipt offline",
        description="Check a defence-counsel or police call's receipt: the prison's signature "
        "on its checkpoint, each entry's inclusion proof, and what the entries say (peer to "
        "peer, nobody attached, refused monitor attempts).",
        epilog=f"Exit status: 0 verified; {EXIT_NOT_VERIFIED} not verified (what fails is "
        "printed on stderr); 1 it could not be checked (unreadable file or key, no network).",
    )
    p.add_argument("file", type=Path, help="the receipt (JSON)")
    p.add_argument(
        "--key", required=True,
        help="the prison's audit key: a file with its verifier key or PEM (audit.pub), or "
        "the verifier key itself",
    )
    p.add_argument(
        "--witness", action="append", default=[],
        help="a witness's verifier key (or a file with it) whose cosignature is required",
    )
    p.add_argument("--log", help="the prison's server: also check the log was not rewritten since")
    p.add_argument("--cafile", type=Path, help="trust anchor for --log (the prison's CA)")
    p.set_defaults(func=run)


def read_key_text(value: str) -> str:
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {value}: {exc.strerror}") from exc
    return value


def log_key(value: str) -> Verifier | Ed25519PublicKey:
    try:
        return parse_log_key(read_key_text(value))
    except NoteError as exc:
        raise CommandError(f"--key: {exc}") from exc


def witness_key(value: str) -> Verifier:
    try:
        key = parse_vkey(read_key_text(value))
    except NoteError as exc:
        raise CommandError(f"--witness: {exc}") from exc
    if key.kind != COSIGNATURE_V1:
        raise CommandError(f"--witness: {key.name} is not a witness (cosignature) key")
    return key


def _later(url: str, cafile: Path | None, data: Any, key: Verifier | Ed25519PublicKey) -> Any:
    from kiosk.commands.logclient import LogClient

    client = LogClient(url, cafile)
    newest = client.checkpoint()
    try:
        origin = newest.split("\n", 1)[0]
        verifier = key if isinstance(key, Verifier) else verifier_for(origin, ED25519, key)
        size = open_checkpoint(newest, verifier)[1].size
        old = int(str(data["checkpoint"]).split("\n")[1])
    except (NoteError, ValueError, IndexError, KeyError, TypeError):
        return newest, []  # verify_receipt names what is wrong
    return newest, client.consistency(old, size) if size >= old else []


def run(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
    except ValueError:
        print(f"kiosk: NOT VERIFIED: {args.file} is not JSON", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    key = log_key(args.key)
    witnesses = [witness_key(w) for w in args.witness]
    later = _later(args.log, args.cafile, data, key) if args.log else None
    verdict = verify_receipt(data, key, witnesses, later)
    if not verdict.ok:
        print(f"kiosk: {verdict.summary()}", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    print(verdict.summary())
    return 0
