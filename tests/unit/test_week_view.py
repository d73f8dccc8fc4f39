"""The inmate's week on the tablet (issue 16 item 18): calls from now on, held ones with
the restriction's reason (R16), and the ordinary quota left this week (R17)."""

from __future__ import annotations

from dataclasses import replace

from kiosk.domain.model import (
    BookingState,
    Category,
    FacilitySettings,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.week_view import quota_left, week_calls

from .strategies import MINUTE, MONDAY, approved, booking

NOW = MONDAY  # Monday 09:00 UTC


def test_calls_from_now_on_soonest_first_held_ones_with_their_reason() -> None:
    kari = approved()
    lawyer = approved(Category.DEFENCE_COUNSEL)
    over = booking(kari, NOW - 60 * MINUTE, minutes=30)
    later = booking(lawyer, NOW + 2 * 24 * 60 * MINUTE)
    soon = booking(kari, NOW + 60 * MINUTE)
    held = booking(kari, NOW + 3 * 24 * 60 * MINUTE, state=BookingState.HELD)
    cancelled = booking(kari, NOW + 90 * MINUTE, state=BookingState.CANCELLED)
    outbreak = Restriction(
        "r-1", held.start - MINUTE, held.end + MINUTE, RestrictionKind.SUSPEND, note="Outbreak"
    )
    settings = FacilitySettings(restrictions=(outbreak,))
    contacts = {kari.id: kari, lawyer.id: lawyer}
    shown = week_calls([over, later, soon, held, cancelled], contacts, settings, NOW)
    assert [c.booking.id for c in shown] == [soon.id, later.id, held.id]
    assert [c.held_reason for c in shown] == ["", "", "Outbreak"]
    unnamed = FacilitySettings(restrictions=(replace(outbreak, note=""),))
    assert week_calls([held], contacts, unnamed, NOW)[0].held_reason == "suspend"


def test_r17_the_quota_left_counts_personal_calls_of_this_week_only() -> None:
    kari = approved()
    lawyer = approved(Category.DEFENCE_COUNSEL)
    calls = [
        booking(kari, NOW + 60 * MINUTE, minutes=20),
        booking(kari, NOW - 60 * MINUTE, minutes=15, state=BookingState.USED),
        booking(lawyer, NOW + 120 * MINUTE, minutes=60),  # R5: no quota for counsel
        booking(kari, NOW + 7 * 24 * 60 * MINUTE, minutes=30),  # next week
        booking(kari, NOW + 180 * MINUTE, minutes=30, state=BookingState.CANCELLED),
    ]
    categories = {kari.id: kari.category, lawyer.id: lawyer.category}
    settings = FacilitySettings(weekly_quota_minutes=60)
    assert quota_left("inmate-1", calls, categories, settings, NOW) == (25, 60)
    tight = FacilitySettings(weekly_quota_minutes=10)
    assert quota_left("inmate-1", calls, categories, tight, NOW) == (0, 10)
