"""The audit log's SQL: entries, checkpoints, the stored Merkle tree, tree heads, cosignatures.

Rows are read raw and parsed here: a value that cannot be read back is
tampering too, and must be named by verification, not crash it, so whatever
does not parse is kept as it is (its hash cannot match).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, exists, func, insert, literal, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.audit.chain import GENESIS, Checkpoint, Entry
from kiosk.audit.merkle import HASH_SIZE, Node, node_row
from kiosk.audit.note import Signature
from kiosk.audit.verify import StoredHead
from kiosk.store.schema import (
    audit_checkpoints,
    audit_cosignatures,
    audit_entries,
    audit_tree,
    audit_tree_heads,
)

PAGE = 2000  # entries read per query when streaming the whole chain

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


ENTRY_COLUMNS = (
    audit_entries.c.seq,
    type_coerce(audit_entries.c.at, Text()).label("at"),
    audit_entries.c.actor,
    audit_entries.c.action,
    type_coerce(audit_entries.c.subjects, Text()).label("subjects"),
    type_coerce(audit_entries.c.details, Text()).label("details"),
    audit_entries.c.prev_hash,
    audit_entries.c.hash,
)


def row_entry(row: Any) -> Entry:
    return Entry(
        seq=row.seq, at=_raw_time(row.at), actor=row.actor, action=row.action,
        subjects=_raw_json(row.subjects), details=_raw_json(row.details),
        prev_hash=row.prev_hash, hash=row.hash,
    )


# --- appending -------------------------------------------------------------------------------


async def read_tail(conn: AsyncConnection) -> tuple[int, str]:
    row = (
        await conn.execute(
            select(audit_entries.c.seq, audit_entries.c.hash)
            .order_by(audit_entries.c.seq.desc())
            .limit(1)
        )
    ).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


async def insert_after_tail(conn: AsyncConnection, entry: Entry) -> bool:
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


async def insert_tree_rows(conn: AsyncConnection, rows: list[tuple[int, bytes]]) -> None:
    if rows:
        await conn.execute(insert(audit_tree), [{"seq": s, "hashes": h} for s, h in rows])


async def insert_checkpoint(conn: AsyncConnection, cp: Checkpoint) -> None:
    await conn.execute(
        insert(audit_checkpoints).values(
            seq=cp.seq, hash=cp.hash, at=cp.at, key_id=cp.key_id, signature=cp.signature
        )
    )


async def insert_head(conn: AsyncConnection, size: int, at: datetime, note: str) -> None:
    await conn.execute(insert(audit_tree_heads).values(size=size, at=at, note=note))


async def signed_at(conn: AsyncConnection, seq: int) -> tuple[bool, bool]:
    """Whether entry ``seq`` has a chain checkpoint, and a tree head of that size."""
    cp = exists().where(audit_checkpoints.c.seq == seq)
    head = exists().where(audit_tree_heads.c.size == seq)
    row = (await conn.execute(select(cp.label("cp"), head.label("head")))).one()
    return bool(row.cp), bool(row.head)


async def entries_after(conn: AsyncConnection, after_seq: int, limit: int) -> list[Entry]:
    rows = await conn.execute(
        select(*ENTRY_COLUMNS)
        .where(audit_entries.c.seq > after_seq)
        .order_by(audit_entries.c.seq)
        .limit(limit)
    )
    return [row_entry(r) for r in rows]


async def entry_at(conn: AsyncConnection, seq: int) -> Entry | None:
    row = (await conn.execute(select(*ENTRY_COLUMNS).where(audit_entries.c.seq == seq))).first()
    return None if row is None else row_entry(row)


# --- the stored tree --------------------------------------------------------------------


async def tree_size(conn: AsyncConnection) -> int:
    top = select(func.coalesce(func.max(audit_tree.c.seq), 0))
    return int((await conn.execute(top)).scalar_one())


async def read_nodes(conn: AsyncConnection, nodes: Iterable[Node]) -> dict[Node, bytes]:
    """The stored hashes of perfect subtrees; KeyError names one that is missing."""
    where = {node: node_row(node) for node in nodes}
    if not where:
        return {}
    seqs = sorted({seq for seq, _ in where.values()})
    rows: dict[int, bytes] = {}
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        result = await conn.execute(
            select(audit_tree.c.seq, audit_tree.c.hashes).where(audit_tree.c.seq.in_(chunk))
        )
        rows.update({int(r.seq): bytes(r.hashes) for r in result})
    out: dict[Node, bytes] = {}
    for node, (seq, position) in where.items():
        value = rows.get(seq, b"")[position * HASH_SIZE : (position + 1) * HASH_SIZE]
        if len(value) != HASH_SIZE:
            raise KeyError(f"the stored Merkle tree has no node {node} (row {seq})")
        out[node] = value
    return out


async def entries_with_tree(engine: AsyncEngine) -> AsyncGenerator[tuple[Entry, bytes | None]]:
    """Every entry in seq order with its stored tree row, a page at a time (bounded memory)."""
    after = None
    query = select(*ENTRY_COLUMNS, audit_tree.c.hashes).select_from(
        audit_entries.outerjoin(audit_tree, audit_tree.c.seq == audit_entries.c.seq)
    )
    while True:
        page = query.order_by(audit_entries.c.seq).limit(PAGE)
        if after is not None:
            page = page.where(audit_entries.c.seq > after)
        async with engine.connect() as conn:
            rows = (await conn.execute(page)).all()
        for row in rows:
            yield row_entry(row), None if row.hashes is None else bytes(row.hashes)
        if len(rows) < PAGE:
            return
        after = rows[-1].seq


async def entries_between(
    conn: AsyncConnection, start: datetime, end: datetime
) -> AsyncIterator[Entry]:
    """Entries written in [start, end], in seq order (for receipts and reports)."""
    result = await conn.stream(
        select(*ENTRY_COLUMNS)
        .where(audit_entries.c.at >= start, audit_entries.c.at <= end)
        .order_by(audit_entries.c.seq)
    )
    async for row in result:
        yield row_entry(row)


# --- checkpoints, tree heads and cosignatures ----------------------------------------------


async def all_checkpoints(conn: AsyncConnection) -> list[Checkpoint]:
    rows = await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
    return [Checkpoint(r.seq, r.hash, r.at, r.key_id, bytes(r.signature)) for r in rows]


async def all_heads(conn: AsyncConnection) -> list[StoredHead]:
    rows = await conn.execute(
        select(audit_tree_heads.c.size, audit_tree_heads.c.note).order_by(audit_tree_heads.c.size)
    )
    return [StoredHead(int(r.size), str(r.note)) for r in rows]


async def head_at_or_after(conn: AsyncConnection, size: int) -> StoredHead | None:
    """The newest tree head if it covers ``size`` entries (0: the newest at all)."""
    row = (
        await conn.execute(
            select(audit_tree_heads.c.size, audit_tree_heads.c.note)
            .order_by(audit_tree_heads.c.size.desc())
            .limit(1)
        )
    ).first()
    if row is None or int(row.size) < size:
        return None
    return StoredHead(int(row.size), str(row.note))


async def head_of_size(conn: AsyncConnection, size: int) -> StoredHead | None:
    row = (
        await conn.execute(
            select(audit_tree_heads.c.note).where(audit_tree_heads.c.size == size)
        )
    ).first()
    return None if row is None else StoredHead(size, str(row.note))


async def cosignature_lines(conn: AsyncConnection, size: int) -> list[str]:
    rows = await conn.execute(
        select(audit_cosignatures.c.line)
        .where(audit_cosignatures.c.size == size)
        .order_by(audit_cosignatures.c.witness, audit_cosignatures.c.key_id)
    )
    return [str(r.line) for r in rows]


async def insert_cosignature(
    conn: AsyncConnection, size: int, sig: Signature, at: datetime
) -> bool:
    """Store a witness's cosignature of tree head ``size``; False if it has one already."""
    t = audit_cosignatures
    kid = sig.key_id.hex()
    known = exists().where(t.c.size == size, t.c.witness == sig.name, t.c.key_id == kid)
    if (await conn.execute(select(known))).scalar_one():
        return False
    await conn.execute(
        insert(t).values(
            size=size, witness=sig.name, key_id=kid, at=at, line=sig.line()
        )
    )
    return True

