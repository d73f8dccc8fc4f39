"""The switchboard's records: a live call, a visitor's seat, a staff monitor.

Mutable, and only the switchboard changes them; the world sees copies
(``LiveCall.record``) and effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from kiosk.domain import callstate as cs
from kiosk.domain.model import Booking, CallRecord, CallState, MediaKind, Route
from kiosk.domain.reasons import EndReason
from kiosk.wire.messages import SdpMessage

# States in which a call holds its tablet and its inmate. A call set up (R12)
# holds them only once its window has opened: before that it waits and
# blocks nothing (see LiveCall.blocking).
_HOLDING = frozenset({CallState.RINGING, CallState.CONNECTED})


@dataclass(eq=False)
class Monitor:
    """A staff monitor on a bridged call; ``answer_by`` until its answer came (issue 12)."""

    staff_id: str
    kinds: frozenset[MediaKind]
    answer_by: datetime | None


@dataclass(eq=False)
class Seat:
    """A visitor's page in the waiting room (``call_id`` None) or in a call."""

    id: str
    invite_id: str
    booking_id: str
    contact_id: str
    inmate_id: str
    call_id: str | None = None

    @property
    def actor(self) -> str:
        return f"visitor:{self.contact_id}"


@dataclass(eq=False)
class LiveCall:
    """One call the switchboard holds: its record, its machine and who is on it."""

    record: CallRecord  # the parts that never change; state and end come from the machine
    booking: Booking
    machine: cs.CallMachine
    set_up_by: str | None = None  # staff who set it up (R12)
    granted: bool = False  # the tablet has its grant: the call is dialled
    connected_at: datetime | None = None
    seat: str | None = None
    held_offer: SdpMessage | None = None  # the tablet's offer, waiting for the visitor
    bridge_asked: bool = False  # a controlled call's bridge was asked for
    bridge_open: bool = False
    tablet_answered: bool = False  # the bridge answered the tablet's leg
    visitor_offered: bool = False  # the bridge offered the visitor's leg
    monitors: dict[str, Monitor] = field(default_factory=dict)
    monitors_asked: int = 0  # monitors whose offer the bridge is making
    restrict_at: datetime | None = None  # R16: a restriction over the rest of the call

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def device_id(self) -> str:
        return self.record.device_id

    @property
    def inmate_id(self) -> str:
        return self.record.inmate_id

    @property
    def booking_id(self) -> str:
        return self.record.booking_id

    @property
    def route(self) -> Route:
        return self.record.route

    @property
    def not_after(self) -> datetime:
        return self.machine.not_after

    @property
    def actor_device(self) -> str:
        return f"device:{self.device_id}"

    @property
    def under_way(self) -> bool:
        """Ringing or connected: it holds its tablet and inmate whatever the window."""
        return self.machine.state in _HOLDING

    @property
    def waiting(self) -> bool:
        """Set up by staff (R12) and not yet dialled."""
        return self.machine.state is CallState.READY

    def blocking(self, now: datetime) -> bool:
        """Could this call hold its tablet and inmate now? (See ``Board.holding``.)"""
        if self.machine.ended:
            return False
        if self.under_way:
            return True
        return self.waiting and self.machine.not_before <= now

    def shares(self, other: LiveCall) -> bool:
        return self.device_id == other.device_id or self.inmate_id == other.inmate_id

    def snapshot(self, now: datetime | None = None) -> CallRecord:
        """The record as it stands; ``now`` once ended (the end is at the latest ``not_after``)."""
        ended_at = None
        seconds = 0
        if self.machine.ended and now is not None:
            ended_at = min(now, self.machine.not_after)
            seconds = connected_seconds(self.connected_at, ended_at)
        return replace(
            self.record,
            state=self.machine.state,
            connected_at=self.connected_at,
            ended_at=ended_at,
            end_reason=self.machine.end_reason if self.machine.ended else None,
            connected_seconds=seconds,
        )

    def subjects(self) -> dict[str, str]:
        return {"call": self.id, "device": self.device_id, "booking": self.booking_id}

    def parties(self) -> dict[str, str]:
        return {"call": self.id, "inmate": self.inmate_id, "contact": self.record.contact_id}


def connected_seconds(connected_at: datetime | None, ended_at: datetime) -> int:
    if connected_at is None:
        return 0
    return max(0, int((ended_at - connected_at).total_seconds()))


# Ends after which the booking stays open although the call never connected
# (issue 16): the inmate may call again inside the window, staff may set it
# up again. A breach closes it whatever (R14); time up and a restriction
# leave nothing to call again in.
_CLOSING = frozenset({EndReason.BREACH, EndReason.TIME_UP, EndReason.FACILITY_RESTRICTED})


def uses_booking(connected_at: datetime | None, reason: EndReason) -> bool:
    """Did a call ending for ``reason`` use its booking up?"""
    return connected_at is not None or reason is EndReason.BREACH


def booking_reopens(connected_at: datetime | None, reason: EndReason) -> bool:
    """May the booking be called again after this end (the visitor waits on)?"""
    return connected_at is None and reason not in _CLOSING


def closed_out(call: CallRecord, now: datetime) -> tuple[CallRecord, bool]:
    """A call a previous server process left live, ended at start-up; and is its booking used?

    The tablet ended it by its own clock if the window is over (``time_up``);
    otherwise the restart ended it (``server_restarted``).
    """
    reason = EndReason.TIME_UP if now >= call.not_after else EndReason.SERVER_RESTARTED
    ended_at = min(now, call.not_after)
    ended = replace(
        call,
        state=CallState.ENDED,
        end_reason=reason,
        ended_at=ended_at,
        connected_seconds=connected_seconds(call.connected_at, ended_at),
    )
    return ended, uses_booking(call.connected_at, reason)
