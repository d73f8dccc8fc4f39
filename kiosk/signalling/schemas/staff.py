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


class StaffCreate(Request):
    username: Username
    display_name: Name
    role: Role
    password: Password


class StaffUpdate(Request):
    display_name: Name | None = None
    role: Role | None = None
    active: bool | None = None
    password: Password | None = None


class StaffAccount(Response):
    id: str
    username: str
    display_name: str
    role: Role
    active: bool


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

