"""Issue 16, the server's side: calls that do not go to plan, and who is there.

* A call nobody answered leaves its booking open: the inmate calls again
  inside the window (its end stays the hard end, R10), staff set it up again.
* A visitor who left the waiting room while the tablet rang comes back, and
  the next call reaches them; a dropped call is the same call, with the same end.
* The visitor is told whether the tablet is ready; the tablet's state says
  which booking's visitor is waiting.

Real processes (``kiosk server``, ``kiosk agent``), an aiortc visitor, and for
the tablet's raw state a client that speaks the device protocol over mutual
TLS with an enrolled tablet's own certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.wire import messages as p
from tests.harness import Tablet, World, client_ssl, wait_until

# Each test gets a world of its own, from the shared fixture (tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.fresh_world]


def _phase(tablet: Tablet, *phases: str) -> Any:
    async def check() -> dict[str, Any] | None:
        state = await tablet.state()
        return state if state.get("phase") in phases else None

    return check


async def _hang_up(tablet: Tablet) -> None:
    async with tablet.http.post(tablet.ui_url + "api/hangup", json={}) as resp:
        assert resp.status < 300, await resp.text()


async def test_a_ring_nobody_answered_leaves_the_booking_open(world: World) -> None:
    """Item 1: the inmate cancels an unanswered ring and calls again; staff set it up again."""
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, "TAB-RING")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    first = None
    for _ in range(2):
        status, _ = await tablet.dial(booking["id"])
        assert status == 202
        state = await wait_until(_phase(tablet, "connecting"), timeout=20, what="ringing")
        assert first is None or state["call"]["call_id"] != first
        first = first or state["call"]["call_id"]
        assert state["call"]["not_after"].startswith(booking["end"][:19])  # R10: the same end
        await _hang_up(tablet)
        await wait_until(_phase(tablet, "ended"), timeout=20, what="the ring cancelled")
    got = await world.api.call("GET", f"/bookings/{booking['id']}")
    assert got["state"] == "booked"
    await world.api.call(
        "POST", "/calls", {"booking_id": booking["id"], "device_id": tablet.device_id}, expect=201
    )


async def test_a_visitor_who_left_while_it_rang_comes_back_to_the_next_call(
    world: World,
) -> None:
    """Item 5: Leave in the waiting room, then back; the inmate's next call reaches them."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, "TAB-LEAVE")
    token = await world.invite_token(booking["id"])
    hesitant = await world.visitor(token, answer=False)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: hesitant.offered is not None, timeout=30, what="the ring")
    await hesitant.hangup()  # Leave, as the page does while it rings
    await wait_until(_phase(tablet, "ended"), timeout=20, what="the tablet told")
    await hesitant.close()
    back = await world.visitor(token)
    await wait_until(lambda: back.waiting is not None, timeout=20, what="the waiting room again")
    assert not back.errors
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    await wait_until(lambda: back.received.video > 10, timeout=40, what="the call after all")


async def test_a_dropped_call_comes_back_the_same_call_with_the_same_end(world: World) -> None:
    """Item 5: the visitor's page reloads mid-call: the same call, the same end time."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, "TAB-DROP")
    token = await world.invite_token(booking["id"])
    first = await world.visitor(token)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: first.received.video > 10, timeout=40, what="media")
    assert first.call is not None
    await first.close()  # the network goes, no hang-up
    second = await world.visitor(token)
    await wait_until(lambda: second.received.video > 10, timeout=40, what="media again")
    assert second.call is not None
    assert (second.call.call_id, second.call.not_after) == (
        first.call.call_id,
        first.call.not_after,
    )


class DeviceLink:
    """The device protocol spoken by the test itself, with an enrolled tablet's certificate."""

    def __init__(self, world: World, folder: Path) -> None:
        self.url = f"wss://127.0.0.1:{world.deployment.device_port}/device/v1"
        self.ssl = client_ssl(folder / "ca.pem", folder / "device.pem", folder / "device.key")
        self.states: list[p.StateMessage] = []
        self.session = aiohttp.ClientSession()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        ws = await self.session.ws_connect(self.url, ssl=self.ssl)
        hello = p.HelloMessage(version=1, agent_version="test", calls=[])
        await ws.send_str(p.encode(hello))
        self.ws = ws
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            message = p.parse_server_to_device(frame.data)
            if isinstance(message, p.StateMessage):
                self.states.append(message)

    def waiting(self, booking_id: str) -> bool | None:
        if not self.states:
            return None
        entries = [c for c in self.states[-1].contacts if c.booking_id == booking_id]
        return entries[0].visitor_waiting if entries else None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.ws.close()
        await self.session.close()


async def test_the_visitor_hears_the_tablet_is_ready_and_the_tablet_that_they_wait(
    world: World,
) -> None:
    """Item 2: "Emma is waiting" on the tablet; "the tablet is ready" in the waiting room."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    folder = world.deployment.root / "tablet-raw"
    world.deployment.enrol_tablet("TAB-RAW", inmate, folder)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: visitor.tablet_ready is False, what="told: no tablet yet")
    link = DeviceLink(world, folder)
    await link.connect()
    try:
        await wait_until(lambda: visitor.tablet_ready is True, what="told: the tablet is ready")
        await wait_until(lambda: link.waiting(booking["id"]) is True, what="the visitor waits")
        await visitor.close()
        await wait_until(lambda: link.waiting(booking["id"]) is False, what="the visitor gone")
    finally:
        await link.close()
