"""The audit chain on SQLite and PostgreSQL: appends, and tampering done with plain SQL.

Each tampering test plays someone with write access to the database who first
drops the append-only triggers, then changes the rows; ``verify`` (and the
``kiosk admin audit verify`` command, run as a real subprocess) must name the
first bad entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.audit.chain import FORBIDDEN_DETAIL_KEYS, canonical_json, make_entry
from kiosk.audit.keys import load_signing_key
from kiosk.audit.log import AuditLog, read_entries, verify
from kiosk.audit.verify import VerifyResult
from kiosk.store import schema
from kiosk.store.db import head_revision, make_engine, write_transaction
from tests.conftest import examples

KIOSK = Path(sys.executable).with_name("kiosk")


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_signing_key(tmp_path / "data" / "pki")


async def fill(engine: AsyncEngine, key: Ed25519PrivateKey, n: int = 25, every: int = 10,
               close: bool = True) -> AuditLog:
    log = AuditLog(engine, key, checkpoint_every=every)
    for i in range(1, n + 1):
        await log.append(
            f"staff:s{i % 3}", "call.ended", {"call": f"call-{i}", "inmate": "inmate-1"},
            {"reason": "time_up", "minutes": i, "ratio": i / 7},
        )
    if close:
        await log.close()
    return log


async def drop_append_only_guard(engine: AsyncEngine) -> None:
    """What an intruder with DDL rights does first."""
    async with engine.begin() as conn:
        for table in ("audit_entries", "audit_checkpoints", "audit_tree"):
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            else:
                await conn.exec_driver_sql(
                    f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"
                )


async def tamper(engine: AsyncEngine, *statements: str, **params: object) -> None:
    await drop_append_only_guard(engine)
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def shift_seqs(engine: AsyncEngine, from_seq: int, delta: int) -> None:
    """Renumber entries >= from_seq by delta (in two steps: seq is the primary key)."""
    await tamper(
        engine,
        "UPDATE audit_entries SET seq = -seq WHERE seq >= :s",
        "UPDATE audit_entries SET seq = -seq + :d WHERE seq < 0",
        s=from_seq, d=delta,
    )


def caught(result: VerifyResult, seq: int, word: str) -> None:
    assert not result.ok
    assert result.first_bad_seq == seq, result.problem
    assert word in result.problem, result.problem


async def test_an_untouched_chain_verifies(engine: AsyncEngine, key: Ed25519PrivateKey) -> None:
    await fill(engine, key, n=25, every=10)
    result = await verify(engine, key.public_key())
    assert result.ok, result.problem
    assert (result.entries, result.checkpoints, result.last_checkpoint_seq) == (25, 3, 25)
    entries = await read_entries(engine, after_seq=20, limit=3)
    assert [e.seq for e in entries] == [21, 22, 23]
    assert entries[0].subjects == {"call": "call-21", "inmate": "inmate-1"}
    assert entries[0].details["ratio"] == 21 / 7


async def test_a_changed_row_is_named(engine: AsyncEngine, key: Ed25519PrivateKey) -> None:
    await fill(engine, key)
    await tamper(engine, "UPDATE audit_entries SET details = :d WHERE seq = 7",
                 d='{"reason": "staff_ended", "minutes": 7, "ratio": 1.0}')
    caught(await verify(engine, key.public_key()), 7, "changed")


async def test_a_changed_actor_is_named(engine: AsyncEngine, key: Ed25519PrivateKey) -> None:
    await fill(engine, key)
    await tamper(engine, "UPDATE audit_entries SET actor = 'staff:s9' WHERE seq = 24")
    caught(await verify(engine, key.public_key()), 24, "changed")


@pytest.mark.parametrize(
    ("column", "value"),
    [("details", "{not json"), ("subjects", "[]"), ("at", "yesterday"), ("actor", "42")],
)
async def test_an_unreadable_value_is_named_not_a_crash(
    engine: AsyncEngine, key: Ed25519PrivateKey, column: str, value: str
) -> None:
    """SQLite stores anything; PostgreSQL's column types refuse some of it themselves."""
    await fill(engine, key)
    try:
        await tamper(engine, f"UPDATE audit_entries SET {column} = :v WHERE seq = 3", v=value)
    except DBAPIError:
        assert engine.dialect.name == "postgresql" and column in ("details", "at")
        assert (await verify(engine, key.public_key())).ok
        return
    caught(await verify(engine, key.public_key()), 3, "changed")


