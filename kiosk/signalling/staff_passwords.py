"""Staff set their own passwords (issue 16): one-time links, and changing one's own.

An admin never types another person's password. A new account has no usable
password; its owner sets one through a one-time link (``kiosk admin staff
add`` prints it, the console's "Send a set-password link" mails it or shows
it once). The link's token (256 random bits) is stored only as its SHA-256,
is bound to one account, works once, expires after
``server.password_link_hours``, and a newer link for the account voids it.
Neither token nor password ever reaches a log or the audit chain.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.reasons import Reason
from kiosk.signalling import auth
from kiosk.store import staff_links
from kiosk.store.staff import StaffRecord, delete_staff_sessions, get_staff, set_staff_password

if TYPE_CHECKING:
    from kiosk.audit.log import AuditLog

MIN_PASSWORD = 12
SET_PASSWORD_PATH = "/staff/set-password/"  # noqa: S105 (a path)


def link_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}{SET_PASSWORD_PATH}{token}"


async def issue_link(
    conn: AsyncConnection,
    audit: AuditLog,
    staff_id: str,
    now: datetime,
    lifetime: timedelta,
    actor: str = "system",
    mailed: bool = False,
) -> tuple[str, datetime]:
    """A new link for ``staff_id`` (older ones die); the token, shown once, and its end."""
    token = auth.new_token()
    expires_at = now + lifetime
    await staff_links.insert_link(conn, auth.hash_secret(token), staff_id, now, expires_at)
    await audit.append(
        actor, "staff.password_link_issued", {"staff": staff_id},
        {"mailed": mailed, "expires_at": expires_at.isoformat()}, conn=conn,
    )  # fmt: skip
    return token, expires_at


async def link_account(
    conn: AsyncConnection, token: str, now: datetime
) -> StaffRecord | Reason:
    """The active account a live link is for, or why the link does not work."""
    if not token or len(token) > 256:
        return Reason.PASSWORD_LINK_UNKNOWN
    link = await staff_links.find_link(conn, auth.hash_secret(token))
    if link is None:
        return Reason.PASSWORD_LINK_UNKNOWN
    if link.used_at is not None:
        return Reason.PASSWORD_LINK_USED
    if link.replaced_at is not None:
        return Reason.PASSWORD_LINK_REPLACED
    if link.expires_at <= now:
        return Reason.PASSWORD_LINK_EXPIRED
    staff = await get_staff(conn, link.staff_id)
    if staff is None or not staff.active:
        return Reason.PASSWORD_LINK_UNKNOWN  # a deactivated account sets nothing
    return staff


async def set_by_link(
    conn: AsyncConnection, audit: AuditLog, token: str, password_hash: str, now: datetime
) -> StaffRecord | Reason:
    """Use the link: the account's new password, its sessions ended; audited as its owner."""
    staff = await link_account(conn, token, now)
    if isinstance(staff, Reason):
        return staff
    if not await staff_links.use_link(conn, auth.hash_secret(token), now):
        return Reason.PASSWORD_LINK_USED  # another request used it first
    await set_staff_password(conn, staff.id, password_hash)
    await delete_staff_sessions(conn, staff.id)
    await audit.append(
        f"staff:{staff.id}", "staff.password_set", {"staff": staff.id}, {"by": "link"}, conn=conn
    )
    return staff
