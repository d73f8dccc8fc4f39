"""The facility's settings, closures (R15) and restrictions (R16).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AliasGenerator, AliasPath, ConfigDict, Field, StringConstraints

from kiosk.domain.model import RestrictionKind
from kiosk.signalling.schemas.base import (
    INTEGRAL,
    NOT_NULL,
    NULL,
    Location,
    Minutes,
    Name,
    Note,
    Request,
    Response,
    SmallCount,
    UtcDatetime,
    Zone,
    when,
)

# Issue 16: the visit office's contact details for visitors ("" clears one).
VisitorPhone = Annotated[str, StringConstraints(max_length=40, pattern=r"^[0-9+() .-]*$")]
VisitorEmail = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^$|^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
]
VisitorHours = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^<>\x00-\x1f]*$")]
QuotaMinutes = Annotated[int, Field(ge=0, le=10080), INTEGRAL]


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
    model_config = ConfigDict(
        json_schema_extra=when(
            "kind",
            "limit",
            {"required": ["limit_minutes"], "properties": {"limit_minutes": NOT_NULL}},
            {"properties": {"limit_minutes": NULL}},
        )
    )

    start: UtcDatetime
    end: UtcDatetime
    kind: RestrictionKind
    limit_minutes: Minutes | None = None  # for a limit, and only for a limit
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
    weekly_quota_minutes: QuotaMinutes | None = None  # R17
    parent_weekly_quota_minutes: QuotaMinutes | None = None  # R17
    tablets: SmallCount | None = None  # R9
    rooms: Annotated[list[Location], Field(max_length=100)] | None = None  # R9
    monitoring_staff: SmallCount | None = None  # R9
    max_call_minutes: Annotated[int, Field(ge=1, le=1440), INTEGRAL] | None = None  # R10
    visitor_phone: VisitorPhone | None = None  # issue 16: told to visitors
    visitor_email: VisitorEmail | None = None
    visitor_hours: VisitorHours | None = None


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
    visitor_phone: str
    visitor_email: str
    visitor_hours: str
    closures: list[ClosureOut]
    restrictions: list[RestrictionOut]
