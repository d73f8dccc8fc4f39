"""Audit log bench (issue 18): the Merkle tree's cost on appends, proofs at 10^6 entries,
and ``kiosk admin audit verify`` in bounded memory.

Run: ``.venv/bin/python bench/audit.py`` (``--appends N --rounds R`` for the append
part, ``--big N`` for the large log, ``--postgres`` to run the appends on PostgreSQL too).

1. Appends, one transaction each as the server makes them, through
   ``AuditLog.append``: the chain with its Merkle tree beside the chain alone
   (the same appender with the tree's rows and tree heads left out: the log
   as it was before). Rounds alternate between the two on twin databases, so
   both see the same load. Target: ratio >= 0.7.
2. A log of ``--big`` entries (10^6) is written in bulk by the same pure code
   (entries, tree rows, a checkpoint every 100): inclusion and consistency
   proofs served from it by ``kiosk.audit.proofs``, their size, and the time
   to verify them with the RFC 9162 algorithms.
3. ``kiosk admin audit verify`` as a real subprocess on 10^5 and 10^6
   entries: peak RSS (ru_maxrss) and time. Baseline: reading the whole table
   into memory first, as verification did before, at 10^5 entries.

The ratio of part 1 is printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from kiosk.audit import merkle, proofs, sql  # noqa: E402
from kiosk.audit.chain import GENESIS, Entry, make_entry, sign_checkpoint  # noqa: E402
from kiosk.audit.keys import FALLBACK_ORIGIN, load_signing_key  # noqa: E402
from kiosk.audit.log import AuditLog  # noqa: E402
from kiosk.audit.merkle import Frontier  # noqa: E402
from kiosk.audit.note import TreeHead, parse_note, parse_tree_head, sign_note  # noqa: E402
from kiosk.store import schema  # noqa: E402
from kiosk.store.db import make_engine, upgrade  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVERY = 100


class ChainAlone(AuditLog):
    """The baseline: entries and chain checkpoints only, no tree rows and no tree head."""

    def _grow(self, entry: Entry, tail: Any) -> Any:
        return dataclasses.replace(tail, seq=entry.seq, hash=entry.hash)

    async def _sign(self, conn: AsyncConnection, entry: Entry, tail: Any,
                    done: tuple[bool, bool]) -> None:
        await sql.insert_checkpoint(conn, sign_checkpoint(entry, entry.at, self._key))


async def append_rate(log: AuditLog, n: int, offset: int) -> float:
    start = time.perf_counter()
    for i in range(offset, offset + n):
        await log.append("staff:s1", "call.warned", {"call": f"c{i}", "inmate": "i1"},
                         {"minutes": i % 60, "reason": "time_up"})
    return n / (time.perf_counter() - start)


async def appends(urls: tuple[str, str], n: int, rounds: int, label: str) -> float:
    key = Ed25519PrivateKey.generate()
    engines = [make_engine(u) for u in urls]
    for u in urls:
        await upgrade(u)
    logs = {"chain alone": ChainAlone(engines[0], key, EVERY),
            "chain + tree": AuditLog(engines[1], key, EVERY)}
    rates: dict[str, list[float]] = {name: [] for name in logs}
    try:
        for r in range(rounds):
            order = list(logs) if r % 2 == 0 else list(reversed(logs))
            for name in order:
                rates[name].append(await append_rate(logs[name], n, r * n))
    finally:
        for e in engines:
            await e.dispose()
    chain, tree = (statistics.median(rates[k]) for k in ("chain alone", "chain + tree"))
    print(f"append, {label}, {rounds} rounds of {n}: chain alone {chain:.0f}/s, "
          f"chain + tree {tree:.0f}/s (medians)")
    return tree / chain


async def bulk_log(url: str, n: int, key: Ed25519PrivateKey) -> None:
    """``n`` entries, their tree rows and a checkpoint every ``EVERY``, as the appender
    would have written them, in large batches."""
    await upgrade(url)
    engine = make_engine(url)
    frontier, prev = Frontier(), GENESIS
    rows: dict[str, list[dict[str, object]]] = {"e": [], "t": [], "c": [], "h": []}
    tables = {"e": schema.audit_entries, "t": schema.audit_tree,
              "c": schema.audit_checkpoints, "h": schema.audit_tree_heads}

    async def flush() -> None:
        async with engine.begin() as conn:
            for k, batch in rows.items():
                if batch:
                    await conn.execute(insert(tables[k]), batch)
                    batch.clear()

    try:
        for seq in range(1, n + 1):
            e = make_entry(seq, T0 + timedelta(milliseconds=seq), "staff:s1", "call.warned",
                           {"call": f"c{seq % 5000}", "inmate": "i1"},
                           {"minutes": seq % 60, "reason": "time_up"}, prev)
            prev = e.hash
            rows["e"].append({"seq": seq, "at": e.at, "actor": e.actor, "action": e.action,
                              "subjects": e.subjects, "details": e.details,
                              "prev_hash": e.prev_hash, "hash": e.hash})
            rows["t"].append({"seq": seq, "hashes": b"".join(frontier.append(e.leaf()))})
            if seq % EVERY == 0 or seq == n:
                cp = sign_checkpoint(e, e.at, key)
                rows["c"].append({"seq": seq, "hash": cp.hash, "at": cp.at,
                                  "key_id": cp.key_id, "signature": cp.signature})
                head = TreeHead(FALLBACK_ORIGIN, seq, frontier.root())
                rows["h"].append({"size": seq, "at": e.at, "note": sign_note(
                    head.text(), FALLBACK_ORIGIN, key).render()})
            if len(rows["e"]) >= 20000:
                await flush()
        await flush()
    finally:
        await engine.dispose()


def _median_us(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:.0f} µs"


async def proofs_at(url: str, n: int, samples: int) -> None:
    engine = make_engine(url)
    rng = random.Random(18)
    try:
        async with engine.connect() as conn:
            head = await sql.head_at_or_after(conn, n)
            assert head is not None
            tree_root = parse_tree_head(parse_note(head.note).text).root
            served, checked, lengths = [], [], []
            for _ in range(samples):
                seq = rng.randint(1, n)
                entry = await sql.entry_at(conn, seq)
                assert entry is not None
                t = time.perf_counter()
                path = await proofs.inclusion_proof(conn, seq, n)
                served.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert merkle.verify_inclusion(seq - 1, n, entry.leaf(), path, tree_root)
                checked.append(time.perf_counter() - t)
                lengths.append(len(path))
            print(f"inclusion proof at {n} entries: {statistics.median(lengths):.0f} hashes "
                  f"({statistics.median(lengths) * 32:.0f} bytes), served in "
                  f"{_median_us(served)}, verified in {_median_us(checked)} "
                  f"(medians of {samples})")
            served, checked, lengths = [], [], []
            heads = {h.size: h for h in await sql.all_heads(conn)}
            for _ in range(samples):
                old = rng.randrange(EVERY, n, EVERY)
                old_root = parse_tree_head(parse_note(heads[old].note).text).root
                t = time.perf_counter()
                path = await proofs.consistency_proof(conn, old, n)
                served.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert merkle.verify_consistency(old, n, old_root, tree_root, path)
                checked.append(time.perf_counter() - t)
                lengths.append(len(path))
            print(f"consistency proof to {n} entries: {statistics.median(lengths):.0f} hashes "
                  f"(at most {max(lengths)}, {max(lengths) * 32} bytes), served in "
                  f"{_median_us(served)}, verified in {_median_us(checked)}")
    finally:
        await engine.dispose()


def peak_rss(args: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """Run a command; its peak resident set (KiB), seconds, and last line of output."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace").strip().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out[-5:]
    return usage.ru_maxrss, time.perf_counter() - start, out[-1] if out else ""


