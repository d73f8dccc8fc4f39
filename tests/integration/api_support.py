"""A live staff API for tests: the real server on a loopback port, a real database.

``live_api(tmp_path, db_url)`` starts ``kiosk.signalling.server.start`` with
settings pointing at ``db_url`` and a PKI directory under ``tmp_path``, adds
one staff member and one bearer token per role, and gives a small client.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from kiosk.domain.model import Role
from kiosk.runtime.config import Settings
from kiosk.signalling import auth
from kiosk.signalling.api.base import Operation
from kiosk.signalling.context import utc_now
from kiosk.signalling.server import Server, start
from kiosk.signalling.web import set_password
from kiosk.store import schema as t
from kiosk.store.db import count_rows, write_transaction
from kiosk.store.staff import insert_staff

PASSWORD = "correct horse battery staple"


@dataclass
class LiveApi:
    server: Server
    http: aiohttp.ClientSession
    tokens: dict[Role, str] = field(default_factory=dict)
    staff_ids: dict[Role, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.api_url

    def username(self, role: Role) -> str:
        return f"{role.value}-user"

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: Role | None = Role.ADMIN,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request with ``role``'s bearer token (None: no credentials); (status, JSON)."""
        hdrs = dict(headers or {})
        if role is not None:
            hdrs["Authorization"] = f"Bearer {self.tokens[role]}"
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=hdrs, params=params
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body

    async def counts(self) -> dict[str, int]:
        """Rows in every table: what a refused request must leave unchanged."""
        async with self.server.context.engine.connect() as conn:
            return {name: await count_rows(conn, name) for name in t.metadata.tables}


def settings_for(
    tmp_path: Path, db_url: str, web: Mapping[str, Any] | None = None, **server: Any
) -> Settings:
    return Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path / "data"), "web_port": 0, **server},
            "web": dict(web or {}),
            "database": {"url": db_url},
            "pki": {"dir": str(tmp_path / "pki")},
            # Mails (confirmations, notices) land as files: no SMTP server is asked.
            "mail": {"transport": "folder", "folder": str(tmp_path / "mail")},
        }
    )


def admin_config(tmp_path: Path, db_url: str) -> Path:
    """The operator's configuration for ``kiosk admin`` on the live API's database and PKI."""
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "{db_url}"\n'
        f'[pki]\ndir = "{tmp_path / "pki"}"\n'
    )
    return config


async def kiosk_admin(config: Path, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """``kiosk admin ARGS --config CONFIG`` as the operator runs it: (exit code, out, err)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kiosk", "admin", *args, "--config", str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@functools.cache
def password_hash() -> str:
    """One argon2 hash per test session: each costs a noticeable fraction of a second."""
    return auth.hash_password(PASSWORD)


async def add_role_users(api: LiveApi) -> None:
    ctx = api.server.context
    now = ctx.clock()
    async with write_transaction(ctx.engine) as conn:
        for role in Role:
            staff_id = await insert_staff(
                conn, api.username(role), f"{role.value} person", password_hash(), role, now
            )
            await ctx.audit.append("system", "staff.added", {"staff": staff_id}, conn=conn)
            api.staff_ids[role] = staff_id
            api.tokens[role] = await auth.issue_api_token(conn, ctx.audit, staff_id, "test", now)


@asynccontextmanager
async def live_api(
    tmp_path: Path,
    db_url: str,
    *,
    client_ssl: ssl.SSLContext | None = None,
    operations: Sequence[Operation] = (),
    configure: Callable[[web.Application], None] | None = None,
    web_settings: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] = utc_now,
    **server: Any,
) -> AsyncIterator[LiveApi]:
    def pages(app: web.Application) -> None:
        set_password.add_routes(app)  # staff set their own passwords by link (issue 16)
        if configure is not None:
            configure(app)

    srv = await start(
        settings_for(tmp_path, db_url, web_settings, **server),
        operations=operations,
        configure=pages,
        clock=clock,
    )
    try:
        connector = aiohttp.TCPConnector(ssl=client_ssl) if client_ssl else None
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as http:
            api = LiveApi(server=srv, http=http)
            await add_role_users(api)
            yield api
    finally:
        await srv.close()
