"""What every request and response body of the staff API shares: the base models, the
field types (times in UTC within range, ids, names, notes) and the error body.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from kiosk.domain.reasons import Reason

# Dates and times are written in the years 1970 to 8999: far enough either way for
# any booking or record, and far from datetime's limits at any UTC offset, so that
# week and day arithmetic on a value can never overflow. The OpenAPI document says
# the same with a pattern on the year as written (the server checks that pattern).
FIRST_YEAR, LAST_YEAR = 1970, 8999
YEAR_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"
# RFC 3339 (the JSON Schema ``date-time`` format): nothing looser is taken.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _written(shape: re.Pattern[str], parse: Callable[[str], Any], what: str) -> Any:
    """Only RFC 3339 text in the years allowed, parsed here (strict models take no text)."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the model refuses it for its type
        if not shape.fullmatch(value):
            raise ValueError(f"not an RFC 3339 {what}")
        if not re.match(YEAR_PATTERN, value):
            raise ValueError(f"{what} out of range (years {FIRST_YEAR} to {LAST_YEAR})")
        return parse(value.upper())

    return BeforeValidator(check)


# Every date-time the API takes lies between these (the years as written, at any offset).
EARLIEST = datetime(FIRST_YEAR - 1, 12, 31, tzinfo=UTC)
LATEST = datetime(LAST_YEAR + 1, 1, 2, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _integral(value: Any) -> Any:
    """JSON has one kind of number: 5.0 is the integer 5 (JSON Schema says so too)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The IANA time zones this machine knows: the document lists them, the server takes no other.
ZONES = sorted(zoneinfo.available_timezones())
_ZONE_SET = frozenset(ZONES)


def _known_zone(value: str) -> str:
    if value not in _ZONE_SET:
        raise ValueError("unknown time zone")
    return value


UtcDatetime = Annotated[
    AwareDatetime,
    _written(_RFC3339, datetime.fromisoformat, "date-time"),
    AfterValidator(_utc),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEAR_PATTERN}),
]
Day = Annotated[
    date,
    _written(_FULL_DATE, date.fromisoformat, "date"),
    WithJsonSchema({"type": "string", "format": "date", "pattern": YEAR_PATTERN}),
]
# After the bounds, so that the document shows them as minimum and maximum.
INTEGRAL = BeforeValidator(_integral)
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
]
Note = Annotated[str, StringConstraints(max_length=500)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Location = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Zone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_known_zone),
    WithJsonSchema({"type": "string", "enum": ZONES}),
]
SmallCount = Annotated[int, Field(ge=0, le=1000), INTEGRAL]
Minutes = Annotated[int, Field(ge=1, le=10080), INTEGRAL]


def when(field: str, value: str, then: dict[str, Any], otherwise: dict[str, Any]) -> Any:
    """A rule tying two fields, said in the OpenAPI document as JSON Schema's if/then/else
    (the handler checks it: 400 ``invalid_request``)."""
    condition = {"properties": {field: {"const": value}}, "required": [field]}
    return {"if": condition, "then": then, "else": otherwise}


NOT_NULL: dict[str, Any] = {"not": {"type": "null"}}
NULL: dict[str, Any] = {"type": "null"}


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
