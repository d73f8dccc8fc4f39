"""``kiosk witness``: a minimal outside witness of a prison's audit log (issue 18).

Run by someone the prison does not control (a bar association, say), e.g.
every few minutes from a timer:

- ``kiosk witness init --state-dir DIR --name NAME`` makes the witness's key
  (``DIR/witness.key``, 0600) and prints its verifier key for the prison's
  ``[audit] witnesses``.
- ``kiosk witness cosign --state-dir DIR --log URL --log-key KEY`` fetches the
  log's newest checkpoint and the consistency proof from the last one this
  witness cosigned, and cosigns (posting the cosignature back to the log)
  only if the log only grew. A fork or a rollback is refused, exit status 3,
  and remembered: the witness never cosigns that log's other branch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit.note import (
    COSIGNATURE_V1,
    ED25519,
    NoteError,
    Verifier,
    check_name,
    parse_log_key,
    verifier_for,
)
from kiosk.audit.witness import Cosign, WitnessState, consider
from kiosk.cli import CommandError
from kiosk.commands.receipt import read_key_text
from kiosk.crypto.keys import load_ed25519_private_key, save_private_key, write_secret

EXIT_REFUSED = 3
KEY_FILE = "witness.key"
ABOUT_FILE = "witness.json"  # the witness's name
STATE_FILE = "state.json"  # per log origin: the last checkpoint cosigned


def register(sub: Any) -> None:
    p = sub.add_parser("witness", help="an outside witness that cosigns the audit log")
    wsub = p.add_subparsers(dest="witness_command", required=True)
    init = wsub.add_parser("init", help="make the witness's key and print its verifier key")
    init.add_argument("--state-dir", type=Path, required=True)
    init.add_argument("--name", required=True, help="e.g. advokatforeningen.no/witness")
    init.set_defaults(func=run_init)
    cosign = wsub.add_parser(
        "cosign",
        help="cosign the log's newest checkpoint if the log only grew",
        epilog=f"Exit status: 0 cosigned (or nothing new); {EXIT_REFUSED} refused (a fork or "
        "a rollback: the reason is on stderr); 1 it could not be checked.",
    )
    cosign.add_argument("--state-dir", type=Path, required=True)
    cosign.add_argument("--log", required=True, help="the prison's server, https://…")
    cosign.add_argument(
        "--log-key", required=True, help="the log's verifier key (or a file with it)"
    )
    cosign.add_argument("--cafile", type=Path, help="trust anchor for --log (the prison's CA)")
    cosign.set_defaults(func=run_cosign)


def run_init(args: argparse.Namespace) -> int:
    key_path = args.state_dir / KEY_FILE
    try:
        name = check_name(args.name)
    except NoteError as exc:
        raise CommandError(f"--name: {exc}") from exc
    if key_path.exists():
        raise CommandError(f"{key_path} exists already; this directory has a witness")
    key = Ed25519PrivateKey.generate()
    save_private_key(key_path, key)
    write_secret(args.state_dir / ABOUT_FILE, json.dumps({"name": name}).encode())
    vkey = verifier_for(name, COSIGNATURE_V1, key.public_key()).vkey()
    (args.state_dir / "witness.vkey").write_text(vkey + "\n", encoding="utf-8")
    print(vkey)
    return 0


def _load(state_dir: Path) -> tuple[str, Ed25519PrivateKey, dict[str, Any]]:
    try:
        name = json.loads((state_dir / ABOUT_FILE).read_text(encoding="utf-8"))["name"]
        key = load_ed25519_private_key(state_dir / KEY_FILE)
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(f"{state_dir} is not a witness (run kiosk witness init): {exc}") from exc
    path = state_dir / STATE_FILE
    states: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return str(name), key, states


def run_cosign(args: argparse.Namespace) -> int:
    from kiosk.commands.logclient import LogClient

    name, key, states = _load(args.state_dir)
    try:
        given = parse_log_key(read_key_text(args.log_key))
    except NoteError as exc:
        raise CommandError(f"--log-key: {exc}") from exc
    client = LogClient(args.log, args.cafile)
    checkpoint = client.checkpoint()
    origin = checkpoint.split("\n", 1)[0]
    log: Verifier = given if isinstance(given, Verifier) else verifier_for(origin, ED25519, given)
    try:
        state = WitnessState.from_json(states[log.name]) if log.name in states else None
        size = int(checkpoint.split("\n")[1])
    except (NoteError, ValueError, IndexError) as exc:
        raise CommandError(f"cannot read the checkpoint or the state: {exc}") from exc
    proof = client.consistency(state.size, size) if state and 0 < state.size < size else []
    decision = consider(state, checkpoint, log, proof, name, key, int(time.time()))
    if not isinstance(decision, Cosign):
        print(f"kiosk: witness refuses to cosign {log.name}: {decision.reason}", file=sys.stderr)
        return EXIT_REFUSED
    # Remember before telling anyone: this witness must never sign an older branch later.
    states[log.name] = decision.state.to_json()
    write_secret(args.state_dir / STATE_FILE, json.dumps(states, indent=2).encode())
    client.cosign(decision.state.size, decision.signature.line())
    grew = "grew to" if decision.grew else "still at"
    print(f"cosigned {log.name}: the log {grew} size {decision.state.size}")
    return 0
