"""Visitor invites: the only credential a visitor holds (ARCHITECTURE.md, Trust).

A token is 256 bits, HMAC-SHA256 under the server's invite key
(``ServerContext.invite_key``) of the booking and the invite's random nonce.
It is given to the visitor and stored only as its SHA-256, bound to one
contact and one booking, and valid from 15 minutes before the window to its
end. Sending the invite again derives the same link from the stored nonce
(issue 16); a new invite has a new nonce and makes the booking's earlier
links stop working, so a link sent to a wrong address can be withdrawn.
Someone who reads the database learns neither the tokens nor how to make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Booking
from kiosk.store import invites as invites_store
from kiosk.store.ids import new_id
from kiosk.store.invites import Invite

__all__ = [
    "EARLY_JOIN", "Invite", "current_token", "find_invite", "hash_token", "issue_invite",
]

EARLY_JOIN = timedelta(minutes=15)
NONCE_BYTES = 32  # 256 bits
MAX_TOKEN_LENGTH = 128


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def derive_token(key: bytes, booking_id: str, nonce: str) -> str:
    mac = hmac.new(key, f"invite\x00{booking_id}\x00{nonce}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


async def issue_invite(
    conn: AsyncConnection, key: bytes, booking: Booking, now: datetime
) -> tuple[str, Invite]:
    """A new link for ``booking`` (earlier ones stop working); the caller sends it."""
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    token = derive_token(key, booking.id, nonce)
    invite = Invite(
        id=new_id(),
        booking_id=booking.id,
        contact_id=booking.contact_id,
        valid_from=booking.start - EARLY_JOIN,
        valid_until=booking.end,
        nonce=nonce,
    )
    await invites_store.replace_invites(conn, invite, hash_token(token), now)
    return token, invite


async def current_token(
    conn: AsyncConnection, key: bytes, booking: Booking, now: datetime
) -> tuple[str, Invite] | None:
    """The booking's link that still works, to send again, or None when there is none.

    None too for an invite made before nonces (0008) or under another key: its
    token cannot be made again, only replaced.
    """
    found = await invites_store.booking_invite(conn, booking.id)
    if found is None:
        return None
    invite, token_hash = found
    if invite.nonce is None or now >= invite.valid_until or invite.contact_id != booking.contact_id:
        return None
    token = derive_token(key, booking.id, invite.nonce)
    if not hmac.compare_digest(hash_token(token), token_hash):
        return None
    return token, invite


async def find_invite(conn: AsyncConnection, token: str) -> Invite | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return await invites_store.find_invite(conn, hash_token(token))
