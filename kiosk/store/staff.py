"""Staff accounts, their sessions and API tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Role
from kiosk.store import schema as t
from kiosk.store.ids import new_id
from kiosk.store.rows import record


@dataclass(frozen=True, slots=True)
class StaffRecord:
    id: str
    username: str
    display_name: str
    role: Role
    active: bool
    password_hash: str
    email: str = ""


async def insert_staff(
    conn: AsyncConnection,
    username: str,
    display_name: str,
    password_hash: str,
    role: Role,
    now: datetime,
    email: str = "",
) -> str:
    staff_id = new_id()
    await conn.execute(
        insert(t.staff).values(
            id=staff_id,
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            role=role.value,
            active=True,
            created_at=now,
            email=email,
        )
    )
    return staff_id


async def get_staff(conn: AsyncConnection, staff_id: str) -> StaffRecord | None:
    row = (await conn.execute(select(t.staff).where(t.staff.c.id == staff_id))).first()
    return None if row is None else record(StaffRecord, row)


async def get_staff_by_username(conn: AsyncConnection, username: str) -> StaffRecord | None:
    row = (await conn.execute(select(t.staff).where(t.staff.c.username == username))).first()
    return None if row is None else record(StaffRecord, row)


async def list_staff(conn: AsyncConnection) -> list[StaffRecord]:
    rows = await conn.execute(select(t.staff).order_by(t.staff.c.username))
    return [record(StaffRecord, r) for r in rows.all()]


async def update_staff(conn: AsyncConnection, staff_id: str, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(update(t.staff).where(t.staff.c.id == staff_id).values(**values))


async def delete_staff_sessions(
    conn: AsyncConnection, staff_id: str, keep: str | None = None
) -> None:
    """End the account's sessions; all but the one hashed ``keep``, if given."""
    sessions = t.staff_sessions
    query = delete(sessions).where(sessions.c.staff_id == staff_id)
    if keep is not None:
        query = query.where(sessions.c.token_hash != keep)
    await conn.execute(query)


async def set_staff_password(conn: AsyncConnection, staff_id: str, password_hash: str) -> None:
    await conn.execute(
        update(t.staff).where(t.staff.c.id == staff_id).values(password_hash=password_hash)
    )


async def insert_session(
    conn: AsyncConnection,
    token_hash: str,
    staff_id: str,
    csrf_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(t.staff_sessions).values(
            token_hash=token_hash,
            staff_id=staff_id,
            csrf_token=csrf_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def find_session(
    conn: AsyncConnection, token_hash: str, now: datetime
) -> tuple[StaffRecord, str] | None:
    """The live session's staff member and CSRF hash; expired sessions are not found."""
    row = (
        await conn.execute(
            select(t.staff, t.staff_sessions.c.csrf_token)
            .join(t.staff_sessions, t.staff_sessions.c.staff_id == t.staff.c.id)
            .where(t.staff_sessions.c.token_hash == token_hash)
            .where(t.staff_sessions.c.expires_at > now)
        )
    ).first()
    return None if row is None else (record(StaffRecord, row), row.csrf_token)


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.token_hash == token_hash))


async def delete_expired_sessions(conn: AsyncConnection, now: datetime) -> None:
    await conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.expires_at <= now))


async def insert_api_token(
    conn: AsyncConnection,
    token_hash: str,
    staff_id: str,
    label: str,
    now: datetime,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        insert(t.api_tokens).values(
            token_hash=token_hash,
            staff_id=staff_id,
            label=label,
            created_at=now,
            expires_at=expires_at,
            revoked=False,
        )
    )


# A token's public id: the start of its hash, never the token. 64 bits of a hash
# of a random secret say nothing of it, and are plenty to tell tokens apart.
TOKEN_ID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class ApiTokenRecord:
    id: str
    staff_id: str
    username: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool


async def list_api_tokens(conn: AsyncConnection) -> list[ApiTokenRecord]:
    rows = await conn.execute(
        select(t.api_tokens, t.staff.c.username)
        .join(t.staff, t.api_tokens.c.staff_id == t.staff.c.id)
        .order_by(t.api_tokens.c.created_at, t.api_tokens.c.token_hash)
    )
    return [
        record(ApiTokenRecord, r, id=r.token_hash[:TOKEN_ID_LENGTH], revoked=bool(r.revoked))
        for r in rows
    ]


async def revoke_api_token(conn: AsyncConnection, token_id: str) -> ApiTokenRecord | None:
    """Revoke the one token whose id is ``token_id``; None if no single token has it."""
    matches = [tok for tok in await list_api_tokens(conn) if tok.id == token_id]
    if len(matches) != 1:
        return None
    await conn.execute(
        update(t.api_tokens)
        .where(t.api_tokens.c.token_hash.startswith(token_id, autoescape=True))
        .values(revoked=True)
    )
    return matches[0]


async def find_api_token(
    conn: AsyncConnection, token_hash: str, now: datetime
) -> StaffRecord | None:
    row = (
        await conn.execute(
            select(t.staff)
            .join(t.api_tokens, t.api_tokens.c.staff_id == t.staff.c.id)
            .where(t.api_tokens.c.token_hash == token_hash)
            .where(t.api_tokens.c.revoked.is_(False))
            .where((t.api_tokens.c.expires_at.is_(None)) | (t.api_tokens.c.expires_at > now))
        )
    ).first()
    return None if row is None else record(StaffRecord, row)
