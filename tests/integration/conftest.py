"""Database fixtures for integration tests, on SQLite and PostgreSQL.

``db_url`` is an EMPTY database, once per engine: a SQLite file in the test's
temporary directory, and a fresh PostgreSQL database created on the server of
``tests.conftest.POSTGRES_URL`` (named ``kiosk_t_<time>_<random>``, dropped
WITH (FORCE) afterwards), so that tests of several people can run at the same
time on one server. ``engine`` is an upgraded AsyncEngine on such a database.

Speed: migrating every test's database would cost tens of milliseconds each,
so the session migrates one template per engine (a SQLite file, a PostgreSQL
template database) and ``engine`` copies it. The template is made by
``kiosk.store.db.upgrade`` itself, so a copy is exactly a migrated database.
Use ``db_url`` + ``upgrade`` only when the migration itself is under test.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.store.db import make_engine, upgrade
from tests.conftest import POSTGRES_URL

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# Leftovers of killed sessions older than this are dropped at session start.
STALE_AFTER_S = 3 * 3600

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run set-up work on its own loop in a thread: the test's loop is left alone."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_url(name: str) -> URL:
    return make_url(POSTGRES_URL).set(database=name)


def _new_name(prefix: str) -> str:
    return f"{prefix}_{int(time.time())}_{secrets.token_hex(4)}"


async def _pg_admin(sql: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(make_url(POSTGRES_URL)), timeout=10)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _drop_stale() -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(make_url(POSTGRES_URL)), timeout=10)
    try:
        names = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname ~ '^kiosk_t(pl)?_[0-9]+_[0-9a-f]+$'"
        )
        now = int(time.time())
        for (name,) in names:
            if now - int(name.split("_")[-2]) > STALE_AFTER_S:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class _Postgres:
    """Creates and drops per-test databases; one migrated template per session.

    While a test runs, the next migrated database is already being copied in
    a background thread, so a test mostly does not wait for CREATE DATABASE.
    """

    def __init__(self) -> None:
        self.available: str | None = None  # None: fine; otherwise why not
        self.template: str | None = None
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="pg-fixture")
        self._next: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def _do(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._pool.submit(asyncio.run, coro).result()

    def start(self) -> None:
        try:
            self._do(_drop_stale())
        except Exception as exc:  # the server is not there: skip (a failure under KIOSK_STRICT)
            self.available = f"PostgreSQL at {make_url(POSTGRES_URL).host} unreachable: {exc}"

    def require(self) -> None:
        if self.available is not None:
            pytest.skip(self.available)

    def empty_database(self) -> str:
        self.require()
        name = _new_name("kiosk_t")
        self._do(_pg_admin([f'CREATE DATABASE "{name}"']))
        return name

    def _copy_template(self) -> str:
        name = _new_name("kiosk_t")
        asyncio.run(_pg_admin([f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"']))
        return name

    def migrated_database(self) -> str:
        self.require()
        if self.template is None:
            name = _new_name("kiosk_tpl")
            self._do(_pg_admin([f'CREATE DATABASE "{name}"']))
            self._do(upgrade(_pg_url(name)))
            self.template = name
        ready = self._next or self._pool.submit(self._copy_template)
        self._next = self._pool.submit(self._copy_template)
        return ready.result()

    def drop(self, name: str) -> None:
        """In the background: the next test need not wait; stop() waits for all."""
        sql = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']
        self._drops.append(self._pool.submit(asyncio.run, _pg_admin(sql)))

    def stop(self) -> None:
        spare = [self._next.result()] if self._next is not None else []
        for name in spare:
            self.drop(name)
        for done in self._drops:
            done.result()
        if self.template is not None:
            self._do(_pg_admin([f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)']))
        self._pool.shutdown()


class _SQLite:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.template: Path | None = None

    def migrated_file(self, target: Path) -> None:
        if self.template is None:
            path = self.root / "template.sqlite3"
            _run(upgrade(f"sqlite+aiosqlite:///{path}"))
            self.template = path
        shutil.copyfile(self.template, target)


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_Postgres]:
    pg = _Postgres()
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> _SQLite:
    return _SQLite(tmp_path_factory.mktemp("sqlite-template"))


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _postgres: _Postgres) -> Iterator[str]:
    """An empty database on each engine (SQLite file, fresh PostgreSQL database)."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path / "db" / "kiosk.sqlite3")
        return
    name = _postgres.empty_database()
    try:
        yield _pg_url(name).render_as_string(hide_password=False)
    finally:
        _postgres.drop(name)


@pytest.fixture(params=ENGINES)
def migrated_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _postgres: _Postgres,
    _sqlite_template: _SQLite,
) -> Iterator[str]:
    """A database already at the newest schema, on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "db" / "kiosk.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_template.migrated_file(path)
        yield _sqlite_url(path)
        return
    name = _postgres.migrated_database()
    try:
        yield _pg_url(name).render_as_string(hide_password=False)
    finally:
        _postgres.drop(name)


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An upgraded AsyncEngine, once per engine kind (see ``migrated_url``)."""
    eng = make_engine(migrated_url)
    try:
        yield eng
    finally:
        await eng.dispose()
