"""Visitor invites: stored as the SHA-256 of their token, which is never stored, and
the nonce the token is derived from (kiosk/signalling/visitors/invites.py;
ARCHITECTURE.md, Trust).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.store import schema as t
from kiosk.store.rows import columns, record


@dataclass(frozen=True, slots=True)
class Invite:
    """A visitor's invite: one contact, one booking, valid around its window."""

    id: str
    booking_id: str
    contact_id: str
    valid_from: datetime
    valid_until: datetime
    nonce: str | None = None  # None: made before links could be sent again (0008)

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until


async def replace_invites(
    conn: AsyncConnection, invite: Invite, token_hash: str, now: datetime
) -> None:
    """``invite`` becomes the booking's only one: earlier links stop working."""
    await conn.execute(delete(t.invites).where(t.invites.c.booking_id == invite.booking_id))
    await conn.execute(
        insert(t.invites).values(**columns(invite), token_hash=token_hash, created_at=now)
    )


async def find_invite(conn: AsyncConnection, token_hash: str) -> Invite | None:
    query = select(t.invites).where(t.invites.c.token_hash == token_hash)
    row = (await conn.execute(query)).first()
    return None if row is None else record(Invite, row)


async def booking_invite(conn: AsyncConnection, booking_id: str) -> tuple[Invite, str] | None:
    """The booking's invite and its token's hash, if it has one."""
    query = select(t.invites).where(t.invites.c.booking_id == booking_id)
    row = (await conn.execute(query)).first()
    return None if row is None else (record(Invite, row), row.token_hash)
