"""The audit chain on the database: the appender, reading and verifying, the key files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Text, exists, func, insert, literal, select, text, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.audit.chain import (
    AUDIT_KEY_FILE,
    AUDIT_LOCK_KEY,
    AUDIT_PUBLIC_KEY_FILE,
    GENESIS,
    LOCK_WAIT_S,
    Checkpoint,
    Entry,
    VerifyResult,
    check_entry_input,
    make_entry,
    sign_checkpoint,
    verify_chain,
)
from kiosk.crypto.keys import (
    load_ed25519_private_key,
    load_ed25519_public_key,
    load_or_create_ed25519,
)
from kiosk.store.db import write_transaction
from kiosk.store.schema import audit_checkpoints, audit_entries

# --- keys --------------------------------------------------------------------------


def load_signing_key(pki_dir: Path) -> Ed25519PrivateKey:
    """The server's checkpoint key, created (with ``audit.pub``) on first use."""
    return load_or_create_ed25519(pki_dir / AUDIT_KEY_FILE)


def load_verify_key(pki_dir: Path) -> Ed25519PublicKey:
    """``audit.pub`` (or the public half of ``audit.key``); FileNotFoundError if neither."""
    pub = pki_dir / AUDIT_PUBLIC_KEY_FILE
    if pub.exists():
        return load_ed25519_public_key(pub)
    key = pki_dir / AUDIT_KEY_FILE
    if key.exists():
        return load_ed25519_private_key(key).public_key()
    raise FileNotFoundError(f"no audit key in {pki_dir} ({AUDIT_PUBLIC_KEY_FILE})")


# --- the log on the database -------------------------------------------------------------


class _TailMoved(Exception):
    """Another writer appended (or a caller's transaction rolled back) since we read the tail."""


# A value that cannot be read back is tampering too: it must be named by
# verify, not crash it. So rows are read raw and parsed here, and whatever
# does not parse is kept as it is, so that its hash cannot match.
_UNREADABLE_TIME = datetime.min.replace(tzinfo=UTC)


def _raw_json(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _raw_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return _UNREADABLE_TIME
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_ENTRY_COLUMNS = (
    audit_entries.c.seq,
    type_coerce(audit_entries.c.at, Text()).label("at"),
    audit_entries.c.actor,
    audit_entries.c.action,
    type_coerce(audit_entries.c.subjects, Text()).label("subjects"),
    type_coerce(audit_entries.c.details, Text()).label("details"),
    audit_entries.c.prev_hash,
    audit_entries.c.hash,
)


def _row_entry(row: Any) -> Entry:
    return Entry(
        seq=row.seq, at=_raw_time(row.at), actor=row.actor, action=row.action,
        subjects=_raw_json(row.subjects), details=_raw_json(row.details),
        prev_hash=row.prev_hash, hash=row.hash,
    )


def _row_checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row.seq, row.hash, row.at, row.key_id, bytes(row.signature))


async def _read_tail(conn: AsyncConnection) -> tuple[int, str]:
    row = (
        await conn.execute(
            select(audit_entries.c.seq, audit_entries.c.hash)
            .order_by(audit_entries.c.seq.desc())
            .limit(1)
        )
    ).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


async def _insert_after_tail(conn: AsyncConnection, entry: Entry) -> bool:
    """Insert ``entry`` only if the tail is still the entry it links to."""
    t = audit_entries
    if entry.seq == 1:
        still_tail = ~exists().where(t.c.seq >= 1)
    else:
        # The entry it links to is there, and nothing after it: another process
        # (an admin command) may have appended since this log read the tail.
        still_tail = exists().where(
            t.c.seq == entry.seq - 1, t.c.hash == entry.prev_hash
        ) & ~exists().where(t.c.seq >= entry.seq)
    values = select(
        literal(entry.seq, t.c.seq.type),
        literal(entry.at, t.c.at.type),
        literal(entry.actor, t.c.actor.type),
        literal(entry.action, t.c.action.type),
        literal(entry.subjects, t.c.subjects.type),
        literal(entry.details, t.c.details.type),
        literal(entry.prev_hash, t.c.prev_hash.type),
        literal(entry.hash, t.c.hash.type),
    ).where(still_tail)
    cols = ["seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"]
    result = await conn.execute(insert(t).from_select(cols, values).returning(t.c.seq))
    return result.first() is not None


