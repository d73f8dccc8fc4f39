"""A cluster node's calls (issue 14): the bus, the front door and the lease, put together.

``kiosk server`` with ``[cluster] nats_url`` set builds this instead of a
runner of its own: the device listener and the visitor endpoint hand what
they hear to the front door, and whichever node holds the lease runs the
switchboard. Stopping hands the calls over rather than ending them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kiosk.signalling.calls import writes
from kiosk.signalling.calls.runner import CallRunner
from kiosk.signalling.cluster.bus import Bus, NatsBus
from kiosk.signalling.cluster.front import ClusterFront
from kiosk.signalling.cluster.owner import BusDevices, Ownership
from kiosk.signalling.context import ServerContext
from kiosk.signalling.devices.hub import DeviceHub

MakeRunner = Callable[[BusDevices, writes.Fence], CallRunner]


@dataclass
class Node:
    bus: Bus
    front: ClusterFront
    ownership: Ownership

    async def hand_over(self) -> None:
        """Stopping: the calls go on under the next owner (before this node's links close)."""
        await self.ownership.stop()
        self.front.patience = 1.0  # what this node's departing links say is not worth a wait

    async def close(self) -> None:
        await self.front.stop()
        await self.bus.close()

    def bridge_calls(self) -> int:
        runner = self.ownership.runner
        return runner.bridge_calls() if runner is not None else 0

    def bridge_monitors(self) -> int:
        runner = self.ownership.runner
        return runner.bridge_monitors() if runner is not None else 0


async def start_node(ctx: ServerContext, hub: DeviceHub, make_runner: MakeRunner) -> Node:
    settings = ctx.settings
    node = settings.node_name
    lease = settings.cluster.lease_seconds
    bus = await NatsBus.connect(settings.cluster.nats_url, node)
    front = ClusterFront(ctx, bus, hub, node, lease)
    ownership = Ownership(ctx, bus, node, lease, make_runner)
    front.owned_calls = ownership.live_calls
    hub.handler = front
    ctx.on_device_revoked.append(front.device_revoked)
    ctx.on_restrictions_changed.append(front.restrictions_changed)
    ctx.on_tablets_changed.append(front.tablets_changed)
    await front.start()
    await ownership.start()
    return Node(bus, front, ownership)
