"""Proofs, published checkpoints, cosignatures and receipts, read from the database.

The thin I/O half of ``kiosk.audit.merkle``, ``note`` and ``receipt``: which
stored subtrees a proof needs is pure, they are read in one query, and the
proof is assembled from them. Everything here serves people outside the
prison (lawyers, auditors, witnesses) and holds hashes, ids and times only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.audit import merkle, sql
from kiosk.audit.chain import Entry
from kiosk.audit.log import AuditLog
from kiosk.audit.note import NoteError, Verifier, cosignature_time, parse_note
from kiosk.audit.receipt import ENDED, build_receipt, matters
from kiosk.audit.verify import StoredHead

# A call's entries are looked for this long before its row was made and after it ended
# (the clock of another server process may differ a little).
MARGIN = timedelta(minutes=10)
# A cosignature from further in the future than this is refused.
CLOCK_SKEW = timedelta(minutes=10)


class BeyondLog(Exception):
    """A proof was asked for a tree larger than the stored one (it grows with each checkpoint)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the log's tree has {size} entries so far")
        self.size = size


class CosignatureRefused(Exception):
    def __init__(self, unknown: bool, message: str) -> None:
        super().__init__(message)
        self.unknown = unknown


async def _nodes(
    conn: AsyncConnection, needed: list[merkle.Node], size: int
) -> merkle.SubtreeHash:
    stored = await sql.tree_size(conn)
    if size > stored:
        raise BeyondLog(stored)
    return merkle.subtree_hash_from(await sql.read_nodes(conn, needed))


async def inclusion_proof(conn: AsyncConnection, seq: int, size: int) -> list[bytes]:
    """The proof that entry ``seq`` is leaf ``seq - 1`` of the tree of ``size`` entries."""
    needed = merkle.nodes_for_inclusion(seq - 1, size)  # ProofError if out of range
    return merkle.inclusion_path(seq - 1, size, await _nodes(conn, needed, size))


async def consistency_proof(conn: AsyncConnection, old: int, new: int) -> list[bytes]:
    needed = merkle.nodes_for_consistency(old, new)
    return merkle.consistency_path(old, new, await _nodes(conn, needed, new))


async def published(conn: AsyncConnection, head: StoredHead) -> str:
    """The signed tree head as published: the log's note with the witnesses' lines."""
    return head.note + "".join(await sql.cosignature_lines(conn, head.size))


async def latest_checkpoint(conn: AsyncConnection) -> str | None:
    head = await sql.head_at_or_after(conn, 0)
    return None if head is None else await published(conn, head)


async def add_cosignature(
    engine: AsyncEngine, size: int, line: str, witnesses: Sequence[Verifier], now: datetime
) -> bool:
    """Store a witness's cosignature line of the tree head of ``size``; False if known.

    LookupError: no tree head of that size. CosignatureRefused: not a configured
    witness, or the signature does not verify.
    """
    async with engine.begin() as conn:
        head = await sql.head_of_size(conn, size)
        if head is None:
            raise LookupError(f"no checkpoint of size {size}")
        try:
            note = parse_note(head.note + line.rstrip("\n") + "\n")
        except NoteError as exc:
            raise CosignatureRefused(False, f"not a signature line: {exc}") from None
        sig = note.signatures[-1]
        witness = next((w for w in witnesses if w.matches(sig)), None)
        if witness is None:
            raise CosignatureRefused(True, f"{sig.name} is not a witness of this log")
        timestamp = cosignature_time(note.text, sig, witness)
        if timestamp is None or timestamp > (now + CLOCK_SKEW).timestamp():
            raise CosignatureRefused(False, f"the cosignature of {sig.name} does not verify")
        return await sql.insert_cosignature(conn, size, sig, now)


@dataclass(frozen=True)
class CallSpan:
    """Where a call's entries are: its id, when its row was made, when it ended."""

    id: str
    created_at: datetime
    ended_at: datetime


async def call_entries(conn: AsyncConnection, call: CallSpan, now: datetime) -> list[Entry]:
    """The entries of ``call`` a receipt holds, oldest first."""
    start = call.created_at - MARGIN
    window = sql.entries_between(conn, start, call.ended_at + MARGIN)
    mine = [e async for e in window if matters(e, call.id)]
    if not any(e.action in ENDED for e in mine):
        # Closed out by a server that started long after the call (a restart).
        later = sql.entries_between(conn, start, now + MARGIN)
        mine = [e async for e in later if matters(e, call.id)]
    return mine


async def call_receipt(
    engine: AsyncEngine, audit: AuditLog, call: CallSpan, now: datetime
) -> dict[str, Any] | None:
    """The receipt of an ended call against the newest checkpoint (made now if none holds
    its entries yet); None if the log has no entries of it."""
    async with engine.connect() as conn:
        entries = await call_entries(conn, call, now)
        if not entries:
            return None
        newest = max(e.seq for e in entries)
        head = await sql.head_at_or_after(conn, newest)
    if head is None:
        await audit.checkpoint_now()
    async with engine.connect() as conn:
        head = await sql.head_at_or_after(conn, newest)
        if head is None:
            return None
        proofs = {e.seq: await inclusion_proof(conn, e.seq, head.size) for e in entries}
        checkpoint = await published(conn, head)
    return build_receipt(call.id, entries, proofs, checkpoint, now)
