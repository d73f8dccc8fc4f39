"""Visitor invites: the only credential a visitor holds (ARCHITECTURE.md, Trust).

A token is 256 random bits, given to the visitor once and stored only as its
SHA-256, bound to one contact and one booking, and valid from 15 minutes
before the window to its end.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Booking
from kiosk.store.schema import invites

EARLY_JOIN = timedelta(minutes=15)
TOKEN_BYTES = 32  # 256 bits


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Invite:
    id: str
    booking_id: str
    contact_id: str
    valid_from: datetime
    valid_until: datetime

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until


async def issue_invite(
    conn: AsyncConnection, booking: Booking, now: datetime
) -> tuple[str, Invite]:
    """Make a new token for ``booking``; the caller sends it to the contact and forgets it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invite = Invite(
        id=str(uuid.uuid4()),
        booking_id=booking.id,
        contact_id=booking.contact_id,
        valid_from=booking.start - EARLY_JOIN,
        valid_until=booking.end,
    )
    await conn.execute(
        invites.insert().values(
            id=invite.id,
            token_hash=hash_token(token),
            booking_id=invite.booking_id,
            contact_id=invite.contact_id,
            valid_from=invite.valid_from,
            valid_until=invite.valid_until,
            created_at=now,
        )
    )
    return token, invite


async def find_invite(conn: AsyncConnection, token: str) -> Invite | None:
    if not token or len(token) > 128:
        return None
    row = (
        await conn.execute(select(invites).where(invites.c.token_hash == hash_token(token)))
    ).first()
    if row is None:
        return None
    return Invite(
        id=row.id,
        booking_id=row.booking_id,
        contact_id=row.contact_id,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )
