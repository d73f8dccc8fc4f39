"""The runner's typed seams: what it needs from the device listener, a visitor's
socket and the media bridge. Each is a protocol, so tests and other transports
plug in without the runner knowing (the tablet's link, a browser's WebSocket,
aiortc's bridge)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from kiosk.domain.model import Category, MediaKind
from kiosk.domain.switchboard.events import Event
from kiosk.wire.messages import IceServer


class DeviceSender(Protocol):
    """The device listener's side: send to a connected tablet."""

    async def send(self, device_id: str, message: BaseModel) -> bool: ...


class VisitorLeg(Protocol):
    """A visitor's connection (browser or test visitor) as the runner sees it."""

    async def send(self, message: BaseModel) -> None: ...

    async def close(self) -> None: ...


# How the bridge reports what happened on its own (a failed leg, a monitor gone).
Report = Callable[[Event], Awaitable[object]]


class BridgePort(Protocol):
    """Controlled calls' media (ARCHITECTURE.md principle 3), one bridge per call id.

    Every method raises on refusal or failure; the runner turns that into
    ``BridgeFailed`` (the call ends: fail closed) or a refused monitor.
    """

    def bind(self, report: Report) -> None: ...

    async def open(
        self, call_id: str, category: Category, ice_servers: Sequence[IceServer]
    ) -> None: ...

    async def answer_tablet(self, call_id: str, offer_sdp: str) -> str: ...

    async def offer_visitor(self, call_id: str) -> str: ...

    async def visitor_answer(self, call_id: str, answer_sdp: str) -> None: ...

    async def add_monitor(self, call_id: str, kinds: frozenset[MediaKind]) -> tuple[str, str]: ...

    async def monitor_answer(self, call_id: str, monitor_id: str, answer_sdp: str) -> None: ...

    async def remove_monitor(self, call_id: str, monitor_id: str) -> None: ...

    async def close(self, call_id: str) -> None: ...

    async def close_all(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WaitingVisitor:
    """A visitor's page seated now (issue 16: "Emma is waiting" on the board)."""

    booking_id: str
    contact_id: str
    inmate_id: str
    in_call: bool


class Calls(Protocol):
    """What the visitor endpoint and the staff API ask of the calls: the runner itself in
    a single process, a cluster node's front door (kiosk/signalling/cluster) otherwise.
    Refusals are raised as ``CallRefused`` with their reason either way."""

    @property
    def clock(self) -> Callable[[], datetime]: ...

    async def visitor_join(self, token: str, leg: VisitorLeg) -> str: ...

    async def visitor_left(self, seat_id: str) -> None: ...

    async def visitor_message(self, seat_id: str, message: BaseModel) -> None: ...

    async def set_up(self, booking_id: str, device_id: str, staff_id: str) -> str: ...

    async def waiting_visitors(self) -> list[WaitingVisitor]: ...

    async def end(self, call_id: str, staff_id: str, note: str, breach: bool) -> None: ...

    async def attach_monitor(
        self, call_id: str, staff_id: str, kinds: frozenset[MediaKind]
    ) -> tuple[str, str]: ...

    async def monitor_answer(
        self, call_id: str, monitor_id: str, staff_id: str, sdp: str
    ) -> None: ...
