"""``kiosk admin audit privilege-report --from --to``: every privileged call of a period,
with its route, refused monitor attempts and proof; fails if any had a bridge or a monitor.

The chain is verified first (a report over a tampered log would prove
nothing); then each call's entries are proven in the newest signed
checkpoint exactly as its receipt would be, and checked by the same code as
``kiosk verify-receipt``. ``--out DIR`` writes each call's receipt there.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.audit import sql
from kiosk.audit.keys import load_verify_key
from kiosk.audit.log import verify
from kiosk.audit.proofs import inclusion_proof, published
from kiosk.audit.receipt import build_receipt, verify_receipt
from kiosk.audit.report import PrivilegedCall, PrivilegeReport
from kiosk.cli import CommandError

EXIT_FLAGGED = 3
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)


def parse_when(text: str, end_of_day: bool) -> datetime:
    """``2026-12-07`` (a whole day, UTC) or an ISO date-time with an offset."""
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end_of_day else day
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date (2026-12-07) or date-time") from None
    if at.tzinfo is None:
        raise CommandError(f"{text!r} has no time zone offset")
    return at.astimezone(UTC)


def _write(out: Path, name: str, data: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


async def _proof_line(engine: AsyncEngine, call: PrivilegedCall, key: Ed25519PublicKey,
                      out: Path | None, now: datetime) -> str:
    async with engine.connect() as conn:
        head = await sql.head_at_or_after(conn, max(call.seqs))
        if head is None:
            return "proof: not yet in a signed checkpoint"
        entries = [e for e in [await sql.entry_at(conn, s) for s in call.seqs] if e is not None]
        proofs = {e.seq: await inclusion_proof(conn, e.seq, head.size) for e in entries}
        checkpoint = await published(conn, head)
    receipt = build_receipt(call.call, entries, proofs, checkpoint, now)
    verdict = verify_receipt(receipt, key)
    if out is not None:
        await asyncio.to_thread(_write, out, f"receipt-{call.call}.json", receipt)
    if verdict.proven:  # what the entries say is judged above (PrivilegedCall.flags)
        return f"proof: entries {', '.join(map(str, call.seqs))} in checkpoint of size {head.size}"
    return "proof FAILS: " + "; ".join(verdict.problems)


async def report(engine: AsyncEngine, pki_dir: Path, start: datetime, end: datetime,
                 out: Path | None, now: datetime) -> int:
    key = load_verify_key(pki_dir)
    checked = await verify(engine, key)
    if not checked.ok:
        print(f"kiosk: no report: {checked.summary()}", file=sys.stderr)
        return EXIT_FLAGGED
    gathered = PrivilegeReport(start, end)
    async with engine.connect() as conn:
        async for entry in sql.entries_between(conn, start, FAR_FUTURE):
            gathered.feed(entry)
    calls = sorted(gathered.calls.values(), key=lambda c: c.granted_at)
    print(f"Privileged calls (defence counsel, police) granted from {start.isoformat()} "
          f"to {end.isoformat()}: {len(calls)}. {checked.summary()}.")
    failed = False
    for call in calls:
        proof = await _proof_line(engine, call, key, out, now)
        failed = failed or proof.startswith("proof FAILS")
        print(f"{call.line()}\n    {proof}")
    flagged = gathered.flagged
    refused = sum(c.refused for c in calls)
    if flagged or failed:
        print(f"kiosk: {len(flagged)} privileged calls had a bridge, control or a monitor; "
              f"{'some proofs fail' if failed else 'every proof holds'}", file=sys.stderr)
        return EXIT_FLAGGED
    print(f"Every privileged call was peer to peer with nobody attached; {refused} monitor "
          "attempts were refused.")
    return 0
