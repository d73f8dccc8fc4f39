"""The call state machine: a pure object, events and ``now`` in, effects out.

States: booked -SetUp-> ready -Dial-> ringing -Answer-> connected -> ended.
A lost leg while connected goes back to ringing and the call may reconnect
inside its window (``Reconnect`` or ``Answer``). Hang-up, staff ending, device
revocation, a facility restriction, a failed bridge or a server restart end the
call from any state that has not ended. The table below is the whole of it; an
event it does not list for the current state raises :class:`InvalidTransition`,
and ``ended`` is absorbing.

Time (R10): :meth:`CallMachine.tick` warns at 5 and at 1 minute left (each at
most once; when both fall due in one tick only the more urgent is said) and
ends the call with ``time_up`` at ``not_after``, in every state not yet ended.
:meth:`CallMachine.handle` ticks first, so an event arriving at or after
``not_after`` finds the call ended by time: it returns that ``End`` and the late
event is dropped. Connecting events (Dial, Answer, Reconnect) before
``not_before`` raise: no call outside its window. ``SetUp`` may come early:
staff prepare the tablet in advance (R12).

A hang-up or a failed bridge within ``ON_TIME`` of ``not_after`` ends the call
as ``time_up``: that is the tablet's own clock ending it on time (issue 16).

R14: staff ending a call for a breach yields ``End(breach)`` and a
``RecordBreach`` effect, which the caller records against contact and inmate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.domain.model import CallState
from kiosk.domain.reasons import EndReason, Reason

# --- Events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetUp:
    """Staff set the call up on the tablet (R12)."""


@dataclass(frozen=True, slots=True)
class Dial:
    """The tablet dials; the visitor's side starts ringing."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The visitor answered: media flows."""


@dataclass(frozen=True, slots=True)
class LegLost:
    """One side's connection dropped; the call waits for it inside the window."""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """The lost side is back."""


@dataclass(frozen=True, slots=True)
class Hangup:
    """Either side hung up."""


@dataclass(frozen=True, slots=True)
class StaffEnd:
    """Staff end the call with a reason; ``breach`` records a breach (R14)."""

    staff_id: str
    breach: bool = False


@dataclass(frozen=True, slots=True)
class Revoke:
    """The tablet was revoked (R18)."""


@dataclass(frozen=True, slots=True)
class Restrict:
    """A facility restriction suspends calls (R16)."""


@dataclass(frozen=True, slots=True)
class BridgeFailed:
    """The bridge of a controlled call failed; the call cannot go on unmonitored (R6)."""


@dataclass(frozen=True, slots=True)
class ServerRestart:
    """The server restarted; calls it held are over."""


Event = (
    SetUp
    | Dial
    | Answer
    | LegLost
    | Reconnect
    | Hangup
    | StaffEnd
    | Revoke
    | Restrict
    | BridgeFailed
    | ServerRestart
)

# --- Effects --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Warn:
    """Tell both ends how many minutes are left (R10)."""

    minutes_left: int


@dataclass(frozen=True, slots=True)
class End:
    """The call is over, for ``reason``."""

    reason: EndReason


@dataclass(frozen=True, slots=True)
class RecordBreach:
    """Record a breach against the call's contact and inmate (R14)."""

    staff_id: str


Effect = Warn | End | RecordBreach


class InvalidTransition(Exception):
    """The event is not allowed in the call's current state."""

    reason = Reason.INVALID_TRANSITION

    def __init__(self, state: CallState, event: Event, detail: str = "") -> None:
        self.state = state
        self.event = event
        self.detail = detail
        super().__init__(
            f"{type(event).__name__} is not allowed in state {state.value}"
            + (f": {detail}" if detail else "")
        )


# --- The table ------------------------------------------------------------------

_LIVE = (CallState.BOOKED, CallState.READY, CallState.RINGING, CallState.CONNECTED)

# Events that end the call from any live state, with the reason they end it for.
# StaffEnd's reason depends on the breach flag (see CallMachine.handle).
ENDING_EVENTS: dict[type, EndReason] = {
    Hangup: EndReason.HANGUP,
    StaffEnd: EndReason.ENDED_BY_STAFF,
    Revoke: EndReason.DEVICE_REVOKED,
    Restrict: EndReason.FACILITY_RESTRICTED,
    BridgeFailed: EndReason.BRIDGE_FAILED,
    ServerRestart: EndReason.SERVER_RESTARTED,
}

