"""The audit log on the database: the appender, with its Merkle tree and checkpoints.

One ``AuditLog`` per process appends entries to the chain and keeps the right
edge of the Merkle tree in memory; the tree's rows are written with each
checkpoint, in the checkpoint's transaction. It signs a checkpoint — the
chain checkpoint and a C2SP tree head — every ``checkpoint_every`` entries,
when asked (``checkpoint_now``: a privileged call ended, R13), every
``checkpoint_seconds`` (``run_timer``, the server only) and at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.audit import sql
from kiosk.audit.chain import (
    AUDIT_LOCK_KEY,
    LOCK_WAIT_S,
    Entry,
    check_entry_input,
    make_entry,
    sign_checkpoint,
)
from kiosk.audit.keys import FALLBACK_ORIGIN, load_signing_key, load_verify_key
from kiosk.audit.merkle import Frontier
from kiosk.audit.note import TreeHead, sign_note
from kiosk.audit.verify import ChainVerifier, VerifyResult
from kiosk.runtime.logs import get_logger
from kiosk.store.db import write_transaction

log = get_logger(__name__)

__all__ = ["AuditLog", "load_signing_key", "load_verify_key", "read_entries", "verify"]


class _TailMoved(Exception):
    """Another writer appended (or a caller's transaction rolled back) since we read the tail."""


@dataclass(frozen=True)
class _Tail:
    seq: int
    hash: str
    frontier: Frontier  # the right edge of the tree of entries 1..seq
    # Tree rows of entries after the last checkpoint, written with the next one.
    pending: list[tuple[int, bytes]] = field(default_factory=list)


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        # One appender at a time across processes, until this transaction ends:
        # no other process can link to an entry that may still roll back.
        await conn.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))


async def _bounded_wait(own: AsyncConnection) -> None:
    if own.dialect.name == "postgresql":
        # Waiting for another appender is normal; waiting forever is not.
        await own.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT_S}s'"))


async def _load_tail(conn: AsyncConnection) -> _Tail:
    """The newest entry and the tree's right edge, writing the tree rows still missing:
    those of entries after the last checkpoint (a crash, another process), or of entries
    written before the tree existed."""
    seq, hash_ = await sql.read_tail(conn)
    size = await sql.tree_size(conn)
    if size > seq:
        raise RuntimeError(
            f"the audit tree has {size} leaves but the chain ends at seq {seq}: "
            "entries were removed; run kiosk admin audit verify"
        )
    frontier = Frontier(size, [])
    try:
        nodes = await sql.read_nodes(conn, Frontier.nodes(size))
        frontier.hashes = [nodes[n] for n in Frontier.nodes(size)]
    except KeyError:
        # Rows were removed from the stored tree (verify names them): appending goes
        # on, with the edge recomputed from the entries themselves.
        log.error("the stored audit tree is damaged; its edge is recomputed from the entries")
        frontier = Frontier()
        await _extend(conn, frontier, size, write=False)
    if seq - size > sql.PAGE:  # the first start after the tree came: worth saying
        log.info("building the audit tree of older entries", start=size + 1, end=seq)
    await _extend(conn, frontier, seq, write=True)
    return _Tail(seq, hash_, frontier)


async def _extend(conn: AsyncConnection, frontier: Frontier, seq: int, write: bool) -> None:
    """Grow ``frontier`` with the entries up to ``seq``, writing their tree rows if asked."""
    while frontier.size < seq:
        batch = []
        page = min(sql.PAGE, seq - frontier.size)
        for entry in await sql.entries_after(conn, frontier.size, page):
            if entry.seq != frontier.size + 1:
                raise RuntimeError(f"audit entry {frontier.size + 1} is missing")
            batch.append((entry.seq, b"".join(frontier.append(entry.leaf()))))
        if write:
            await sql.insert_tree_rows(conn, batch)


