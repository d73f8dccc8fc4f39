"""What the switchboard holds: its live calls, the visitors' seats, the tablets on line.

Plain data with the questions the rules ask of it. Only the switchboard's
handlers change it, each inside one synchronous step, so no two events can
interleave (the "ghost call" of issue 11 cannot happen here: there is no
await between reading this state and changing it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kiosk.domain.policy import Deny
from kiosk.domain.switchboard.calls import LiveCall, Seat
from kiosk.domain.switchboard.effects import Effect


@dataclass(frozen=True, slots=True)
class Rules:
    """The server's own limits (settings), not the facility's (those come with the facts)."""

    bridge_available: bool = True  # False: controlled calls are refused (principle 3)
    max_monitors: int = 4  # per call (issue 12: bounded resources)
    monitor_answer_within: timedelta = timedelta(seconds=30)  # an offer never answered goes


@dataclass
class Outcome:
    """One event's result: its effects, and for a request its refusal or the call it made."""

    effects: list[Effect] = field(default_factory=list)
    refused: Deny | None = None
    call_id: str | None = None


@dataclass
class Board:
    rules: Rules = field(default_factory=Rules)
    calls: dict[str, LiveCall] = field(default_factory=dict)
    seats: dict[str, Seat] = field(default_factory=dict)
    online: dict[str, str | None] = field(default_factory=dict)  # device -> its inmate
    # Bookings a call used up in this process, with the end of their window: the
    # store may not say so yet when the next dial's facts were read (issue 11).
    spent: dict[str, datetime] = field(default_factory=dict)
    stopping: bool = False

    def calls_of_booking(self, booking_id: str) -> Iterator[LiveCall]:
        return (c for c in self.calls.values() if c.booking_id == booking_id)

    def calls_on_device(self, device_id: str) -> Iterator[LiveCall]:
        return (c for c in self.calls.values() if c.device_id == device_id)

    def holds(
        self, now: datetime, *, device_id: str = "", inmate_id: str = "", but: LiveCall | None
    ) -> bool:
        """Is there a call other than ``but`` holding this tablet or inmate now?"""
        for c in self.calls.values():
            mine = c.device_id == device_id or c.inmate_id == inmate_id
            if c is not but and mine and self.holding(c, now):
                return True
        return False

    def holding(self, call: LiveCall, now: datetime) -> bool:
        """Does ``call`` hold its tablet and inmate now? One call each, at any moment.

        A call under way holds them; a call set up ahead holds them from its window's
        start, unless a call dialled before that start is still under way: it waits
        for that one to end (set-ups never overlap each other: ``overlaps_set_up``).
        """
        if not call.blocking(now):
            return False
        if call.under_way:
            return True
        others = (o for o in self.calls.values() if o is not call)
        return not any(o.under_way and o.shares(call) for o in others)

    def overlaps_set_up(
        self, start: datetime, end: datetime, *, device_id: str, inmate_id: str
    ) -> bool:
        """Is a call set up on this tablet or for this inmate with a window meeting
        [start, end)? Two set-ups would both hold them once their windows opened."""
        return any(
            c.waiting
            and (c.device_id == device_id or c.inmate_id == inmate_id)
            and c.machine.not_before < end
            and start < c.not_after
            for c in self.calls.values()
        )

    def seats_of_booking(self, booking_id: str) -> Iterator[Seat]:
        return (s for s in self.seats.values() if s.booking_id == booking_id)

    def devices_of(self, inmate_id: str) -> list[str]:
        """The tablets on line assigned to ``inmate_id``."""
        return sorted(d for d, i in self.online.items() if i == inmate_id)

    def tablet_ready(self, inmate_id: str) -> bool:
        return bool(self.devices_of(inmate_id))

    def current_call(self, device_id: str, now: datetime) -> LiveCall | None:
        """The call the tablet shows: the one holding it, else the next one set up for it."""
        mine = sorted(self.calls_on_device(device_id), key=lambda c: c.machine.not_before)
        holding = [c for c in mine if self.holding(c, now)]
        return next(iter(holding or mine), None)
