"""Visitor invites: the only credential a visitor holds (ARCHITECTURE.md, Trust).

A token is 256 random bits, given to the visitor once and stored only as its
SHA-256, bound to one contact and one booking, and valid from 15 minutes
before the window to its end. Issuing a new invite makes the booking's
earlier links stop working, so a link sent to a wrong address can be
withdrawn by sending a fresh one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Booking
from kiosk.store import invites as invites_store
from kiosk.store.ids import new_id
from kiosk.store.invites import Invite

__all__ = ["EARLY_JOIN", "Invite", "find_invite", "hash_token", "issue_invite"]

EARLY_JOIN = timedelta(minutes=15)
TOKEN_BYTES = 32  # 256 bits
MAX_TOKEN_LENGTH = 128


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_invite(
    conn: AsyncConnection, booking: Booking, now: datetime
) -> tuple[str, Invite]:
    """Make a new token for ``booking``; the caller sends it to the contact and forgets it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invite = Invite(
        id=new_id(),
        booking_id=booking.id,
        contact_id=booking.contact_id,
        valid_from=booking.start - EARLY_JOIN,
        valid_until=booking.end,
    )
    await invites_store.replace_invites(conn, invite, hash_token(token), now)
    return token, invite


async def find_invite(conn: AsyncConnection, token: str) -> Invite | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return await invites_store.find_invite(conn, hash_token(token))