class AuditLog:
    """Appends to the chain; one per server process (it keeps the tail in memory).

    ``append(..., conn=c)`` writes inside the caller's transaction, so that a
    decision and its audit entry commit or roll back together. Each insert
    only succeeds if the entry it links to is still the newest, so a rolled
    back caller or a second writer never leaves a gap or a fork: the log
    rereads the tail and tries again. Writers take turns: on PostgreSQL an
    advisory lock held until the appending transaction ends, on SQLite the
    database's write lock.

    So a task that holds a write transaction must pass it as ``conn``:
    appending on a second connection would wait for the task's own
    transaction, and fail after the lock timeout (``LOCK_WAIT_S``, or SQLite's
    busy timeout).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        signing_key: Ed25519PrivateKey,
        checkpoint_every: int = 100,
        clock: Callable[[], datetime] | None = None,
        origin: str = FALLBACK_ORIGIN,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._engine = engine
        self._key = signing_key
        self._every = checkpoint_every
        self._clock = clock or (lambda: datetime.now(UTC))
        self.origin = origin
        self._lock = asyncio.Lock()
        self._tail: _Tail | None = None  # read once, then kept

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    async def append(
        self,
        actor: str,
        action: str,
        subjects: Mapping[str, str],
        details: Mapping[str, Any] | None = None,
        conn: AsyncConnection | None = None,
    ) -> int:
        """Add one entry; returns its sequence number. ValueError for personal data."""
        details = {} if details is None else details
        check_entry_input(actor, action, subjects, details)
        if conn is not None:
            try:
                async with self._lock:
                    return await self._append_in(conn, actor, action, subjects, details)
            except (_TailMoved, IntegrityError):
                # Another process took the seq inside the caller's transaction.
                self._tail = None
                raise
        for _ in range(5):
            try:
                # The database's write lock first, then this log's: the order every caller
                # that passes its own transaction has, so that no two wait for each other.
                async with write_transaction(self._engine) as own:
                    await _bounded_wait(own)
                    async with self._lock:
                        seq = await self._append_in(own, actor, action, subjects, details)
                return seq
            except (_TailMoved, IntegrityError):
                self._tail = None
        raise RuntimeError("could not append to the audit chain: the tail keeps moving")

    async def _append_in(
        self,
        conn: AsyncConnection,
        actor: str,
        action: str,
        subjects: Mapping[str, str],
        details: Mapping[str, Any],
    ) -> int:
        await _lock(conn)
        for _ in range(3):
            if self._tail is None:
                self._tail = await _load_tail(conn)
            tail = self._tail
            entry = make_entry(tail.seq + 1, self._clock(), actor, action, subjects, details,
                               tail.hash)
            if await sql.insert_after_tail(conn, entry):
                # Until this line succeeds the kept tail is unset: a failure rereads it.
                self._tail = None
                grown = self._grow(entry, tail)
                if entry.seq % self._every == 0:
                    await self._sign(conn, entry, grown, (False, False))
                    grown.pending.clear()
                # If a caller's transaction rolls back, the next insert sees that
                # its link is gone and rereads the tail (pending rows and all).
                self._tail = grown
                return entry.seq
            self._tail = None
        raise _TailMoved

    def _grow(self, entry: Entry, tail: _Tail) -> _Tail:
        """The tail after ``entry``: its leaf joins the tree's edge in memory, and its row
        waits for the next checkpoint, when the rows go in one statement. Rows a crash
        leaves unwritten are rebuilt from the entries (``_load_tail``): they are derived."""
        frontier = tail.frontier.copy()
        row = b"".join(frontier.append(entry.leaf()))
        tail.pending.append((entry.seq, row))
        return _Tail(entry.seq, entry.hash, frontier, tail.pending)

    async def _sign(
        self, conn: AsyncConnection, entry: Entry, tail: _Tail, done: tuple[bool, bool]
    ) -> None:
        if tail.pending:
            # Another process may have rebuilt some of them meanwhile (its _load_tail).
            stored = await sql.tree_size(conn)
            await sql.insert_tree_rows(conn, [r for r in tail.pending if r[0] > stored])
        at = self._clock()
        if not done[0]:
            await sql.insert_checkpoint(conn, sign_checkpoint(entry, at, self._key))
        if not done[1]:
            head = TreeHead(self.origin, entry.seq, tail.frontier.root())
            note = sign_note(head.text(), self.origin, self._key)
            await sql.insert_head(conn, entry.seq, at, note.render())

    async def checkpoint(self) -> int:
        """Sign the newest entry now (nothing to do if it is already signed); its seq.

        RuntimeError if the newest entry was changed behind this server's back.
        """
        async with write_transaction(self._engine) as conn, self._lock:
            await _bounded_wait(conn)
            await _lock(conn)
            seq, _ = await sql.read_tail(conn)
            if seq == 0:
                return 0
            done = await sql.signed_at(conn, seq)
            if all(done):
                return seq
            entry = await sql.entry_at(conn, seq)
            known = self._tail is not None and self._tail.seq == seq
            if (
                entry is None
                or entry.computed_hash() != entry.hash
                or (known and self._tail is not None and self._tail.hash != entry.hash)
            ):
                # Never sign what someone else may have rewritten.
                raise RuntimeError(
                    f"audit entry {seq} is not what this server wrote; "
                    "run kiosk admin audit verify"
                )
            self._tail = None
            tail = await _load_tail(conn)  # writes the rows still missing
            await self._sign(conn, entry, tail, done)
            self._tail = tail
            return seq

    async def checkpoint_now(self) -> None:
        """"Checkpoint now": a privileged call ended, and its receipt needs a signed tree
        head that holds its entries (R13). A failure is logged, never raised: ending
        a call must not depend on it (the next checkpoint covers the entries)."""
        try:
            await self.checkpoint()
        except Exception:
            log.exception("audit checkpoint failed")

    async def run_timer(self, every_s: float) -> None:
        """Checkpoint every ``every_s`` seconds while entries come in (the server's task)."""
        while True:
            await asyncio.sleep(every_s)
            await self.checkpoint_now()

    async def close(self) -> None:
        """The shutdown checkpoint: after it, truncation of any entry is detectable.

        Entries appended afterwards (a call ending during shutdown) are still
        written, never lost; closing again signs them too.
        """
        await self.checkpoint()


async def read_entries(engine: AsyncEngine, after_seq: int = 0, limit: int = 100) -> list[Entry]:
    """Entries with seq > ``after_seq``, oldest first (for the staff API)."""
    async with engine.connect() as conn:
        return await sql.entries_after(conn, after_seq, limit)


async def verify(engine: AsyncEngine, public_key: Ed25519PublicKey) -> VerifyResult:
    """Stream the chain and check it, its checkpoints and the stored tree (bounded memory)."""
    async with engine.connect() as conn:
        checkpoints = await sql.all_checkpoints(conn)
        heads = await sql.all_heads(conn)
        rows = await sql.tree_size(conn)
    verifier = ChainVerifier(checkpoints, heads, public_key, stored_rows=rows)
    stream = sql.entries_with_tree(engine)
    try:
        async for entry, tree in stream:
            verifier.feed(entry, tree)
            if verifier.done:
                break
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    return verifier.result()
