"""What the switchboard asks the world to do: the effects of one event.

The runner applies the effects of one event in order: first every write
(``Persist``, ``RecordBreach``, ``Audit``) in one database transaction, then
the rest. Effects that ask the bridge for something (``OpenBridge``,
``BridgeTabletOffer`` ...) come back as events with the bridge's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kiosk.domain.model import CallRecord, Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason, Reason
from kiosk.wire.grants import Grant
from kiosk.wire.messages import (
    EndMessage,
    ErrorMessage,
    IceMessage,
    MediaMessage,
    RefusedMessage,
    SdpMessage,
    TabletMessage,
    WaitingMessage,
    WarningMessage,
)

ToDevice = SdpMessage | IceMessage | WarningMessage | EndMessage | RefusedMessage | MediaMessage
ToVisitor = (
    SdpMessage | IceMessage | WarningMessage | EndMessage | ErrorMessage | WaitingMessage
    | TabletMessage | MediaMessage
)

# --- writes (one transaction per event) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Persist:
    """Write the call's record: insert it when ``new``; ``booking_used`` marks its booking."""

    call: CallRecord
    new: bool = False
    booking_used: bool = False


@dataclass(frozen=True, slots=True)
class RecordBreach:
    """R14: a breach against the call's contact and inmate (with its own audit entry)."""

    call: CallRecord
    staff_id: str
    note: str


@dataclass(frozen=True, slots=True)
class Audit:
    actor: str
    action: str
    subjects: Mapping[str, str]
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Sign a tree head of the audit log now, after the writes (R13: a privileged call's
    receipt needs one that holds its entries)."""


WRITES = (Persist, RecordBreach, Audit)

# --- messages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendDevice:
    device_id: str
    message: ToDevice


@dataclass(frozen=True, slots=True)
class SendGrant:
    """Sign ``grant`` and send it with the call's ICE servers (the runner holds the key)."""

    grant: Grant


@dataclass(frozen=True, slots=True)
class SendVisitor:
    seat_id: str
    message: ToVisitor


@dataclass(frozen=True, slots=True)
class AnnounceCall:
    """Tell the visitor the call is coming, with the call's ICE servers and the server's time."""

    seat_id: str
    call_id: str
    control: ControlLevel
    route: Route
    not_after: datetime


@dataclass(frozen=True, slots=True)
class PushState:
    """What the tablet shows changed: send it its state (built from the store and the board)."""

    device_id: str


# --- the bridge ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenBridge:
    call_id: str
    category: Category  # the bridge refuses a privileged call itself too (R13)
    not_after: datetime


@dataclass(frozen=True, slots=True)
class BridgeTabletOffer:
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class BridgeOfferVisitor:
    call_id: str


@dataclass(frozen=True, slots=True)
class BridgeVisitorAnswer:
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class DropMonitor:
    call_id: str
    monitor_id: str


@dataclass(frozen=True, slots=True)
class CloseBridge:
    call_id: str


# --- counting and saying -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """An event counter (``kiosk_events_total{event=...}``)."""

    name: str


@dataclass(frozen=True, slots=True)
class CountRefusal:
    reason: Reason


@dataclass(frozen=True, slots=True)
class CountEnd:
    """A call ended, counted with the live-call gauge's drop."""

    reason: EndReason


@dataclass(frozen=True, slots=True)
class Log:
    """A log line that reads as a sentence, with its fields."""

    sentence: str
    fields: Mapping[str, str] = field(default_factory=dict)
    warning: bool = False


Effect = (
    Persist
    | RecordBreach
    | Audit
    | Checkpoint
    | SendDevice
    | SendGrant
    | SendVisitor
    | AnnounceCall
    | PushState
    | OpenBridge
    | BridgeTabletOffer
    | BridgeOfferVisitor
    | BridgeVisitorAnswer
    | DropMonitor
    | CloseBridge
    | Count
    | CountRefusal
    | CountEnd
    | Log
)
