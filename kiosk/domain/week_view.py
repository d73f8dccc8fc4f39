"""The inmate's week as the tablet shows it (issue 16): the calls booked from today on,
the held ones with the restriction's reason (R16), and the call time left (R17).

Pure: the store's bookings, contacts and settings and ``now`` in, plain values out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.domain.model import Booking, BookingState, Category, Contact, FacilitySettings
from kiosk.domain.weeks import week_usage

SHOWN_STATES = (BookingState.BOOKED, BookingState.HELD)
MAX_ENTRIES = 32


@dataclass(frozen=True, slots=True)
class WeekCall:
    booking: Booking
    contact: Contact
    held_reason: str  # "" unless held


def held_reason(booking: Booking, settings: FacilitySettings) -> str:
    """The note of the restriction that holds ``booking`` (R16), or its kind."""
    for r in settings.restrictions:
        if booking.overlaps(r.start, r.end):
            return r.note or r.kind.value
    return ""


def week_calls(
    bookings: Sequence[Booking],
    contacts: Mapping[str, Contact],
    settings: FacilitySettings,
    now: datetime,
) -> list[WeekCall]:
    """Booked and held calls not yet over, soonest first."""
    ahead = [b for b in bookings if b.state in SHOWN_STATES and b.end > now]
    shown = sorted((b for b in ahead if b.contact_id in contacts), key=lambda b: (b.start, b.id))
    return [
        WeekCall(
            b,
            contacts[b.contact_id],
            held_reason(b, settings) if b.state is BookingState.HELD else "",
        )
        for b in shown[:MAX_ENTRIES]
    ]


def quota_left(
    inmate_id: str,
    bookings: Sequence[Booking],
    categories: Mapping[str, Category],
    settings: FacilitySettings,
    now: datetime,
) -> tuple[int, int]:
    """(minutes left, of minutes) of the ordinary weekly quota in the week of ``now`` (R17)."""

    def counts(b: Booking) -> bool:
        return categories.get(b.contact_id, Category.PERSONAL).counts_toward_quota

    used = week_usage(inmate_id, now, bookings, counts)
    quota = timedelta(minutes=settings.weekly_quota_minutes)
    return int(max(timedelta(), quota - used).total_seconds() // 60), settings.weekly_quota_minutes
