"""What the tablet's pure core asks of the I/O around it, and the phase it is in.

``TabletSession`` (kiosk/device/session.py) returns a list of these for
every input; the agent (kiosk/device/agent.py) carries them out in order:
send a message, start, renew or stop the call's media, pass SDP and ICE to
it, tell the page what to show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from kiosk.device.deadline import Accepted
from kiosk.domain.reasons import EndReason
from kiosk.wire.messages import IceServer


class Phase(StrEnum):
    IDLE = "idle"  # contacts on screen
    DIALLING = "dialling"  # dial sent, waiting for the server's grant or refusal
    CONNECTING = "connecting"  # grant accepted, media being negotiated (ringing)
    IN_CALL = "in_call"  # media connected
    ENDED = "ended"  # the end screen, until the next dial


@dataclass(frozen=True, slots=True)
class Send:
    message: BaseModel


@dataclass(frozen=True, slots=True)
class StartCall:
    accepted: Accepted
    ice_servers: tuple[IceServer, ...]


@dataclass(frozen=True, slots=True)
class RenewCall:
    """A new connection for the live call, under the same grant and deadline."""

    accepted: Accepted
    ice_servers: tuple[IceServer, ...]


@dataclass(frozen=True, slots=True)
class ApplyAnswer:
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class AddIce:
    call_id: str
    candidate: str | None
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True, slots=True)
class StopCall:
    call_id: str
    reason: EndReason


@dataclass(frozen=True, slots=True)
class Show:
    """An event for the page (WS /api/events): ``type`` plus its fields."""

    event: Mapping[str, Any]


Action = Send | StartCall | RenewCall | ApplyAnswer | AddIce | StopCall | Show
