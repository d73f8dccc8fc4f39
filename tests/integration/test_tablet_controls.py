"""Issue 16 item 16, the tablet's half, through the real server: the inmate mutes or turns
the camera off on the kiosk page (POST /api/controls) and the visitor is told in a ``media``
message, in a controlled (bridged) call that goes on carrying media; a ``media`` message for
a call the sending tablet is not in is refused with its reason and never relayed.

Real processes (``kiosk server``, ``kiosk agent``), an aiortc visitor, and for the tablet
that is not in the call a client that speaks the device protocol over mutual TLS with an
enrolled tablet's own certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.domain.reasons import Reason
from kiosk.wire import messages as p
from tests.harness import Tablet, World, client_ssl, wait_until
from tests.visitor_client import Visitor

pytestmark = [pytest.mark.slow]


class RawTablet:
    """The device protocol spoken by the test itself: every message it is sent, kept."""

    def __init__(self, world: World, folder: Path) -> None:
        self.url = f"wss://127.0.0.1:{world.deployment.device_port}/device/v1"
        self.ssl = client_ssl(folder / "ca.pem", folder / "device.pem", folder / "device.key")
        self.received: list[Any] = []
        self.session = aiohttp.ClientSession()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(self.url, ssl=self.ssl)
        await self.send(p.HelloMessage(version=1, agent_version="test", calls=[]))
        self._reader = asyncio.create_task(self._read())

    async def send(self, message: Any) -> None:
        await self.ws.send_str(p.encode(message))

    async def _read(self) -> None:
        async for frame in self.ws:
            self.received.append(p.parse_server_to_device(frame.data))

    def refusals(self) -> list[p.RefusedMessage]:
        return [m for m in self.received if isinstance(m, p.RefusedMessage)]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.ws.close()
        await self.session.close()


async def controls(tablet: Tablet, body: Any) -> tuple[int, dict[str, Any]]:
    async with tablet.http.post(tablet.ui_url + "api/controls", json=body) as resp:
        return resp.status, await resp.json()


def told(visitor: Visitor) -> list[p.MediaMessage]:
    return [m for m in visitor.messages if isinstance(m, p.MediaMessage)]


async def bridged_call(world: World, serial: str) -> tuple[str, Tablet, Visitor, str]:
    inmate = await world.inmate("Eva Lund")
    contact = await world.approved_contact(inmate, control="sight", name="Mia Lund")
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, serial)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    await wait_until(lambda: visitor.received.video > 20 and visitor.received.audio > 20,
                     timeout=40, what="media at the visitor through the bridge")
    assert visitor.call is not None and visitor.call.route.value == "bridge"
    return inmate, tablet, visitor, visitor.call.call_id


async def test_the_tablet_mutes_and_the_visitor_of_a_controlled_call_is_told(
    world: World,
) -> None:
    _, tablet, visitor, call_id = await bridged_call(world, "TAB-CTL16")
    status, body = await controls(tablet, {"call_id": call_id, "audio": False, "video": True})
    assert status == 202, body
    assert body["state"]["call"]["audio"] is False
    off = p.MediaMessage(call_id=call_id, audio=False, video=False)
    assert (await controls(tablet, off.model_dump(exclude={"type"})))[0] == 202
    await wait_until(lambda: told(visitor)[-1:] == [off], timeout=15, what="the visitor told")
    assert told(visitor)[0] == p.MediaMessage(call_id=call_id, audio=False, video=True)
    # The bridged call goes on: media still reaches the visitor (silence and black frames).
    frames = visitor.received.video
    await wait_until(lambda: visitor.received.video > frames + 20, timeout=20,
                     what="media after the camera went off")
    on = p.MediaMessage(call_id=call_id, audio=True, video=True)
    assert (await controls(tablet, on.model_dump(exclude={"type"})))[0] == 202
    await wait_until(lambda: told(visitor)[-1:] == [on], timeout=15, what="on again")
    assert (await tablet.state())["phase"] == "in_call"

    # The page API reads its body as strictly as the wire: a refusal with its reason.
    for bad in (
        {},
        {"call_id": call_id, "audio": "false", "video": True},
        {"call_id": call_id, "audio": 0, "video": 1},
        {"call_id": call_id, "audio": False},
        {"call_id": call_id, "audio": False, "video": True, "facing": "user"},
        {"call_id": "../" + call_id, "audio": False, "video": True},
        [call_id, False, True],
    ):
        status, body = await controls(tablet, bad)
        assert (status, body["error"]["code"]) == (400, "invalid_request"), bad
    status, body = await controls(tablet, {"call_id": "call-nope", "audio": False, "video": True})
    assert (status, body["error"]["code"]) == (409, "call_not_live")
    assert told(visitor)[-1] == on  # none of these reached the visitor


async def test_a_media_message_for_a_call_the_tablet_is_not_in_is_refused_and_not_relayed(
    world: World,
) -> None:
    inmate, tablet, visitor, call_id = await bridged_call(world, "TAB-CTL16B")
    # Another tablet of the same inmate, enrolled and on line, but not in this call.
    folder = world.deployment.root / "tablet-raw-ctl16"
    world.deployment.enrol_tablet("TAB-CTL16-RAW", inmate, folder)
    other = RawTablet(world, folder)
    await other.connect()
    try:
        await other.send(p.MediaMessage(call_id=call_id, audio=False, video=False))
        await other.send(p.MediaMessage(call_id="call-nobody-has", audio=False, video=False))
        refusals = await wait_until(lambda: _two(other), timeout=15, what="both refused")
        assert [(r.ref, r.code) for r in refusals] == [("media", Reason.CALL_NOT_LIVE)] * 2
        # The call's own tablet speaks next: the visitor hears that and nothing before it.
        mine = p.MediaMessage(call_id=call_id, audio=True, video=False)
        assert (await controls(tablet, mine.model_dump(exclude={"type"})))[0] == 202
        await wait_until(lambda: told(visitor)[-1:] == [mine], timeout=15, what="the visitor told")
        assert told(visitor) == [mine]
        assert not visitor.errors and visitor.end is None
    finally:
        await other.close()


def _two(other: RawTablet) -> list[p.RefusedMessage] | None:
    refusals = other.refusals()
    return refusals if len(refusals) >= 2 else None
