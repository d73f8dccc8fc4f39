"""Bookings (R9-R12, R15-R17).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from kiosk.domain.model import BookingState, ControlLevel, Initiation, LocationKind
from kiosk.signalling.schemas.base import (
    Day,
    Id,
    Location,
    Name,
    Note,
    Query,
    Request,
    Response,
    UtcDatetime,
)


class PoliceClearanceIn(Request):
    """R11: who at the police cleared the call, and when."""

    cleared_by: Name
    cleared_at: UtcDatetime


class PoliceClearanceOut(Response):
    cleared_by: str
    cleared_at: datetime


class BookingCreate(Request):
    inmate_id: Id
    contact_id: Id
    start: UtcDatetime
    end: UtcDatetime
    location_kind: LocationKind
    location: Location
    initiation: Initiation
    police_clearance: PoliceClearanceIn | None = None
    override_closure: bool = False  # R15
    # Issue 16: the visitor's invite goes out with the booking, to a contact with an address.
    send_invite: bool = True


class BookingOut(Response):
    id: str
    inmate_id: str
    contact_id: str
    start: datetime
    end: datetime
    location_kind: LocationKind
    location: str
    initiation: Initiation
    state: BookingState
    control: ControlLevel
    police_clearance: PoliceClearanceOut | None


# Why a new booking's invite did not go out: the clerk chose not, or no address.
InviteNotSent = Literal["not_requested", "no_email"]


class BookingCreated(BookingOut):
    """The booking, and whether its invite went out by e-mail (issue 16)."""

    invite_sent: bool
    invite_sent_to: str | None  # the contact's address, when it went
    invite_not_sent_reason: InviteNotSent | None


class BookingList(Response):
    items: list[BookingOut]


class BookingListQuery(Query):
    day: Day | None = None  # in the facility's time zone
    # Or any span of time, across midnight: the bookings overlapping [ends_after, starts_before).
    ends_after: UtcDatetime | None = None
    starts_before: UtcDatetime | None = None
    inmate_id: Id | None = None
    state: BookingState | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 200


class BookingCancel(Request):
    note: Note = ""


class OutlookQuery(Query):
    contact_id: Id
    start: UtcDatetime
    end: UtcDatetime


class OutlookOut(Response):
    """R17: the week's quota with this contact (null: none applies); R9: what the window's
    live bookings take of the tablets, rooms and monitoring staff."""

    quota_minutes: int | None
    quota_used_minutes: int
    quota_left_minutes: int | None
    tablets: int
    tablets_taken: int
    rooms_taken: list[str]
    monitoring_staff: int
    monitoring_taken: int
