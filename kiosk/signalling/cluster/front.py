"""A cluster node's front door to the calls: its tablets' links, its visitors' pages and
its staff requests, whichever node owns the live calls (issue 14).

The device listener, the visitor endpoint and the staff API talk to this as
they talk to the runner in a single process. Everything goes to the owner
of the live calls over the bus (``kiosk.calls``, ``kiosk.call.<id>``), and
what the owner sends a tablet or a visitor comes back on their subjects
(``kiosk.device.<id>``, ``kiosk.visitor.<seat>``) to the node that holds
their connection. While the owner changes (a handover, or its death and
the lease running out) requests are retried until the next owner answers.
When a new owner appears, every node tells it who is connected here: its
tablets and its visitors' seats, so the calls it adopted find their ends.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from kiosk.domain.model import MediaKind
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls.ports import VisitorLeg, WaitingVisitor
from kiosk.signalling.cluster import envelope
from kiosk.signalling.cluster.bus import Bus, NoOwner, Subscription
from kiosk.signalling.cluster.watch import BEAT_SUBJECT, OwnerWatch, Tell, bridged_grant
from kiosk.signalling.context import ServerContext
from kiosk.signalling.devices.hub import DeviceHub
from kiosk.signalling.devices.tamper import record_tamper
from kiosk.wire import messages as p

log = get_logger(__name__)


@dataclass(eq=False)
class _Seat:
    token: str
    leg: VisitorLeg
    sub: Subscription
    call_id: str | None = None  # the call the visitor was told of


@dataclass(eq=False)
class _Tablet:
    sub: Subscription
    calls: list[str] = field(default_factory=list)  # what its hello said it holds


class ClusterFront:
    def __init__(
        self, ctx: ServerContext, bus: Bus, hub: DeviceHub, node: str, lease: float
    ) -> None:
        self.ctx = ctx
        self.bus = bus
        self.hub = hub
        self.node = node
        self.patience = 3 * lease + 5  # how long a request waits for an owner
        self.tablets: dict[str, _Tablet] = {}
        self.seats: dict[str, _Seat] = {}
        self._owner_sub: Subscription | None = None
        self._announcing: asyncio.Task[None] | None = None
        self.owned_calls: Callable[[], int] = lambda: 0
        self.watch = OwnerWatch(lease)
        self._beat_sub: Subscription | None = None

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.ctx.clock

    async def start(self) -> None:
        self._owner_sub = await self.bus.subscribe("kiosk.owner.new", self._new_owner)
        self._beat_sub = await self.bus.subscribe(BEAT_SUBJECT, self._beat)
        self.watch.start()

    async def _beat(self, subject: str, data: bytes) -> None:
        self.watch.heard()

    async def stop(self) -> None:
        self.watch.stop()
        for sub in (self._owner_sub, self._beat_sub):
            if sub is not None:
                await sub.unsubscribe()
        for tablet in self.tablets.values():
            await tablet.sub.unsubscribe()
        for seat in self.seats.values():
            await seat.sub.unsubscribe()

    # --- asking the owner --------------------------------------------------------------

    async def _ask(self, op: str, subject: str = "kiosk.calls", **fields: Any) -> dict[str, Any]:
        data = envelope.pack({"op": op, "node": self.node, **fields})
        deadline = time.monotonic() + self.patience
        while True:
            try:
                reply = await self.bus.request(subject, data, within=self.patience / 3)
                return envelope.answer(reply)
            except NoOwner:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.1)  # between owners: the next one takes the lease

    async def _tell(self, op: str, **fields: Any) -> None:
        """A notice for the owner; lost ones are repaired when the next owner asks."""
        try:
            await self._ask(op, **fields)
        except NoOwner:
            log.warning("no owner of the calls answered", op=op)

    # --- tablets (the device listener's handler) --------------------------------------

    async def on_connect(self, device_id: str) -> None:
        old = self.tablets.pop(device_id, None)
        if old is not None:
            await old.sub.unsubscribe()
        sub = await self.bus.subscribe(f"kiosk.device.{device_id}.*", self._to_device)
        self.tablets[device_id] = _Tablet(sub)
        await self._tell("online", device=device_id)

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        if isinstance(message, p.TamperMessage):
            await record_tamper(self.ctx, device_id, message, self.clock())
            return
        if isinstance(message, p.HelloMessage) and device_id in self.tablets:
            self.tablets[device_id].calls = list(message.calls)
        await self._tell("device", device=device_id, text=p.encode(message))

    async def on_disconnect(self, device_id: str) -> None:
        tablet = self.tablets.pop(device_id, None)
        if tablet is not None:
            await tablet.sub.unsubscribe()
        await self._tell("offline", device=device_id)

    async def _to_device(self, subject: str, data: bytes) -> None:
        device_id, what = subject.split(".")[2:4]
        if what == "cut":
            await self.hub.revoke_device(device_id)
            return
        text = data.decode()
        message = p.parse_server_to_device(text)
        if isinstance(message, p.GrantMessage) and (call_id := bridged_grant(message)):
            self.watch.track(call_id, self._teller(device_id))
        elif isinstance(message, p.EndMessage):
            self.watch.forget(message.call_id)
        await self.hub.send_text(device_id, text)

    def _teller(self, device_id: str) -> Tell:
        async def tell(message: p.EndMessage) -> None:
            await self.hub.send(device_id, message)

        return tell

    # --- visitors ------------------------------------------------------------------------

    async def visitor_join(self, token: str, leg: VisitorLeg) -> str:
        seat_id = str(uuid.uuid4())
        sub = await self.bus.subscribe(f"kiosk.visitor.{seat_id}.*", self._to_visitor)
        self.seats[seat_id] = _Seat(token, leg, sub)
        try:
            await self._ask("join", seat=seat_id, token=token)
        except BaseException:
            await self.seats.pop(seat_id).sub.unsubscribe()
            raise
        return seat_id

    async def visitor_left(self, seat_id: str) -> None:
        seat = self.seats.pop(seat_id, None)
        if seat is not None:
            await seat.sub.unsubscribe()
        await self._tell("left", seat=seat_id)

    async def visitor_message(self, seat_id: str, message: BaseModel) -> None:
        await self._tell("visitor", seat=seat_id, text=p.encode(message))

    async def _to_visitor(self, subject: str, data: bytes) -> None:
        seat_id, what = subject.split(".")[2:4]
        seat = self.seats.get(seat_id)
        if seat is None:
            return
        if what == "close":
            await seat.leg.close()
            return
        message = p.parse_server_to_visitor(data.decode())
        if isinstance(message, p.VisitorCallMessage):
            if message.call_id == seat.call_id:
                return  # the call told again by a new owner: the page has it already
            seat.call_id = message.call_id
            if message.route.value == "bridge":
                self.watch.track(message.call_id, seat.leg.send)
        elif isinstance(message, p.EndMessage | p.WaitingMessage):
            if seat.call_id is not None:
                self.watch.forget(seat.call_id)
            seat.call_id = None
        await seat.leg.send(message)

    # --- a new owner: who is here ----------------------------------------------------

    async def _new_owner(self, subject: str, data: bytes) -> None:
        owner = json.loads(data)
        log.info("owner of the calls changed", owner=owner.get("node"), epoch=owner.get("epoch"))
        if self._announcing is not None:
            self._announcing.cancel()
        self._announcing = asyncio.create_task(self._announce())

    async def _announce(self) -> None:
        for device_id, tablet in list(self.tablets.items()):
            await self._tell("online", device=device_id, calls=tablet.calls)
        for seat_id, seat in list(self.seats.items()):
            try:
                await self._ask("join", seat=seat_id, token=seat.token, call=seat.call_id)
            except Exception as exc:  # the booking ended meanwhile: the page is told why
                log.info("visitor could not be seated again", seat=seat_id, detail=str(exc))

    # --- staff -------------------------------------------------------------------------

    async def set_up(self, booking_id: str, device_id: str, staff_id: str) -> str:
        result = await self._ask("set_up", booking=booking_id, device=device_id, staff=staff_id)
        return str(result["call_id"])

    async def waiting_visitors(self) -> list[WaitingVisitor]:
        result = await self._ask("waiting")
        return [WaitingVisitor(**seat) for seat in result["seats"]]

    async def end(self, call_id: str, staff_id: str, note: str, breach: bool) -> None:
        await self._ask(
            "end", f"kiosk.call.{call_id}", call=call_id, staff=staff_id, note=note, breach=breach
        )

    async def attach_monitor(
        self, call_id: str, staff_id: str, kinds: frozenset[MediaKind]
    ) -> tuple[str, str]:
        result = await self._ask(
            "attach_monitor",
            f"kiosk.call.{call_id}",
            call=call_id,
            staff=staff_id,
            kinds=sorted(k.value for k in kinds),
        )
        return str(result["monitor_id"]), str(result["sdp"])

    async def monitor_answer(self, call_id: str, monitor_id: str, staff_id: str, sdp: str) -> None:
        await self._ask(
            "monitor_answer",
            f"kiosk.call.{call_id}",
            call=call_id,
            monitor=monitor_id,
            staff=staff_id,
            sdp=sdp,
        )

    async def device_revoked(self, device_id: str) -> None:
        await self._tell("revoked", device=device_id)
        await self.bus.publish(f"kiosk.device.{device_id}.cut", b"")

    async def restrictions_changed(self) -> None:
        await self._tell("restrictions")

    async def tablets_changed(self, devices: Iterable[str], inmates: Iterable[str]) -> None:
        await self._tell("tablets", devices=list(devices), inmates=list(inmates))

    # --- for the metrics: this node's share ------------------------------------------

    def live_calls(self) -> int:
        return self.owned_calls()
