"""Logging in, who is asking, and staff accounts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kiosk.domain.model import Role
from kiosk.signalling.schemas.base import Name, Request, Response


class LoginRequest(Request):
    username: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class StaffOut(Response):
    id: str
    username: str
    display_name: str
    role: Role


Username = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s\x00]+$")]
Password = Annotated[str, StringConstraints(min_length=12, max_length=1000)]
# Where a staff member's set-password link is mailed; empty: none.
StaffEmail = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^$|^[^@\s<>\x00]+@[^@\s<>\x00]+$")
]


class StaffCreate(Request):
    """No password: the owner sets it by a one-time link (issue 16)."""

    username: Username
    display_name: Name
    role: Role
    email: StaffEmail = ""


class StaffUpdate(Request):
    """No password: an admin never sets another person's (issue 16)."""

    display_name: Name | None = None
    role: Role | None = None
    active: bool | None = None
    email: StaffEmail | None = None


class StaffAccount(Response):
    id: str
    username: str
    display_name: str
    role: Role
    active: bool
    email: str


class PasswordLinkOut(Response):
    """Mailed to the account's address; else ``url`` is the link, shown this once."""

    staff_id: str
    mailed: bool
    url: str | None
    expires_at: datetime


class OwnPasswordChange(Request):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    new_password: Password


class StaffList(Response):
    items: list[StaffAccount]


class LoginResponse(Response):
    csrf_token: str
    expires_at: datetime
    staff: StaffOut


class MeResponse(Response):
    staff: StaffOut
    via: Literal["session", "token"]
    # What this role may do (kiosk.domain.access), so a client offers nothing else.
    actions: list[str] = Field(default_factory=list)