LOAD_ALL = """
import asyncio, sys
from kiosk.audit import sql
from kiosk.audit.keys import load_verify_key
from kiosk.audit.verify import verify_chain
from kiosk.store.db import make_engine
from pathlib import Path

async def main():
    engine = make_engine(sys.argv[1])
    async with engine.connect() as conn:
        entries = await sql.entries_after(conn, 0, 10**9)
        cps, heads = await sql.all_checkpoints(conn), await sql.all_heads(conn)
    await engine.dispose()
    print(verify_chain(entries, cps, load_verify_key(Path(sys.argv[2])), heads).summary())

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Many short rounds, alternating: a busy machine's swings hit both sides alike.
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-audit-") as tmp:
        d = Path(tmp)
        ratio = asyncio.run(appends(
            (f"sqlite+aiosqlite:///{d / 'a.sqlite3'}", f"sqlite+aiosqlite:///{d / 'b.sqlite3'}"),
            args.appends, args.rounds, "SQLite"))
        if args.postgres:
            ratios = asyncio.run(_postgres(args))
            print(f"ratio append on PostgreSQL (chain + tree / chain alone): {ratios:.2f}")
        if not args.skip_big:
            pki = d / "data" / "pki"
            key = load_signing_key(pki)
            env = {**os.environ, "KIOSK_SERVER__DATA_DIR": str(d / "data")}
            for n in sorted({100_000, args.big}):
                url = f"sqlite+aiosqlite:///{d / f'big-{n}.sqlite3'}"
                t = time.perf_counter()
                asyncio.run(bulk_log(url, n, key))
                print(f"wrote a log of {n} entries in {time.perf_counter() - t:.0f} s")
                if n == args.big:
                    asyncio.run(proofs_at(url, n, args.samples))
                rss, secs, line = peak_rss(
                    [sys.executable, "-m", "kiosk", "admin", "audit", "verify"],
                    {**env, "KIOSK_DATABASE__URL": url})
                print(f"kiosk admin audit verify, {n} entries: peak RSS {rss / 1024:.0f} MiB, "
                      f"{secs:.0f} s: {line[:60]}…")
                if n == 100_000:
                    rss, secs, _ = peak_rss([sys.executable, "-c", LOAD_ALL, url, str(pki)], env)
                    print(f"baseline, the whole table read first, {n} entries: peak RSS "
                          f"{rss / 1024:.0f} MiB, {secs:.0f} s")
                os.unlink(url.removeprefix("sqlite+aiosqlite:///"))
    print(f"ratio append (chain + tree / chain alone, SQLite): {ratio:.2f} (target >= 0.7)")


async def _postgres(args: argparse.Namespace) -> float:
    import secrets

    import asyncpg

    base = os.environ.get("KIOSK_TEST_POSTGRES_URL",
                          "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    names = [f"kiosk_bench_{secrets.token_hex(4)}" for _ in range(2)]
    admin = await asyncpg.connect(base.replace("+asyncpg", ""))
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        host = base.rsplit("/", 1)[0]
        return await appends((f"{host}/{names[0]}", f"{host}/{names[1]}"), args.appends,
                             args.rounds, "PostgreSQL")
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    main()