async def test_the_server_never_signs_a_rewritten_newest_entry(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    log = await fill(engine, key, n=5, every=100, close=False)
    await tamper(engine, "UPDATE audit_entries SET actor = 'staff:s9' WHERE seq = 5")
    with pytest.raises(RuntimeError, match="audit entry 5 is not what this server wrote"):
        await log.close()
    caught(await verify(engine, key.public_key()), 5, "changed")


async def test_a_deleted_middle_row_is_named(engine: AsyncEngine,
                                             key: Ed25519PrivateKey) -> None:
    await fill(engine, key)
    await tamper(engine, "DELETE FROM audit_entries WHERE seq = 12")
    caught(await verify(engine, key.public_key()), 12, "removed")


async def test_a_deleted_row_with_later_ones_renumbered_is_named(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    await fill(engine, key)
    await tamper(engine, "DELETE FROM audit_entries WHERE seq = 12")
    await shift_seqs(engine, 13, -1)
    caught(await verify(engine, key.public_key()), 12, "removed")


async def test_deleted_newest_rows_are_named_thanks_to_the_shutdown_checkpoint(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    await fill(engine, key, n=25, every=10)
    await tamper(engine, "DELETE FROM audit_entries WHERE seq > 21")
    caught(await verify(engine, key.public_key()), 22, "removed")


async def test_two_swapped_rows_are_named(engine: AsyncEngine, key: Ed25519PrivateKey) -> None:
    await fill(engine, key)
    await tamper(
        engine,
        "UPDATE audit_entries SET seq = -1 WHERE seq = 5",
        "UPDATE audit_entries SET seq = 5 WHERE seq = 9",
        "UPDATE audit_entries SET seq = 9 WHERE seq = -1",
    )
    caught(await verify(engine, key.public_key()), 5, "reordered")


async def _insert_forged(engine: AsyncEngine, seq: int, prev_hash: str) -> None:
    e = make_entry(seq, datetime.now(UTC), "staff:s1", "contact.decided",
                   {"contact": "contact-9"}, {"outcome": "approved"}, prev_hash)
    async with engine.begin() as conn:
        await conn.execute(schema.audit_entries.insert().values(
            seq=e.seq, at=e.at, actor=e.actor, action=e.action, subjects=e.subjects,
            details=e.details, prev_hash=e.prev_hash, hash=e.hash,
        ))


async def test_a_forged_row_without_a_valid_link_is_named(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    await fill(engine, key)
    await _insert_forged(engine, 26, "ab" * 32)  # its own hash is right; its link is not
    caught(await verify(engine, key.public_key()), 26, "inserted")


async def test_a_forged_row_slipped_in_between_is_named(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    await fill(engine, key)
    async with engine.connect() as conn:
        prev = (await conn.execute(select(schema.audit_entries.c.hash)
                                   .where(schema.audit_entries.c.seq == 14))).scalar_one()
    await shift_seqs(engine, 15, +1)
    await _insert_forged(engine, 15, prev)  # a perfect link to 14 and a correct hash
    caught(await verify(engine, key.public_key()), 15, "inserted")


async def test_a_changed_checkpoint_is_named(engine: AsyncEngine,
                                             key: Ed25519PrivateKey) -> None:
    await fill(engine, key)
    await tamper(engine, "UPDATE audit_checkpoints SET hash = :h WHERE seq = 20", h="cd" * 32)
    caught(await verify(engine, key.public_key()), 20, "bad signature")


async def test_a_checkpoint_from_another_key_is_named(engine: AsyncEngine,
                                                      key: Ed25519PrivateKey) -> None:
    await fill(engine, key)
    caught(await verify(engine, Ed25519PrivateKey.generate().public_key()), 10, "another key")


async def test_appends_inside_a_callers_transaction_commit_or_vanish_with_it(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    log = AuditLog(engine, key, checkpoint_every=3)
    await log.append("system", "server.started", {})
    async with engine.begin() as conn:
        assert await log.append("staff:s1", "contact.proposed", {"contact": "k1"}, conn=conn) == 2
    with pytest.raises(LookupError):
        async with engine.begin() as conn:
            await log.append("staff:s1", "contact.proposed", {"contact": "k2"}, conn=conn)
            await log.append("staff:s1", "contact.decided", {"contact": "k2"}, conn=conn)
            raise LookupError("the caller's own work failed")
    # The log noticed the rollback: no gap, no fork.
    assert await log.append("staff:s1", "contact.proposed", {"contact": "k3"}) == 3
    await log.close()
    result = await verify(engine, key.public_key())
    assert result.ok, result.problem
    assert result.entries == 3 and result.checkpoints == 1


async def test_an_append_inside_a_transaction_follows_another_process_that_appended(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    """The server's log has a stale tail after an admin command appended: no clash."""
    server = AuditLog(engine, key, checkpoint_every=50)
    command = AuditLog(engine, key, checkpoint_every=50)  # e.g. `kiosk admin token create`
    assert await server.append("system", "server.started", {}) == 1
    assert await command.append("staff:s1", "token.created", {"staff": "s1"}) == 2
    async with write_transaction(engine) as conn:
        seq = await server.append("staff:s1", "contact.proposed", {"contact": "k1"}, conn=conn)
    assert seq == 3
    await server.close()
    result = await verify(engine, key.public_key())
    assert result.ok, result.problem
    assert result.entries == 3


async def test_concurrent_appends_and_a_second_writer_keep_one_chain(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    first = AuditLog(engine, key, checkpoint_every=7)
    second = AuditLog(engine, key, checkpoint_every=7)  # e.g. a restarted process
    seqs = await asyncio.gather(
        *(log.append("system", "call.warned", {"call": f"c{i}"})
          for i in range(20) for log in (first, second))
    )
    assert sorted(seqs) == list(range(1, 41))
    await first.close()
    result = await verify(engine, key.public_key())
    assert result.ok, result.problem
    assert result.entries == 40


async def test_a_restarted_log_continues_the_chain(engine: AsyncEngine,
                                                   key: Ed25519PrivateKey) -> None:
    await fill(engine, key, n=5, every=10)
    log = AuditLog(engine, key, checkpoint_every=10)
    assert await log.append("system", "server.started", {}) == 6
    await log.close()
    # A late entry after the shutdown checkpoint is kept, and signed by the next close.
    assert await log.append("system", "call.ended", {"call": "c1"}) == 7
    assert (await verify(engine, key.public_key())).unsigned_tail == 1
    await log.close()
    await log.close()  # nothing new: no second checkpoint for the same entry
    result = await verify(engine, key.public_key())
    assert result.ok and result.unsigned_tail == 0 and result.checkpoints == 3


async def test_personal_data_is_refused_and_nothing_is_written(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    log = AuditLog(engine, key)
    with pytest.raises(ValueError):
        await log.append("staff:s1", "contact.proposed", {"contact": "kari@example.org"})
    with pytest.raises(ValueError):
        await log.append("staff:s1", "contact.proposed", {"contact": "k1"}, {"name": "Kari"})
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.audit_entries)))
        assert count.scalar_one() == 0


def _no_forbidden_keys(d: object) -> bool:
    if isinstance(d, dict):
        return all(k.lower() not in FORBIDDEN_DETAIL_KEYS and _no_forbidden_keys(v)
                   for k, v in d.items())
    if isinstance(d, list):
        return all(_no_forbidden_keys(v) for v in d)
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@settings(max_examples=examples(30), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.dictionaries(st.text(max_size=8), json_values, max_size=4)
       .filter(_no_forbidden_keys))
def test_any_json_details_survive_the_database_exactly(
    migrated_url: str, key: Ed25519PrivateKey, details: dict[str, object]
) -> None:
    """Whatever JSON goes in comes back so that its hash still matches, on both engines."""

    async def scenario() -> None:
        engine = make_engine(migrated_url)
        try:
            log = AuditLog(engine, key)
            seq = await log.append("system", "test.details", {"case": "c1"}, details)
            (entry,) = await read_entries(engine, after_seq=seq - 1, limit=1)
            assert dict(entry.details) == json.loads(canonical_json(details))
            result = await verify(engine, key.public_key())
            assert result.ok, result.problem
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:  # its own loop, away from the test runner's
        pool.submit(asyncio.run, scenario()).result()


async def _kiosk(url: str, data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "KIOSK_DATABASE__URL": url, "KIOSK_SERVER__DATA_DIR": str(data_dir)}
    proc = await asyncio.create_subprocess_exec(
        str(KIOSK), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_verify_command_passes_an_intact_chain_and_names_a_tampered_entry(
    migrated_url: str, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data_dir = tmp_path / "data"  # the key fixture wrote data/pki/audit.key and audit.pub
    engine = make_engine(migrated_url)
    try:
        await fill(engine, key, n=25, every=10)
        code, out, err = await _kiosk(migrated_url, data_dir, "admin", "audit", "verify")
        assert code == 0, err
        assert out.strip() == (
            "audit chain intact: 25 entries (seq 1-25), 3 signed checkpoints "
            "(last at seq 25), 3 signed tree heads matching the Merkle tree, "
            "0 newest entries not yet checkpointed"
        )
        await tamper(engine, "UPDATE audit_entries SET action = 'call.monitor_attached' "
                             "WHERE seq = 17")
        code, out, err = await _kiosk(migrated_url, data_dir, "admin", "audit", "verify")
        assert code == 3
        assert out == ""
        assert err.strip() == (
            "kiosk: audit chain broken at seq 17: "
            "entry 17 was changed: its content does not match its hash"
        )
    finally:
        await engine.dispose()


async def test_the_verify_command_explains_a_missing_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}"
    code, out, err = await _kiosk(url, tmp_path / "nokeys", "admin", "audit", "verify")
    assert (code, out) == (1, "")
    assert "no audit key" in err and "kiosk admin ca init" in err
    assert len(err.strip().splitlines()) == 1


async def test_the_upgrade_command_migrates_and_verify_reads_the_result(
    db_url: str, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data_dir = tmp_path / "data"
    code, out, err = await _kiosk(db_url, data_dir, "admin", "audit", "verify")
    assert code == 1 and "kiosk admin db upgrade" in err
    code, out, err = await _kiosk(db_url, data_dir, "admin", "db", "upgrade")
    assert code == 0, err
    assert f"is at revision {head_revision()}" in out
    code, out, err = await _kiosk(db_url, data_dir, "admin", "audit", "verify")
    assert code == 0, err
    assert out.strip() == "audit chain intact: no entries yet"


async def tree_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(
            select(func.count()).select_from(schema.audit_tree))).scalar_one())


async def test_tree_rows_a_crash_left_unwritten_are_rebuilt_from_the_entries(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    """The tree's rows go in with checkpoints; a server killed in between loses none."""
    crashed = AuditLog(engine, key, checkpoint_every=5)
    for i in range(7):
        await crashed.append("system", "call.warned", {"call": f"c{i}"})
    assert await tree_rows(engine) == 5  # 6 and 7 wait for the next checkpoint: none comes
    restarted = AuditLog(engine, key, checkpoint_every=5)
    assert await restarted.append("system", "server.started", {}) == 8
    assert await tree_rows(engine) == 7  # rebuilt from the entries on the first append
    await restarted.close()
    assert await tree_rows(engine) == 8
    result = await verify(engine, key.public_key())
    assert result.ok and result.tree_heads == 2, result.problem


async def test_rows_another_process_rebuilt_are_not_written_twice(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    server = AuditLog(engine, key, checkpoint_every=4)
    command = AuditLog(engine, key, checkpoint_every=4)
    for i in range(3):
        await server.append("system", "call.warned", {"call": f"c{i}"})
    await command.close()  # e.g. `kiosk admin token create` ending: rebuilds rows 1-3, signs
    assert await tree_rows(engine) == 3
    assert await server.append("system", "call.warned", {"call": "c3"}) == 4  # signs: row 4
    assert await tree_rows(engine) == 4
    result = await verify(engine, key.public_key())
    assert result.ok and result.tree_heads == 2, result.problem


async def test_a_changed_or_removed_row_of_the_stored_tree_is_named_and_appends_go_on(
    engine: AsyncEngine, key: Ed25519PrivateKey
) -> None:
    await fill(engine, key, n=25, every=10)
    await tamper(engine, "DELETE FROM audit_tree WHERE seq = 16")
    caught(await verify(engine, key.public_key()), 16, "no row for entry 16")
    # A new process cannot read the tree's edge from the damaged rows: it recomputes it.
    log = AuditLog(engine, key, checkpoint_every=10)
    assert await log.append("system", "server.started", {}) == 26
    await log.close()
    caught(await verify(engine, key.public_key()), 16, "no row for entry 16")
    await tamper(engine, "UPDATE audit_tree SET hashes = :h WHERE seq = 7", h=b"\x00" * 32)
    caught(await verify(engine, key.public_key()), 7, "stored Merkle tree at seq 7")
