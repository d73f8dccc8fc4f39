"""Which node owns the live calls, under a lease with an epoch (issue 14).

Every node runs this. Each beat (a quarter of the lease) it renews its lease,
or takes the lease once it has run out (the owner stopped or died), and
sweeps the live calls overdue by more than a lease that nobody closed. The
node holding the lease runs the switchboard: it adopts the live calls from
the store with its epoch (only that epoch may change them), answers the
nodes' requests on ``kiosk.calls`` and ``kiosk.call.*`` and tells them it
is the owner, so they announce their tablets and visitors to it. A node
that loses the lease stops supervising at once (its writes would be
refused anyway); a stopping owner hands over: it lets its lease run out
now and says so, and the next node adopts the calls without ending them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from kiosk.domain.model import MediaKind
from kiosk.domain.switchboard import events as ev
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls import writes
from kiosk.signalling.calls.runner import CallRefused, CallRunner
from kiosk.signalling.cluster import envelope
from kiosk.signalling.cluster.bus import Bus, Subscription
from kiosk.signalling.cluster.watch import BEAT_SUBJECT
from kiosk.signalling.context import ServerContext
from kiosk.store import cluster as store_cluster
from kiosk.store.bookings import get_booking
from kiosk.store.calls import get_call
from kiosk.store.db import write_transaction
from kiosk.wire import messages as p

log = get_logger(__name__)

MakeRunner = Callable[["BusDevices", writes.Fence], CallRunner]


class BusDevices:
    """The owner's way to a tablet: its subject, to the node holding its link."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def send(self, device_id: str, message: BaseModel) -> bool:
        await self.bus.publish(f"kiosk.device.{device_id}.send", p.encode(message).encode())
        return True


class BusLeg:
    """The owner's way to a visitor's page on whichever node holds it."""

    def __init__(self, bus: Bus, seat_id: str) -> None:
        self.bus = bus
        self.seat_id = seat_id

    async def send(self, message: BaseModel) -> None:
        await self.bus.publish(f"kiosk.visitor.{self.seat_id}.send", p.encode(message).encode())

    async def close(self) -> None:
        await self.bus.publish(f"kiosk.visitor.{self.seat_id}.close", b"")


