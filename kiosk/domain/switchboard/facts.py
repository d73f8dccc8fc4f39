"""The facts the store holds about a call, loaded by the runner just before an event.

The switchboard never reads the store: the runner's facts loader gathers
these and passes them in the event. They may be a moment old when the event
is handled; the switchboard corrects what it knows better (a booking a call
has just used, see ``Switchboard.spent``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from kiosk.domain.model import (
    Booking,
    BookingState,
    Category,
    Contact,
    Device,
    FacilitySettings,
    Inmate,
)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What a dial or a set-up is judged on (policy.place_call) besides the live calls."""

    device: Device
    booking: Booking
    inmate: Inmate
    contact: Contact
    settings: FacilitySettings
    week_bookings: tuple[Booking, ...]  # the inmate's bookings in the booking's week (R17)
    categories: Mapping[str, Category]  # their contacts' categories

    def with_booking_state(self, state: BookingState) -> CallFacts:
        return replace(self, booking=replace(self.booking, state=state))


@dataclass(frozen=True, slots=True)
class InviteFacts:
    """A visitor's invite, with its booking and contact."""

    invite_id: str
    booking: Booking
    contact: Contact
    valid_from: datetime
    valid_until: datetime

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until
