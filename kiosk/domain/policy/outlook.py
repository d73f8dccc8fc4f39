"""What a booking would meet, shown before it is made (issue 16): the inmate's weekly quota
left (R17) and the capacity left in the window (R9). The same counts the booking policy
refuses by, so the form and the refusal can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.domain.model import (
    Booking,
    BookingState,
    Category,
    Contact,
    FacilitySettings,
    Inmate,
    LocationKind,
)
from kiosk.domain.policy.quota import quota_minutes
from kiosk.domain.weeks import week_usage

# R9: bookings that hold a tablet, a room and perhaps a monitoring officer. A used booking's
# call has ended: its slot is free again (its minutes still count towards the quota, R17).
HOLDING_CAPACITY = frozenset({BookingState.BOOKED, BookingState.HELD})


@dataclass(frozen=True, slots=True)
class Taken:
    """R9: what the live bookings overlapping a window take of the facility's capacity."""

    tablets: int
    rooms: tuple[str, ...]
    monitored: int


def taken(overlapping: Sequence[Booking], start: datetime, end: datetime) -> Taken:
    live = [b for b in overlapping if b.state in HOLDING_CAPACITY and b.overlaps(start, end)]
    rooms = sorted({b.location for b in live if b.location_kind is LocationKind.ROOM})
    return Taken(len(live), tuple(rooms), sum(1 for b in live if b.control.controlled))


@dataclass(frozen=True, slots=True)
class Outlook:
    quota_minutes: int | None  # None: calls with this contact use no quota (R2, R17)
    quota_used_minutes: int
    tablets: int
    tablets_taken: int
    rooms_taken: tuple[str, ...]
    monitoring_staff: int
    monitoring_taken: int

    @property
    def quota_left_minutes(self) -> int | None:
        if self.quota_minutes is None:
            return None
        return max(0, self.quota_minutes - self.quota_used_minutes)


def outlook(
    settings: FacilitySettings,
    inmate: Inmate,
    contact: Contact,
    start: datetime,
    end: datetime,
    overlapping: Sequence[Booking],
    week_bookings: Sequence[Booking],
    categories: Mapping[str, Category],
) -> Outlook:
    def personal(b: Booking) -> bool:
        return categories.get(b.contact_id, Category.PERSONAL).counts_toward_quota

    used = week_usage(inmate.id, start, week_bookings, personal)
    now_taken = taken(overlapping, start, end)
    return Outlook(
        quota_minutes=quota_minutes(settings, contact),
        quota_used_minutes=int(used // timedelta(minutes=1)),
        tablets=settings.tablets,
        tablets_taken=now_taken.tablets,
        rooms_taken=now_taken.rooms,
        monitoring_staff=settings.monitoring_staff,
        monitoring_taken=now_taken.monitored,
    )
