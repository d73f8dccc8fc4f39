"""The visit office's work queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import StringConstraints

from kiosk.signalling.schemas.base import Query, Response

QueueKind = Literal[
    "contact_confirmation", "contact_assessment", "appeal", "police_clearance", "held"
]


class QueueQuery(Query):
    # A name (the inmate's or the contact's) or the start of an inmate's id.
    q: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] = ""


class QueueItemOut(Response):
    kind: QueueKind
    inmate_id: str
    inmate_name: str
    contact_id: str
    contact_name: str
    since: datetime
    booking_id: str | None
    appeal_id: str | None
    start: datetime | None
    end: datetime | None


class QueueOut(Response):
    items: list[QueueItemOut]
    counts: dict[QueueKind, int]
    total: int
