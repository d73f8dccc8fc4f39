"""What happens to the set of live calls: the events the switchboard is fed.

Each is a plain value; the runner makes one from a tablet's message, a
visitor's message, a staff request, the bridge's answer or the clock, and
feeds it with ``now`` to :meth:`Switchboard.handle`. Facts the store holds
(the booking, the contact, the facility's settings) come loaded inside the
event, or as the reason they could not be found.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.domain.model import Booking, CallRecord, FacilitySettings, MediaKind
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard.facts import CallFacts, InviteFacts
from kiosk.wire.messages import IceMessage, MediaMessage, SdpMessage

Signal = SdpMessage | IceMessage | MediaMessage  # media: a side's sound or picture off (issue 16)

# --- the tablet ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    """A tablet's link is up (its hello came); ``inmate_id`` is the one it is assigned to."""

    device_id: str
    inmate_id: str | None


@dataclass(frozen=True, slots=True)
class LinkLost:
    """A tablet's link to the server dropped."""

    device_id: str


@dataclass(frozen=True, slots=True)
class DeviceAssigned:
    """Staff assigned the tablet to another inmate (or to nobody)."""

    device_id: str
    inmate_id: str | None


@dataclass(frozen=True, slots=True)
class Dial:
    """The tablet asks to place the booked call; ``call_id`` names it if it is a new call.

    ``nonce`` is the dial's own: the grant that answers it carries it back (issue 12).
    """

    device_id: str
    booking_id: str
    facts: CallFacts | Reason
    call_id: str
    nonce: str


@dataclass(frozen=True, slots=True)
class DeviceSignal:
    """SDP or ICE from the tablet, for the visitor (or the bridge)."""

    device_id: str
    message: Signal


@dataclass(frozen=True, slots=True)
class DeviceHangup:
    device_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class Revoke:
    """The tablet was revoked (R18): its calls end at once."""

    device_id: str


# --- the visitor ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitorJoined:
    """A visitor's page joined with an invite: ``seat_id`` names this page's session."""

    seat_id: str
    facts: InviteFacts | None  # None: no such invite


@dataclass(frozen=True, slots=True)
class VisitorLeft:
    seat_id: str


@dataclass(frozen=True, slots=True)
class VisitorSignal:
    seat_id: str
    message: Signal


@dataclass(frozen=True, slots=True)
class VisitorHangup:
    seat_id: str
    call_id: str


# --- staff ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetUp:
    """Staff set the booked call up on the tablet, now or ahead of its window (R12)."""

    staff_id: str
    device_id: str
    booking_id: str
    facts: CallFacts | Reason
    call_id: str


@dataclass(frozen=True, slots=True)
class StaffEnd:
    """Staff end a call; ``breach`` records a breach against contact and inmate (R14)."""

    call_id: str
    staff_id: str
    breach: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class AttachMonitor:
    """A staff monitor asks for ``kinds`` of a live call (R6, R13)."""

    call_id: str
    staff_id: str
    kinds: frozenset[MediaKind]


@dataclass(frozen=True, slots=True)
class MonitorOffered:
    """The bridge made the monitor's offer."""

    call_id: str
    monitor_id: str
    staff_id: str
    kinds: frozenset[MediaKind]


@dataclass(frozen=True, slots=True)
class MonitorFailed:
    """The bridge could not make the monitor's offer (the call is ending, or it failed)."""

    call_id: str
    staff_id: str
    kinds: frozenset[MediaKind]


@dataclass(frozen=True, slots=True)
class AnswerMonitor:
    """A monitor's answer arrived: is it this staff member's monitor, still waiting?"""

    call_id: str
    monitor_id: str
    staff_id: str


@dataclass(frozen=True, slots=True)
class MonitorAnswered:
    call_id: str
    monitor_id: str


@dataclass(frozen=True, slots=True)
class MonitorGone:
    """The monitor's connection closed or failed, or its answer was refused."""

    call_id: str
    monitor_id: str
    why: str = "closed"


@dataclass(frozen=True, slots=True)
class RestrictionsChanged:
    """The facility's restrictions changed (R16): calls they cover end or are shortened."""

    settings: FacilitySettings


# --- the bridge (controlled calls, ARCHITECTURE.md principle 3) ------------------------


@dataclass(frozen=True, slots=True)
class BridgeOpened:
    call_id: str


@dataclass(frozen=True, slots=True)
class BridgeAnswered:
    """The bridge answered the tablet's offer."""

    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class BridgeOffered:
    """The bridge made its offer for the visitor's leg."""

    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class BridgeConnected:
    """The bridge took the visitor's answer: both legs are up."""

    call_id: str


@dataclass(frozen=True, slots=True)
class BridgeFailed:
    """The bridge failed or refused a leg: the call cannot go on unmonitored."""

    call_id: str


# --- time and the process ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (``now`` comes with every event; this one brings nothing else)."""


@dataclass(frozen=True, slots=True)
class Adopted:
    """A live call as the store holds it, with its booking (a cluster's new owner)."""

    record: CallRecord
    booking: Booking


@dataclass(frozen=True, slots=True)
class Adopt:
    """This process now owns these live calls: their owner stopped or died (issue 14)."""

    calls: tuple[Adopted, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """The server stops: it cannot supervise its calls any more (fail closed)."""


Event = (
    DeviceOnline
    | LinkLost
    | DeviceAssigned
    | Dial
    | DeviceSignal
    | DeviceHangup
    | Revoke
    | VisitorJoined
    | VisitorLeft
    | VisitorSignal
    | VisitorHangup
    | SetUp
    | StaffEnd
    | AttachMonitor
    | MonitorOffered
    | MonitorFailed
    | AnswerMonitor
    | MonitorAnswered
    | MonitorGone
    | RestrictionsChanged
    | BridgeOpened
    | BridgeAnswered
    | BridgeOffered
    | BridgeConnected
    | BridgeFailed
    | Tick
    | Adopt
    | Stop
)
