"""What the kiosk page shows (GET /api/state): the tablet's state as plain JSON.

Pure: built from the server's last state, the live call and the phase, at
a monotonic instant given as an argument. Which bookings are callable now
is judged by the server's clock (its last state plus the monotonic time
since), not by the stale flag in that state nor the tablet's wall clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kiosk.device.actions import Phase
from kiosk.device.live import LiveCall
from kiosk.wire.messages import StateMessage


def server_now(state: StateMessage | None, state_at: float, mono: float) -> datetime | None:
    """The server's clock now, from its last state plus the monotonic time since."""
    if state is None:
        return None
    return state.server_time + timedelta(seconds=max(0.0, mono - state_at))


def open_bookings(state: StateMessage | None, state_at: float, mono: float) -> frozenset[str]:
    """The bookings whose window is open now by the server's clock (not its stale flag)."""
    now = server_now(state, state_at, mono)
    if state is None or now is None:
        return frozenset()
    return frozenset(c.booking_id for c in state.contacts if c.start <= now < c.end)


def contacts_view(state: StateMessage | None, open_now: frozenset[str]) -> list[dict[str, Any]]:
    if state is None:
        return []
    return [
        {
            "contact_id": c.contact_id,
            "name": c.name,
            "category": c.category.value,
            "control": c.control.value,
            "privileged": c.category.privileged,
            "monitored": sorted(k.value for k in c.control.media_kinds),
            "booking_id": c.booking_id,
            "start": c.start.isoformat(),
            "end": c.end.isoformat(),
            "callable_now": c.booking_id in open_now,
            "visitor_waiting": c.visitor_waiting,  # issue 16: "Kari is in the waiting room"
        }
        for c in state.contacts
    ]


def call_view(live: LiveCall | None, phase: Phase, mono: float) -> dict[str, Any] | None:
    if live is None:
        return None
    g = live.grant
    return {
        "call_id": g.call_id,
        "contact_id": g.contact_id,
        "contact_name": live.contact_name,
        "category": g.category.value,
        "privileged": g.category.privileged,
        "control": g.control.value,
        "monitored": sorted(k.value for k in g.control.media_kinds),
        "route": g.route.value,
        "not_after": g.not_after.isoformat(),
        "remaining_seconds": round(live.accepted.deadline.remaining(mono), 1),
        "warnings": sorted(live.warned, reverse=True),
        "verification_code": live.verification_code,
        "reconnecting": live.renewals > 0 and phase is Phase.CONNECTING,
        # Issue 16: a reloaded page turns its new tracks off as the inmate left them.
        "audio": live.audio,
        "video": live.video,
    }