async def _insert_checkpoint(conn: AsyncConnection, cp: Checkpoint) -> None:
    await conn.execute(
        insert(audit_checkpoints).values(
            seq=cp.seq, hash=cp.hash, at=cp.at, key_id=cp.key_id, signature=cp.signature
        )
    )


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
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._engine = engine
        self._key = signing_key
        self._every = checkpoint_every
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = asyncio.Lock()
        self._tail: tuple[int, str] | None = None  # read once, then kept

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
        async with self._lock:
            for _ in range(5):
                try:
                    if conn is not None:
                        return await self._append_in(conn, actor, action, subjects, details)
                    async with write_transaction(self._engine) as own:
                        if own.dialect.name == "postgresql":
                            # Waiting for another appender is normal; waiting forever is not.
                            await own.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT_S}s'"))
                        seq = await self._append_in(own, actor, action, subjects, details)
                    return seq
                except (_TailMoved, IntegrityError):
                    self._tail = None
                    if conn is not None:
                        # Another process took the seq inside the caller's transaction.
                        raise
            raise RuntimeError("could not append to the audit chain: the tail keeps moving")

    async def _append_in(
        self,
        conn: AsyncConnection,
        actor: str,
        action: str,
        subjects: Mapping[str, str],
        details: Mapping[str, Any],
    ) -> int:
        if conn.dialect.name == "postgresql":
            # One appender at a time across processes, until this transaction ends:
            # no other process can link to an entry that may still roll back.
            await conn.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
        for _ in range(3):
            if self._tail is None:
                self._tail = await _read_tail(conn)
            seq, prev = self._tail
            entry = make_entry(seq + 1, self._clock(), actor, action, subjects, details, prev)
            if await _insert_after_tail(conn, entry):
                if entry.seq % self._every == 0:
                    await _insert_checkpoint(conn, sign_checkpoint(entry, self._clock(), self._key))
                # If a caller's transaction rolls back, the next insert sees that
                # its link is gone and rereads the tail.
                self._tail = (entry.seq, entry.hash)
                return entry.seq
            self._tail = None
        raise _TailMoved

    async def checkpoint(self) -> None:
        """Sign the newest entry now (nothing to do if it is already signed).

        RuntimeError if the newest entry was changed behind this server's back.
        """
        async with self._lock, write_transaction(self._engine) as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
            seq, _ = await _read_tail(conn)
            if seq == 0:
                return
            done = (
                await conn.execute(
                    select(func.count()).where(audit_checkpoints.c.seq == seq)
                )
            ).scalar_one()
            if done:
                return
            newest = select(*_ENTRY_COLUMNS).where(audit_entries.c.seq == seq)
            entry = _row_entry((await conn.execute(newest)).one())
            known = self._tail is not None and self._tail[0] == seq and self._tail[1] != entry.hash
            if known or entry.computed_hash() != entry.hash:
                # Never sign what someone else may have rewritten.
                raise RuntimeError(
                    f"audit entry {seq} is not what this server wrote; "
                    "run kiosk admin audit verify"
                )
            await _insert_checkpoint(conn, sign_checkpoint(entry, self._clock(), self._key))

    async def close(self) -> None:
        """The shutdown checkpoint: after it, truncation of any entry is detectable.

        Entries appended afterwards (a call ending during shutdown) are still
        written, never lost; closing again signs them too.
        """
        await self.checkpoint()


async def read_entries(engine: AsyncEngine, after_seq: int = 0, limit: int = 100) -> list[Entry]:
    """Entries with seq > ``after_seq``, oldest first (for the staff API)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(*_ENTRY_COLUMNS)
            .where(audit_entries.c.seq > after_seq)
            .order_by(audit_entries.c.seq)
            .limit(limit)
        )
        return [_row_entry(r) for r in rows]


async def load_chain(engine: AsyncEngine) -> tuple[list[Entry], list[Checkpoint]]:
    async with engine.connect() as conn:
        entries = [
            _row_entry(r)
            for r in await conn.execute(select(*_ENTRY_COLUMNS).order_by(audit_entries.c.seq))
        ]
        checkpoints = [
            _row_checkpoint(r)
            for r in await conn.execute(
                select(audit_checkpoints).order_by(audit_checkpoints.c.seq)
            )
        ]
    return entries, checkpoints


async def verify(engine: AsyncEngine, public_key: Ed25519PublicKey) -> VerifyResult:
    """Read the whole chain and its checkpoints and verify them."""
    entries, checkpoints = await load_chain(engine)
    return verify_chain(entries, checkpoints, public_key)
