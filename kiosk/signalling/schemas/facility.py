"""The facility's settings, closures (R15) and restrictions (R16).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AliasGenerator, AliasPath, ConfigDict, Field

from kiosk.domain.model import RestrictionKind
from kiosk.signalling.schemas.base import (
    Location,
    Minutes,
    Name,
    Note,
    Request,
    Response,
    SmallCount,
    UtcDatetime,
    Zone,
)


class ClosureCreate(Request):
    start: UtcDatetime
    end: UtcDatetime
    order_deadline: UtcDatetime | None = None
    note: Note = ""


class ClosureOut(Response):
    id: str
    start: datetime
    end: datetime
    order_deadline: datetime | None
    note: str


class RestrictionCreate(Request):
    start: UtcDatetime
    end: UtcDatetime
    kind: RestrictionKind
    limit_minutes: Minutes | None = None
    note: Note = ""


class RestrictionOut(Response):
    id: str
    start: datetime
    end: datetime
    kind: RestrictionKind
    limit_minutes: int | None
    note: str


class RestrictionCreated(Response):
    """R16: the restriction, and the bookings it put on hold."""

    restriction: RestrictionOut
    held_bookings: list[str]


class RestrictionRemoved(Response):
    """Bookings held only by the removed restriction are booked again."""

    released_bookings: list[str]


class FacilityUpdate(Request):
    name: Name | None = None
    timezone: Zone | None = None
    contact_limit: SmallCount | None = None  # R2
    weekly_quota_minutes: Annotated[int, Field(ge=0, le=10080)] | None = None  # R17
    parent_weekly_quota_minutes: Annotated[int, Field(ge=0, le=10080)] | None = None  # R17
    tablets: SmallCount | None = None  # R9
    rooms: Annotated[list[Location], Field(max_length=100)] | None = None  # R9
    monitoring_staff: SmallCount | None = None  # R9
    max_call_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None  # R10


def _of_facility(name: str) -> str | AliasPath:
    """Validated from a ``Facility``: its settings are read from ``facility.settings``."""
    return name if name in ("id", "name", "timezone") else AliasPath("settings", name)


class FacilityOut(Response):
    model_config = ConfigDict(alias_generator=AliasGenerator(validation_alias=_of_facility))

    id: str
    name: str
    timezone: str
    contact_limit: int
    weekly_quota_minutes: int
    parent_weekly_quota_minutes: int
    tablets: int
    # R9: tablets registered and not revoked; more tablets than these cannot be handed out.
    tablets_in_service: int = 0
    rooms: list[str]
    monitoring_staff: int
    max_call_minutes: int
    closures: list[ClosureOut]
    restrictions: list[RestrictionOut]
