"""One-time set-password links of staff accounts (issue 16), stored by their token's hash.

A link is bound to one account; issuing a new link for it replaces every
older live one, and a used link is marked so: neither works again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.store import schema as t
from kiosk.store.rows import record


@dataclass(frozen=True, slots=True)
class PasswordLink:
    token_hash: str
    staff_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    replaced_at: datetime | None


async def insert_link(
    conn: AsyncConnection, token_hash: str, staff_id: str, now: datetime, expires_at: datetime
) -> None:
    """A new link for ``staff_id``; the account's older live links are replaced."""
    links = t.staff_password_links
    await conn.execute(
        update(links)
        .where(links.c.staff_id == staff_id)
        .where(links.c.used_at.is_(None))
        .where(links.c.replaced_at.is_(None))
        .values(replaced_at=now)
    )
    await conn.execute(
        insert(links).values(
            token_hash=token_hash, staff_id=staff_id, created_at=now, expires_at=expires_at
        )
    )


async def find_link(conn: AsyncConnection, token_hash: str) -> PasswordLink | None:
    links = t.staff_password_links
    row = (await conn.execute(select(links).where(links.c.token_hash == token_hash))).first()
    return None if row is None else record(PasswordLink, row)


async def use_link(conn: AsyncConnection, token_hash: str, now: datetime) -> bool:
    """Mark the link used; False if it was used or replaced meanwhile (it stays dead)."""
    links = t.staff_password_links
    done = await conn.execute(
        update(links)
        .where(links.c.token_hash == token_hash)
        .where(links.c.used_at.is_(None))
        .where(links.c.replaced_at.is_(None))
        .values(used_at=now)
    )
    return done.rowcount == 1