class Ownership:
    def __init__(
        self, ctx: ServerContext, bus: Bus, node: str, lease: float, make_runner: MakeRunner
    ) -> None:
        self.ctx = ctx
        self.bus = bus
        self.node = node
        self.lease = lease
        self.make_runner = make_runner
        self.epoch: int | None = None
        self.runner: CallRunner | None = None
        self.device_node: dict[str, str] = {}  # where each tablet's link is
        self._subs: list[Subscription] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._released: Subscription | None = None

    async def start(self) -> None:
        self._released = await self.bus.subscribe("kiosk.owner.released", self._handed_over)
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="calls lease")
        self._beating = asyncio.create_task(self._beat(), name="owner beat")

    async def _beat(self) -> None:
        """Alive, to every node's watch (watch.py): eight times a lease while the owner."""
        while True:
            await asyncio.sleep(self.lease / 8)
            if self.epoch is not None:
                with contextlib.suppress(Exception):
                    await self.bus.publish(BEAT_SUBJECT, b"")

    async def _handed_over(self, subject: str, data: bytes) -> None:
        self._wake.set()  # take the calls now rather than at the next beat

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.lease / 4):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.beat()
            except Exception:
                log.exception("the calls' lease could not be renewed or taken")

    async def beat(self) -> None:
        async with write_transaction(self.ctx.engine) as conn:
            epoch = await store_cluster.take_lease(conn, self.node, self.epoch, self.lease)
        if epoch is None and self.epoch is not None:
            log.warning("lost the lease over the calls", node=self.node, epoch=self.epoch)
            await self._give_up()
        elif epoch is not None and epoch != self.epoch:
            await self._take(epoch)
        await self._sweep()

    async def _take(self, epoch: int) -> None:
        if self.epoch is not None:
            await self._give_up()
        fence = writes.Fence(self.node, epoch)
        runner = self.make_runner(BusDevices(self.bus), fence)
        async with write_transaction(self.ctx.engine) as conn:
            records = await store_cluster.adopt_calls(conn, self.node, epoch)
            adopted = []
            for record in records:
                booking = await get_booking(conn, record.booking_id)
                if booking is not None:
                    adopted.append(ev.Adopted(record, booking))
        self.epoch, self.runner = epoch, runner
        log.info("took the lease over the calls", node=self.node, epoch=epoch, adopted=len(adopted))
        await runner.adopt(adopted)
        self._subs = [
            await self.bus.subscribe("kiosk.calls", self._serve, concurrent=True),
            await self.bus.subscribe("kiosk.call.*", self._serve, concurrent=True),
        ]
        told = envelope.pack({"node": self.node, "epoch": epoch})
        await self.bus.publish("kiosk.owner.new", told)

    async def _give_up(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []
        runner, self.runner, self.epoch = self.runner, None, None
        self.device_node.clear()
        if runner is not None:
            await runner.hand_over()

    async def _sweep(self) -> None:
        grace = timedelta(seconds=self.lease)
        for call_id in await writes.sweep_overdue(self.ctx, self.node, grace, self.ctx.clock()):
            log.warning("overdue call closed by the sweep", call_id=call_id, node=self.node)

    async def stop(self) -> None:
        """Hand the calls over: the lease runs out now and the other nodes are told."""
        for task in (self._task, self._beating):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._released is not None:
            await self._released.unsubscribe()
        epoch = self.epoch
        await self._give_up()
        if epoch is not None:
            async with write_transaction(self.ctx.engine) as conn:
                await store_cluster.release_lease(conn, self.node, epoch)
            await self.bus.publish("kiosk.owner.released", json.dumps({"node": self.node}).encode())
            log.info("handed the calls over", node=self.node, epoch=epoch)

    def live_calls(self) -> int:
        return self.runner.live_calls() if self.runner is not None else 0

    async def _ended_meanwhile(self, runner: CallRunner, leg: BusLeg, call_id: str | None) -> bool:
        """A visitor seated again whose call ended in the handover (a controlled call fails
        closed) is told how it ended, as on the owner it was seated on."""
        if not call_id or call_id in runner.board.calls:
            return False
        async with self.ctx.engine.connect() as conn:
            call = await get_call(conn, call_id)
        if call is None or call.end_reason is None:
            return False
        await leg.send(p.EndMessage(call_id=call_id, reason=call.end_reason))
        return True

    # --- the nodes' requests -------------------------------------------------------------

    async def _serve(self, subject: str, data: bytes) -> bytes:
        runner = self.runner
        if runner is None:
            return envelope.pack({"failed": "not the owner"})
        request = envelope.unpack(data)
        try:
            return envelope.ok(**(await self._do(runner, request) or {}))
        except CallRefused as exc:
            return envelope.refused(exc)

    async def _do(self, runner: CallRunner, r: dict[str, Any]) -> dict[str, Any] | None:
        op, node = r["op"], r["node"]
        if op == "online":
            self.device_node[r["device"]] = node
            await runner.on_connect(r["device"])
        elif op == "device":
            await runner.on_message(r["device"], p.parse_device_message(r["text"]))
        elif op == "offline":
            if self.device_node.get(r["device"]) == node:  # not a link it has since made elsewhere
                del self.device_node[r["device"]]
                await runner.on_disconnect(r["device"])
        elif op == "join":
            leg = BusLeg(self.bus, r["seat"])
            if r["seat"] in runner.board.seats:
                return {"seat": r["seat"]}
            if await self._ended_meanwhile(runner, leg, r.get("call")):
                return {"seat": r["seat"]}
            return {"seat": await runner.visitor_join(r["token"], leg, r["seat"])}
        elif op == "left":
            await runner.visitor_left(r["seat"])
        elif op == "visitor":
            await runner.visitor_message(r["seat"], p.parse_visitor_message(r["text"]))
        elif op == "set_up":
            return {"call_id": await runner.set_up(r["booking"], r["device"], r["staff"])}
        elif op == "waiting":
            return {"seats": [dataclasses.asdict(w) for w in await runner.waiting_visitors()]}
        elif op == "end":
            await runner.end(r["call"], r["staff"], r["note"], bool(r["breach"]))
        elif op == "attach_monitor":
            kinds = frozenset(MediaKind(k) for k in r["kinds"])
            monitor_id, sdp = await runner.attach_monitor(r["call"], r["staff"], kinds)
            return {"monitor_id": monitor_id, "sdp": sdp}
        elif op == "monitor_answer":
            await runner.monitor_answer(r["call"], r["monitor"], r["staff"], r["sdp"])
        elif op == "revoked":
            await runner.device_revoked(r["device"])
        elif op == "restrictions":
            await runner.restrictions_changed()
        elif op == "tablets":
            await runner.tablets_changed(r["devices"], r["inmates"])
        return None
