"""Database engines and migrations, for SQLite (embedded) and PostgreSQL (production).

``make_engine(url)`` gives an :class:`AsyncEngine` set up the same way every
time; ``await upgrade(url)`` brings a database to the newest schema with
Alembic. Both work from inside a running event loop. After a change to
``kiosk/store/schema.py``, ``python -m kiosk.store.db "what changed"`` writes
the next migration (tests/integration/test_store.py fails until there is one).

SQLite notes. Every connection gets ``foreign_keys=ON`` (SQLite's default is
off), ``journal_mode=WAL`` (readers never wait for the writer) and a busy
timeout. Transactions start with a real ``BEGIN``: the sqlite3 module's own
habit of starting them only before the first write would let a transaction
read outside itself and break SAVEPOINT. ``write_transaction(engine)`` starts
one with ``BEGIN IMMEDIATE`` instead, for a read-then-write that must not
race another writer (SQLite has one writer at a time; a deferred transaction
that reads first and writes second can fail with "database is locked" when a
write slipped in between). One rule follows for callers: while a task holds
a write transaction open on SQLite, it must not wait for another connection
that writes (pass the connection along instead, as ``AuditLog.append`` allows).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from kiosk.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")

# Seconds a SQLite connection waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30

# Any fixed number: PostgreSQL advisory lock that serialises concurrent upgrades.
_UPGRADE_LOCK_KEY = 0x6B696F736B  # "kiosk"

_BEGIN_OPTION = "kiosk_sqlite_begin"


class DatabaseURLError(ValueError):
    """The database URL names an engine or driver the system does not support."""


def normalise_url(url: str | URL) -> URL:
    """The async driver for each supported engine; anything else is refused."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.get_driver_name() not in ("aiosqlite", "pysqlite"):
            raise DatabaseURLError(
                f"unsupported SQLite driver {u.drivername!r}; use sqlite+aiosqlite"
            )
        return u.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        if u.get_driver_name() not in ("asyncpg", "psycopg2", "psycopg"):
            raise DatabaseURLError(
                f"unsupported PostgreSQL driver {u.drivername!r}; use postgresql+asyncpg"
            )
        return u.set(drivername="postgresql+asyncpg")
    raise DatabaseURLError(f"unsupported database {backend!r}; use SQLite or PostgreSQL")


def _sqlite_file(u: URL) -> Path | None:
    db = u.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def make_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://…``).

    For a SQLite file the parent directory (0700) and the file (0600) are
    created: the database holds personal data.
    """
    u = normalise_url(url)
    if u.get_backend_name() == "sqlite":
        path = _sqlite_file(u)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # An empty file is an empty database; made here so that it (and the
            # -wal and -shm files SQLite derives from it) is 0600 from the start.
            path.touch(mode=0o600, exist_ok=True)
        engine = create_async_engine(u, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(u, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # No implicit BEGIN from the driver: _on_begin emits our own.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            # The busy timeout first: switching a new file to WAL needs a lock that a
            # concurrent connection may hold, and without it SQLite fails at once.
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
        finally:
            cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN.

    On PostgreSQL it is an ordinary transaction (READ COMMITTED).
    """
    async with engine.connect() as conn:
        if is_sqlite(engine):
            conn = await conn.execution_options(**{_BEGIN_OPTION: "immediate"})
        async with conn.begin():
            yield conn


# --- migrations ------------------------------------------------------------


def alembic_config() -> Config:
    """Alembic's configuration, built in code so that nothing depends on the cwd."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("version_table", "alembic_version")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade_sync(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _current_sync(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest). Idempotent."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with write_transaction(engine) as conn:
            if not is_sqlite(engine):
                # Two processes upgrading at once wait for each other.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK_KEY}
                )
            await conn.run_sync(_upgrade_sync, revision)
    finally:
        await engine.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)


def upgrade_blocking(url: str | URL, revision: str = "head") -> None:
    """``upgrade`` for synchronous callers (commands): runs its own event loop."""
    asyncio.run(upgrade(url, revision))


async def make_revision(message: str) -> None:
    """Write a new migration for what changed in ``kiosk.store.schema`` since the last one.

    Autogenerates against a scratch SQLite database at head; read the result
    by hand before committing (``python -m kiosk.store.db "what changed"``).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'scratch.sqlite3'}"
        await upgrade(url)
        engine = make_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:

                def _revision(sync_conn: Connection) -> None:
                    cfg = alembic_config()
                    cfg.attributes["connection"] = sync_conn
                    command.revision(cfg, message=message, autogenerate=True)

                await conn.run_sync(_revision)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit('usage: python -m kiosk.store.db "what changed in the schema"')
    asyncio.run(make_revision(sys.argv[1]))


async def ping(engine: AsyncEngine) -> None:
    """Ask the database for nothing: it answers, or this raises (the watchdog's check)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def count_rows(conn: AsyncConnection, table_name: str) -> int:
    """Rows in a table of the schema (tests and the demo check what was written)."""
    table = metadata.tables[table_name]
    return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)
