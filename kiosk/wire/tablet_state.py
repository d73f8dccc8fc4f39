"""The tablet's state as the server sends it: the inmate, the calls to show, the week.

Pure: part of the signalling messages (``kiosk.wire.messages`` re-exports them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.wire.fields import Id, Name, Short, Text, WireModel

_Message = WireModel


class InmateInfo(_Message):
    id: Id
    name: Name


class ContactEntry(_Message):
    contact_id: Id
    name: Name
    category: Category
    control: ControlLevel
    booking_id: Id
    start: AwareDatetime
    end: AwareDatetime
    callable_now: bool
    # The visitor of this booking has joined (the waiting room or the call).
    visitor_waiting: bool = False


class WeekEntry(_Message):
    """Issue 16: one of the inmate's calls this week and later, booked or held (R16)."""

    booking_id: Id
    name: Name
    category: Category
    start: AwareDatetime
    end: AwareDatetime
    held: bool = False
    held_reason: Text = ""  # the restriction's note, said to the inmate (R16)


class QuotaInfo(_Message):
    """R17: the call time left this week of the ordinary weekly quota."""

    left_minutes: Annotated[int, Field(ge=0)]
    of_minutes: Annotated[int, Field(ge=0)]


class CallInfo(_Message):
    call_id: Id
    state: Short
    control: ControlLevel
    route: Route
    not_after: AwareDatetime


class StateMessage(_Message):
    type: Literal["state"] = "state"
    server_time: AwareDatetime
    device_id: Id
    inmate: InmateInfo | None
    contacts: Annotated[list[ContactEntry], Field(max_length=64)]
    call: CallInfo | None
    week: Annotated[list[WeekEntry], Field(max_length=32)] = Field(default_factory=list)
    quota: QuotaInfo | None = None
