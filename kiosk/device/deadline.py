"""The tablet's own enforcement of a call grant: whether to accept it, and when it ends.

ARCHITECTURE.md principle 1: the server decides, the tablet obeys, both
enforce. The tablet accepts media only under a grant it verified itself
(signature by the pinned grant key, this device, not yet over, not a call
that already ended), and it ends the call at the grant's end by its own
monotonic clock, anchored on the server's clock written in the grant
(``kiosk.wire.grants.GrantClock``). The tablet's wall clock is never read, and the
link to the server is not needed: the end and the warnings (R10: 5 and 1
minutes left) come from here even while the server is unreachable.

Pure: no sockets, no clocks. The monotonic time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.domain.callstate import WARNINGS, End, Warn
from kiosk.domain.reasons import EndReason, GrantRefusal
from kiosk.wire.grants import Grant, GrantClock, GrantError, ReplayGuard, SignedGrant, verify_grant

# A grant whose end is this close is refused outright: there is no time for
# a call, only for a flash of media that the tablet would cut at once.
MIN_USEFUL_SECONDS = 1.0

NOT_YET_OPEN = GrantRefusal.NOT_YET_OPEN  # a GrantError reason of the tablet's own

# The tablet stops sending this long before the grant's end. A frame sent at
# t is shown at the far end after the network, the jitter buffer and the
# decoder (tens of ms, more on a busy tablet); stopping early by about that
# much is what makes the LAST frame at the far end arrive by not_after, not
# merely the last frame sent. 100 ms off a call is not noticed by anyone.
MEDIA_LEAD = 0.1


@dataclass(frozen=True, slots=True)
class Accepted:
    """The grant is good: media may flow until ``deadline`` ends it."""

    grant: Grant
    deadline: CallDeadline

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Refused:
    """The grant is refused; no media. ``call_id`` is known only when the signature held."""

    reason: GrantRefusal
    detail: str = ""
    call_id: str | None = None

    def __bool__(self) -> bool:
        return False


GrantDecision = Accepted | Refused


def check_grant(
    signed: SignedGrant,
    public_key: Ed25519PublicKey,
    device_id: str,
    ended: ReplayGuard,
    mono_now: float,
    *,
    sent_monotonic: float | None = None,
    max_transit: float = 0.0,
) -> GrantDecision:
    """Accept or refuse a grant that arrived at ``mono_now`` (deny by default).

    ``sent_monotonic`` is when this tablet sent the ``dial`` the grant answers;
    for a grant it did not ask for, ``max_transit`` bounds the one-way delay
    (see ``GrantClock``). Either keeps the end from ever coming late.
    """
    try:
        grant = verify_grant(signed, public_key, device_id)
    except GrantError as exc:
        return Refused(exc.reason, exc.detail)
    try:
        ended.check(grant)
    except GrantError as exc:
        return Refused(exc.reason, exc.detail, grant.call_id)
    if grant.issued_at < grant.not_before:
        return Refused(NOT_YET_OPEN, "the grant was issued before its window", grant.call_id)
    clock = GrantClock(
        grant, mono_now, sent_monotonic=sent_monotonic, max_transit=max_transit
    )
    if clock.remaining(mono_now) < MIN_USEFUL_SECONDS:
        return Refused(GrantError.EXPIRED, "the grant's end has passed", grant.call_id)
    return Accepted(grant, CallDeadline(clock, mono_now))


@dataclass(slots=True)
class CallDeadline:
    """One call's end and warnings by the tablet's monotonic clock (R10).

    ``tick(now)`` returns what is due: ``Warn(minutes)`` when a warning's
    instant has passed (several due at once: only the most urgent, as the
    server's ``CallMachine`` does), then ``End(TIME_UP)`` exactly once at the
    deadline. Warnings whose instant had already passed when the grant
    arrived are not given: "5 minutes left" is wrong for a 3-minute call.
    """

    clock: GrantClock
    accepted_at: float
    warned: frozenset[int] = field(default_factory=frozenset)
    ended: bool = False
    lead: float = MEDIA_LEAD

    def __post_init__(self) -> None:
        late = {m for m in WARNINGS if self.accepted_at >= self.warn_at(m)}
        self.warned = self.warned | late

    @property
    def call_id(self) -> str:
        return self.clock.grant.call_id

    def deadline(self) -> float:
        """The monotonic instant media stops: the grant's end less ``lead``."""
        return self.clock.deadline() - self.lead

    def warn_at(self, minutes_left: int) -> float:
        return self.deadline() - 60.0 * minutes_left

    def remaining(self, mono_now: float) -> float:
        if self.ended:
            return 0.0
        return max(0.0, min(self.clock.span, self.deadline() - mono_now))

    def tick(self, mono_now: float) -> list[Warn | End]:
        if self.ended:
            return []
        if mono_now >= self.deadline():
            self.ended = True
            return [End(EndReason.TIME_UP)]
        due = [m for m in WARNINGS if m not in self.warned and mono_now >= self.warn_at(m)]
        if not due:
            return []
        self.warned = self.warned | frozenset(due)
        return [Warn(min(due))]

    def next_wakeup(self) -> float | None:
        """The monotonic instant ``tick`` next has something to do; None once ended."""
        if self.ended:
            return None
        pending = [self.warn_at(m) for m in WARNINGS if m not in self.warned]
        return min([*pending, self.deadline()])

    def stop(self) -> None:
        """The call ended for another reason: nothing more is due."""
        self.ended = True
