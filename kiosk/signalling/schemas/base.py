"""What every request and response body of the staff API shares: the base models, the
field types (times in UTC within range, ids, names, notes) and the error body.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from kiosk.domain.reasons import Reason

# Far enough either way for any booking or record, and far from datetime's
# limits, so that week and day arithmetic on a value can never overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    try:
        at = value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-12:00
        raise ValueError("date-time out of range") from exc
    if not EARLIEST <= at < LATEST:
        raise ValueError("date-time out of range (1970 to 9000)")
    return at


def _known_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
]
Note = Annotated[str, StringConstraints(max_length=500)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Location = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Zone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_known_zone)]
SmallCount = Annotated[int, Field(ge=0, le=1000)]
Minutes = Annotated[int, Field(ge=1, le=10080)]


class Request(BaseModel):
    """A request body: strict JSON types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters arrive as text, so they are parsed (not strict) but still closed."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """A response body: built from the store's typed records by attribute (``model_validate``)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


class ErrorBody(Response):
    code: Reason
    message: str


class ErrorResponse(Response):
    error: ErrorBody


class Empty(Response):
    pass
