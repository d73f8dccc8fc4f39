"""The store on both engines: migrations equal the schema, engines are set up right."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.domain.model import Role
from kiosk.store import schema
from kiosk.store.db import (
    DatabaseURLError,
    current_revision,
    head_revision,
    make_engine,
    normalise_url,
    upgrade,
    write_transaction,
)
from kiosk.store.staff import (
    find_api_token,
    insert_api_token,
    insert_staff,
    list_api_tokens,
    revoke_api_token,
)


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, schema.metadata))


async def test_migrations_build_exactly_the_schema_and_upgrade_twice_is_harmless(
    db_url: str,
) -> None:
    await upgrade(db_url)
    await upgrade(db_url)  # a second run finds nothing to do
    eng = make_engine(db_url)
    try:
        assert await current_revision(eng) == head_revision()
        async with eng.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(
                lambda c: set(c.dialect.get_table_names(c))
            )
        assert set(schema.metadata.tables) <= tables
    finally:
        await eng.dispose()


async def test_concurrent_upgrades_wait_for_each_other(db_url: str) -> None:
    await asyncio.gather(upgrade(db_url), upgrade(db_url), upgrade(db_url))
    eng = make_engine(db_url)
    try:
        assert await current_revision(eng) == head_revision()
    finally:
        await eng.dispose()


async def test_empty_database_has_no_revision(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        assert await current_revision(eng) is None
    finally:
        await eng.dispose()


async def test_engine_fixture_is_at_head(engine: AsyncEngine) -> None:
    assert await current_revision(engine) == head_revision()


def _facility(fid: str = "f1") -> dict[str, object]:
    return {"id": fid, "name": "Test", "rooms": ["room-1"]}


async def test_foreign_keys_are_enforced(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                insert(schema.inmates).values(
                    id="i1", facility_id="no-such-facility", name="x", created_at=now
                )
            )
    async with engine.begin() as conn:
        await conn.execute(insert(schema.facilities).values(**_facility()))
        await conn.execute(
            insert(schema.inmates).values(id="i1", facility_id="f1", name="x", created_at=now)
        )


async def test_times_come_back_aware_utc_and_exact(engine: AsyncEngine) -> None:
    oslo = timezone(timedelta(hours=1))
    written = datetime(2026, 11, 23, 17, 4, 5, 123456, tzinfo=oslo)
    async with engine.begin() as conn:
        await conn.execute(insert(schema.facilities).values(**_facility()))
        await conn.execute(
            insert(schema.inmates).values(id="i1", facility_id="f1", name="x", created_at=written)
        )
    async with engine.connect() as conn:
        got = (await conn.execute(select(schema.inmates.c.created_at))).scalar_one()
    assert got == written
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive datetime"):
        async with engine.begin() as conn:
            await conn.execute(
                insert(schema.inmates).values(
                    id="i2", facility_id="f1", name="y", created_at=datetime(2026, 1, 1)
                )
            )


async def test_database_refuses_to_change_or_remove_audit_rows(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    row = {
        "seq": 1, "at": now, "actor": "system", "action": "test", "subjects": {},
        "details": {}, "prev_hash": "0" * 64, "hash": "1" * 64,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(schema.audit_entries).values(**row))
    for statement in (
        "UPDATE audit_entries SET action = 'forged'",
        "DELETE FROM audit_entries",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    async with engine.connect() as conn:
        assert (await conn.execute(select(schema.audit_entries.c.action))).scalar_one() == "test"


async def test_savepoints_roll_back_only_their_part(engine: AsyncEngine) -> None:
    """SQLite too: the driver's own transaction handling would break SAVEPOINT."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(schema.facilities).values(**_facility()))
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(
                    insert(schema.inmates).values(id="i1", facility_id="f1", name="a",
                                                  created_at=now)
                )
                await conn.execute(
                    insert(schema.inmates).values(id="i1", facility_id="f1", name="b",
                                                  created_at=now)
                )
        await conn.execute(
            insert(schema.inmates).values(id="i2", facility_id="f1", name="c", created_at=now)
        )
    async with engine.connect() as conn:
        ids = (await conn.execute(select(schema.inmates.c.id))).scalars().all()
    assert ids == ["i2"]


async def test_write_transaction_serialises_read_then_write(engine: AsyncEngine) -> None:
    """Two read-count-then-insert transactions never both see the same count."""
    async with engine.begin() as conn:
        await conn.execute(insert(schema.facilities).values(**_facility()))
    now = datetime.now(UTC)

    async def add(n: int) -> int:
        async with write_transaction(engine) as conn:
            if engine.dialect.name == "postgresql":
                # PostgreSQL's READ COMMITTED needs an explicit row lock for this.
                await conn.execute(text("SELECT 1 FROM facilities WHERE id='f1' FOR UPDATE"))
            count = len((await conn.execute(select(schema.inmates.c.id))).all())
            await asyncio.sleep(0.01)
            await conn.execute(
                insert(schema.inmates).values(
                    id=f"i{n}", facility_id="f1", name=f"n{count}", created_at=now
                )
            )
            return count

    counts = await asyncio.gather(*(add(n) for n in range(5)))
    assert sorted(counts) == [0, 1, 2, 3, 4]


async def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "kiosk.sqlite3"
    eng = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with eng.connect() as conn:
            fk = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert (fk, mode.lower()) == (1, "wal")
        assert busy >= 1000
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        await eng.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(url: str, expected: str) -> None:
    assert normalise_url(url).drivername == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle://h/x", "sqlite+pysqlcipher:///x"])
def test_unsupported_databases_are_refused(url: str) -> None:
    with pytest.raises(DatabaseURLError):
        normalise_url(url)


async def test_api_tokens_are_listed_by_id_and_revoked_one_at_a_time(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        staff = await insert_staff(conn, "ops", "Ops", "x", Role.ADMIN, now)
        # Two hashes sharing a first digit, and one with LIKE's wildcards in it.
        for digest, label in (("a" * 64, "one"), ("a" + "b" * 63, "two"), ("_%" * 32, "odd")):
            await insert_api_token(conn, digest, staff, label, now, None)
    async with engine.begin() as conn:
        listed = await list_api_tokens(conn)
        assert {(tok.id, tok.label, tok.revoked) for tok in listed} == {
            ("a" * 16, "one", False), ("a" + "b" * 15, "two", False), ("_%" * 8, "odd", False)
        }
        assert all(tok.username == "ops" and tok.staff_id == staff for tok in listed)
        assert await revoke_api_token(conn, "a" * 15) is None  # not a whole id
        revoked = await revoke_api_token(conn, "_%" * 8)
        assert revoked is not None and revoked.label == "odd"
    async with engine.connect() as conn:
        assert await find_api_token(conn, "_%" * 32, now) is None
        assert await find_api_token(conn, "a" * 64, now) is not None
        assert [tok.label for tok in await list_api_tokens(conn) if tok.revoked] == ["odd"]
