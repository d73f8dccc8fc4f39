"""Live and past calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.signalling.schemas.base import Day, Id, Query, Response


# A call as stored: validated from kiosk.store.calls.CallRecord.
class CallOut(Response):
    id: str
    booking_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: Category
    route: Route
    control: ControlLevel
    state: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    connected_seconds: int


class CallList(Response):
    items: list[CallOut]


class CallListQuery(Query):
    live: bool | None = None
    inmate_id: Id | None = None
    day: Day | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 200
