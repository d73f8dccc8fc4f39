"""Staff authentication: argon2 passwords, session cookies with CSRF, bearer tokens.

- Passwords are hashed with argon2id (argon2-cffi's defaults); an unknown user
  costs the same hash as a known one, so timing does not tell them apart.
- A login makes a session: a random token in the ``kiosk_session`` cookie
  (HttpOnly, SameSite=Strict, Secure when the listener speaks TLS) and a CSRF
  token returned in the body. Both are stored only as SHA-256 hashes. Every
  state-changing request made with the cookie must carry the CSRF token in
  ``X-CSRF-Token``.
- Automation uses ``Authorization: Bearer <token>`` from ``kiosk admin token
  create``; the token is stored hashed. A bearer request carries no ambient
  credential, so it needs no CSRF token.
- How fast a client may guess is the login throttle's business
  (``kiosk/domain/login_throttle.py``): a growing delay for the client that
  fails, never a lockout of the account.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Role
from kiosk.store import staff as staff_store
from kiosk.store.staff import (
    TOKEN_ID_LENGTH,
    ApiTokenRecord,
    StaffRecord,
    delete_expired_sessions,
    find_api_token,
    find_session,
    get_staff_by_username,
    insert_api_token,
    insert_session,
    insert_staff,
)

if TYPE_CHECKING:
    from kiosk.audit.log import AuditLog

SESSION_COOKIE = "kiosk_session"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_BYTES = 32  # 256 bits

# The password hash of an account whose owner has not set a password yet (issue 16):
# no argon2 hash, so no password matches it.
NO_PASSWORD = "!"  # noqa: S105 (a marker, not a secret)

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost one argon2 run.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Issue 12: an argon2 run takes about a second of CPU under load; on the event loop it
# would stall every call the server forwards. The server hashes on these threads
# (argon2-cffi lets go of the GIL), two at a time: a burst of logins waits its turn
# instead of taking every core and 64 MiB of memory per hash.
_ARGON2 = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


async def hash_password_off_loop(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_ARGON2, hash_password, password)


async def verify_password_off_loop(password_hash: str, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_ARGON2, verify_password, password_hash, password)


def hash_secret(token: str) -> str:
    """SHA-256 of a high-entropy token (sessions, CSRF, API tokens): enough, and indexable."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_secret(given: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(given), stored_hash)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class Principal:
    """The staff member behind a request, and how they proved it."""

    staff_id: str
    username: str
    display_name: str
    role: Role
    via: Literal["session", "token"]
    csrf_hash: str | None = None  # sessions only
    session_hash: str | None = None

    @property
    def actor(self) -> str:
        """The audit chain's name for this person (ids, never names)."""
        return f"staff:{self.staff_id}"


def _principal(
    staff: StaffRecord,
    via: Literal["session", "token"],
    csrf_hash: str | None = None,
    session_hash: str | None = None,
) -> Principal:
    return Principal(
        staff_id=staff.id,
        username=staff.username,
        display_name=staff.display_name,
        role=staff.role,
        via=via,
        csrf_hash=csrf_hash,
        session_hash=session_hash,
    )


async def check_password(
    conn: AsyncConnection, username: str, password: str
) -> StaffRecord | None:
    staff = await get_staff_by_username(conn, username)
    if staff is None or not staff.active or staff.password_hash == NO_PASSWORD:
        await verify_password_off_loop(_DUMMY_HASH, password)  # the same cost as a known one
        return None
    if not await verify_password_off_loop(staff.password_hash, password):
        return None
    return staff


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


async def create_session(
    conn: AsyncConnection, staff_id: str, now: datetime, lifetime: timedelta
) -> NewSession:
    token, csrf = new_token(), new_token()
    expires_at = now + lifetime
    await delete_expired_sessions(conn, now)
    await insert_session(
        conn, hash_secret(token), staff_id, hash_secret(csrf), now, expires_at
    )
    return NewSession(token=token, csrf_token=csrf, expires_at=expires_at)


async def session_principal(conn: AsyncConnection, token: str, now: datetime) -> Principal | None:
    if not token or len(token) > 256:
        return None
    token_hash = hash_secret(token)
    found = await find_session(conn, token_hash, now)
    if found is None or not found[0].active:
        return None
    staff, csrf_hash = found
    return _principal(staff, "session", csrf_hash=csrf_hash, session_hash=token_hash)


async def bearer_principal(conn: AsyncConnection, token: str, now: datetime) -> Principal | None:
    if not token or len(token) > 256:
        return None
    staff = await find_api_token(conn, hash_secret(token), now)
    if staff is None or not staff.active:
        return None
    return _principal(staff, "token")


async def create_api_token(
    conn: AsyncConnection,
    staff_id: str,
    label: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> str:
    """A new bearer token for ``staff_id``; shown once, stored hashed."""
    token = new_token()
    await insert_api_token(conn, hash_secret(token), staff_id, label, now, expires_at)
    return token


def csrf_ok(principal: Principal, header: str | None) -> bool:
    """Sessions must echo their CSRF token on every state change; bearer tokens need none."""
    if principal.via == "token":
        return True
    if not header or principal.csrf_hash is None or len(header) > 256:
        return False
    return same_secret(header, principal.csrf_hash)


async def add_staff(
    conn: AsyncConnection,
    audit: AuditLog,
    username: str,
    display_name: str,
    role: Role,
    password: str | None,
    now: datetime,
    actor: str = "system",
    email: str = "",
) -> str:
    """A new staff account (``kiosk admin staff add``, the demo); audited in ``conn``.
    Without ``password`` it has none until its owner sets one by link (issue 16)."""
    password_hash = NO_PASSWORD if password is None else await hash_password_off_loop(password)
    staff_id = await insert_staff(conn, username, display_name, password_hash, role, now, email)
    await audit.append(actor, "staff.added", {"staff": staff_id}, {"role": role.value}, conn=conn)
    return staff_id


async def issue_api_token(
    conn: AsyncConnection,
    audit: AuditLog,
    staff_id: str,
    label: str,
    now: datetime,
    expires_at: datetime | None = None,
    actor: str = "system",
) -> str:
    """A bearer token for ``staff_id`` (``kiosk admin token create``); audited, shown once."""
    token = await create_api_token(conn, staff_id, label, now, expires_at)
    token_id = hash_secret(token)[: TOKEN_ID_LENGTH]
    await audit.append(
        actor, "staff.token_created", {"staff": staff_id, "api_token": token_id}, conn=conn
    )
    return token


async def revoke_api_token(
    conn: AsyncConnection, audit: AuditLog, token_id: str, actor: str = "system"
) -> ApiTokenRecord | None:
    """Revoke a bearer token by its id (``kiosk admin token revoke``); audited."""
    revoked = await staff_store.revoke_api_token(conn, token_id)
    if revoked is not None:
        await audit.append(
            actor, "staff.token_revoked", {"staff": revoked.staff_id, "api_token": token_id},
            conn=conn,
        )
    return revoked