TRANSITIONS: dict[tuple[CallState, type], CallState] = {
    (CallState.BOOKED, SetUp): CallState.READY,
    (CallState.READY, Dial): CallState.RINGING,
    (CallState.RINGING, Answer): CallState.CONNECTED,
    (CallState.RINGING, Reconnect): CallState.CONNECTED,
    (CallState.RINGING, LegLost): CallState.RINGING,  # lost again while waiting
    (CallState.CONNECTED, LegLost): CallState.RINGING,
    **{(state, event): CallState.ENDED for state in _LIVE for event in ENDING_EVENTS},
}

# Events that connect the call: not before the window opens (R10).
_CONNECTING: frozenset[type] = frozenset({Dial, Answer, Reconnect})

WARNINGS: tuple[int, ...] = (5, 1)  # minutes left (R10: the inmate is told)

# R10, issue 16: the tablet ends a call by its own clock, anchored when it dialled, so it
# closes its side (and a controlled call's bridge leg with it) a moment before the server's
# own end. A lost bridge or a hang-up this close to the end is the end coming on time.
ON_TIME = timedelta(seconds=5)
_TIMELY: frozenset[type] = frozenset({Hangup, BridgeFailed})


class CallMachine:
    """One call's state. Restore it from the store with ``state``, ``warned`` and ``end_reason``."""

    def __init__(
        self,
        not_before: datetime,
        not_after: datetime,
        state: CallState = CallState.BOOKED,
        warned: frozenset[int] = frozenset(),
        end_reason: EndReason | None = None,
    ) -> None:
        if not_after <= not_before:
            raise ValueError("a call's window must end after it starts")
        self.not_before = not_before
        self.not_after = not_after
        self.state = state
        self.warned = warned
        self.end_reason = end_reason

    def __repr__(self) -> str:
        return (
            f"CallMachine(state={self.state.value}, warned={sorted(self.warned)}, "
            f"end_reason={self.end_reason})"
        )

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    def handle(self, event: Event, now: datetime) -> list[Effect]:
        """Apply ``event`` at ``now``; returns the effects. Raises InvalidTransition."""
        effects = self.tick(now)
        if self.ended and effects:
            return effects  # time ran out first: the late event is dropped
        target = TRANSITIONS.get((self.state, type(event)))
        if target is None:
            raise InvalidTransition(self.state, event)
        if type(event) in _CONNECTING and now < self.not_before:
            raise InvalidTransition(self.state, event, "the window has not opened")
        self.state = target
        if target is CallState.ENDED:
            return [*effects, *self._end_effects(event, now)]
        return effects

    def _end_effects(self, event: Event, now: datetime) -> list[Effect]:
        if type(event) in _TIMELY and now >= self.not_after - ON_TIME:
            self.end_reason = EndReason.TIME_UP
            return [End(EndReason.TIME_UP)]
        if isinstance(event, StaffEnd) and event.breach:
            self.end_reason = EndReason.BREACH
            # R14: the breach is recorded against contact and inmate.
            return [End(EndReason.BREACH), RecordBreach(event.staff_id)]
        self.end_reason = ENDING_EVENTS[type(event)]
        return [End(self.end_reason)]

    def tick(self, now: datetime) -> list[Effect]:
        """Let time pass to ``now``: warnings due, or the end of the window (R10)."""
        if self.ended:
            return []
        if now >= self.not_after:
            self.state = CallState.ENDED
            self.end_reason = EndReason.TIME_UP
            return [End(EndReason.TIME_UP)]
        due = [m for m in WARNINGS if m not in self.warned and now >= self._warn_at(m)]
        if not due:
            return []
        # Several due at once: say only the most urgent, and none of the others later.
        self.warned = self.warned | frozenset(due)
        return [Warn(min(due))]

    def next_deadline(self) -> datetime | None:
        """When ``tick`` next has something to do; None once ended."""
        if self.ended:
            return None
        pending = [self._warn_at(m) for m in WARNINGS if m not in self.warned]
        return min([*pending, self.not_after])

    def _warn_at(self, minutes_left: int) -> datetime:
        return self.not_after - timedelta(minutes=minutes_left)
