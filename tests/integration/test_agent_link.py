"""The whole tablet agent against the real device listener over mutual TLS on loopback.

The server side is the real ``DeviceListener`` (TLS 1.3, the deployment CA,
a registered device in a real SQLite database) with a small handler in the
call supervisor's place that signs grants with the deployment's grant key
and hands the tablet's offer to a plain aiortc peer (the visitor). The agent
is the real ``Agent``: its link, its session, its call with synthetic media
and its loopback page API, driven over HTTP and WebSockets as the page does.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.crypto import authority, keys, local_enrolment, pki
from kiosk.device.agent import Agent
from kiosk.device.call_runner import END_GRACE
from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.runtime.config import AgentSettings
from kiosk.signalling.devices import registry as device_registry
from kiosk.signalling.devices.listener import DeviceHub, DeviceListener, LinkTimers
from kiosk.wire.grants import Grant, sign_grant
from kiosk.wire.messages import (
    ContactEntry,
    DialMessage,
    EndMessage,
    GrantDocument,
    GrantMessage,
    GrantRefusedMessage,
    HangupMessage,
    HelloMessage,
    InmateInfo,
    SdpMessage,
    StateMessage,
)
from tests.answering_peer import Peer as Visitor
from tests.harness import stays
from tests.harness import wait_until as wait_for

pytestmark = pytest.mark.timeout(120)
# The agent does not care which engine the server uses; SQLite keeps these fast.
SQLITE = pytest.mark.parametrize("migrated_url", ["sqlite"], indirect=True)

SERVER_TIMERS = LinkTimers(heartbeat_interval=0.5, hello_timeout=5.0, rate=200.0, burst=400.0,
                           touch_every=0.0)


@dataclass
class Server:
    """In the call supervisor's place: state on connect, grants on dial, the visitor's answer."""

    grant_key: Ed25519PrivateKey
    call_seconds: float = 6.0
    forge: bool = False
    hub: DeviceHub | None = None
    received: list[BaseModel] = field(default_factory=list)
    visitor: Visitor | None = None
    calls: int = 0
    # A hostile server (issue 12): signs, with the real key, what it must never sign.
    grant_edit: Callable[[Grant], Grant] | None = None
    replay: GrantMessage | None = None  # answer every dial with this old grant instead
    granted: list[GrantMessage] = field(default_factory=list)

    def state(self, device_id: str) -> StateMessage:
        now = datetime.now(UTC)
        return StateMessage(
            server_time=now, device_id=device_id, inmate=InmateInfo(id="inmate-1", name="Ola"),
            contacts=[ContactEntry(
                contact_id="contact-1", name="Kari", category=Category.PERSONAL,
                control=ControlLevel.NONE, booking_id="booking-1",
                start=now - timedelta(minutes=5), end=now + timedelta(minutes=30),
                callable_now=True)],
            call=None,
        )

    async def on_connect(self, device_id: str) -> None:
        assert self.hub is not None
        await self.hub.send(device_id, self.state(device_id))

    async def on_disconnect(self, device_id: str) -> None:
        return None

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        assert self.hub is not None
        self.received.append(message)
        if isinstance(message, DialMessage):
            self.calls += 1
            now = datetime.now(UTC)
            grant = Grant(
                call_id=f"call-{self.calls}", device_id=device_id, inmate_id="inmate-1",
                contact_id="contact-1", category=Category.PERSONAL, route=Route.P2P,
                control=ControlLevel.NONE, not_before=now - timedelta(minutes=5),
                not_after=now + timedelta(seconds=self.call_seconds), issued_at=now,
                dial_nonce=message.nonce,
            )
            if self.grant_edit is not None:
                grant = self.grant_edit(grant)
            key = Ed25519PrivateKey.generate() if self.forge else self.grant_key
            granted = self.replay or GrantMessage(grant=GrantDocument.of(sign_grant(grant, key)))
            self.granted.append(granted)
            await self.hub.send(device_id, granted)
        elif isinstance(message, SdpMessage) and message.kind == "offer":
            if self.visitor is not None:
                await self.visitor.close()
            self.visitor = Visitor()
            answer = await self.visitor.answer(message.sdp)
            await self.hub.send(
                device_id, SdpMessage(call_id=message.call_id, kind="answer", sdp=answer)
            )

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.received if isinstance(m, kind)]


@dataclass
class World:
    engine: AsyncEngine
    pki_dir: Path
    server: Server
    listener: DeviceListener
    agent: Agent
    device_id: str
    http: aiohttp.ClientSession

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.agent.ui_port}"

    async def restart_listener(self, down_for: float = 0.0) -> None:
        port = self.listener.port
        await self.listener.stop()
        await asyncio.sleep(down_for)
        hub = DeviceHub(self.engine, self.server, SERVER_TIMERS)
        self.server.hub = hub
        self.listener = DeviceListener(hub, self.pki_dir, "127.0.0.1", port)
        await self.listener.start()


async def make_world(engine: AsyncEngine, tmp: Path, server_kw: dict[str, Any]) -> World:
    pki_dir = tmp / "pki"
    pki.init_ca(pki_dir, ["127.0.0.1"])
    enrolled = local_enrolment.enrol_local(pki_dir, "SN-AGENT-1", tmp / "agent")
    async with engine.begin() as conn:
        device = await device_registry.register_device(
            conn, "SN-AGENT-1", enrolled.certificate_serial, datetime.now(UTC)
        )
    grant_key = keys.load_ed25519_private_key(authority.PkiPaths(pki_dir).grant_key)
    server = Server(grant_key, **server_kw)
    hub = DeviceHub(engine, server, SERVER_TIMERS)
    server.hub = hub
    listener = DeviceListener(hub, pki_dir, "127.0.0.1", 0)
    await listener.start()
    settings = AgentSettings(
        server_url=f"wss://127.0.0.1:{listener.port}/device/v1",
        ca_cert=enrolled.ca_cert, cert=enrolled.cert, key=enrolled.key,
        grant_public_key=enrolled.grant_pub, ui_host="127.0.0.1", ui_port=0,
        heartbeat_interval=0.3, reconnect_min=0.05, reconnect_max=0.5,
    )
    agent = Agent(settings, synthetic_media=True)
    await agent.start()
    return World(engine, pki_dir, server, listener, agent, device.id, aiohttp.ClientSession())


@pytest.fixture
def server_kw() -> dict[str, Any]:
    return {}


@pytest.fixture
async def world(engine: AsyncEngine, tmp_path: Path,
                server_kw: dict[str, Any]) -> AsyncIterator[World]:
    w = await make_world(engine, tmp_path, server_kw)
    try:
        yield w
    finally:
        await w.agent.stop()
        if w.server.visitor is not None:
            await w.server.visitor.close()
        await w.listener.stop()
        await w.http.close()


@SQLITE
async def test_connects_says_hello_learns_its_id_and_heartbeats(world: World) -> None:
    await wait_for(lambda: world.server.of(HelloMessage), what="hello")
    hello = world.server.of(HelloMessage)[0]
    assert hello.version == 1 and hello.calls == []
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online")
    assert world.agent.view()["device_id"] == world.device_id
    # Heartbeats: pings answered by the listener's pongs give round trips.
    await wait_for(lambda: len(world.agent.session.rtts) >= 3, what="three pongs")
    assert all(0 <= r < 5 for r in world.agent.session.rtts)
    async with world.http.get(f"{world.ui}/api/state") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["inmate"] == {"id": "inmate-1", "name": "Ola"}
    assert body["contacts"][0]["booking_id"] == "booking-1"
    assert body["contacts"][0]["callable_now"] is True


@SQLITE
async def test_reconnects_after_the_server_restarts(world: World) -> None:
    await wait_for(lambda: world.agent.link.connects == 1, what="first connection")
    await world.restart_listener(down_for=1.0)
    await wait_for(lambda: world.agent.link.connects == 2, what="reconnection")
    await wait_for(lambda: len(world.server.of(HelloMessage)) == 2, what="second hello")
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online again")


@SQLITE
async def test_call_ends_on_time_by_the_tablet_while_the_server_is_gone(world: World) -> None:
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online")
    async with world.http.ws_connect(f"{world.ui}/api/events") as events:
        first = await events.receive_json(timeout=10)
        assert first["type"] == "state"
        async with world.http.post(f"{world.ui}/api/dial",
                                   json={"booking_id": "booking-1"}) as resp:
            assert resp.status == 202, await resp.text()
        await wait_for(lambda: world.agent.view()["phase"] == "in_call", what="in call")
        counters = world.agent.counters
        visitor = world.server.visitor
        assert counters is not None and visitor is not None
        await wait_for(lambda: counters.video_frames > 5 and counters.audio_frames > 5
                       and visitor.frames["video"] > 5 and visitor.frames["audio"] > 5,
                       what="media both ways")

        # The server goes away mid-call, and stays away past the end.
        await world.listener.stop()
        await wait_for(lambda: world.agent.view()["link"] == "offline", what="link down")
        assert world.agent.view()["phase"] == "in_call"  # the call goes on

        call = world.agent.call
        assert call is not None
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "end" for e in seen):
            seen.append(await events.receive_json(timeout=30))
        ended = world.agent.clock()  # the agent's own clock (CLOCK_BOOTTIME)
        end = next(e for e in seen if e["type"] == "end")
        assert end["reason"] == "time_up"
        assert any(e["type"] == "countdown" for e in seen)
        assert call.deadline.deadline() <= ended < call.deadline.deadline() + 2.0
        await wait_for(lambda: visitor.ended == {"audio", "video"}, what="visitor's tracks end")
        assert _end(world) == {"call_id": "call-1", "reason": "time_up"}


@SQLITE
@pytest.mark.parametrize("server_kw", [{"forge": True}])
async def test_forged_grant_is_refused_hung_up_and_shown(world: World) -> None:
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online")
    async with world.http.ws_connect(f"{world.ui}/api/events") as events:
        await events.receive_json(timeout=10)
        await world.agent.dial("booking-1")
        refused = None
        while refused is None:
            event = await events.receive_json(timeout=10)
            if event["type"] == "refused":
                refused = event
    assert refused["code"] == "grant_invalid" and refused["detail"] == "bad_signature"
    await wait_for(lambda: world.server.of(HangupMessage), what="hang-up at the server")
    assert world.server.of(HangupMessage)[0].call_id == "call-1"
    assert world.agent.calls_started == 0 and world.agent.call is None
    assert not world.server.of(SdpMessage)  # no offer: no media


@SQLITE
async def test_page_api_is_loopback_only_and_validates(world: World) -> None:
    base = world.ui
    async with world.http.get(f"{base}/api/state", headers={"Host": "evil.example"}) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "not_loopback"
    async with world.http.get(f"{base}/api/state",
                              headers={"Origin": "http://evil.example"}) as resp:
        assert resp.status == 403
    async with world.http.get(f"{base}/api/state",
                              headers={"Origin": f"http://127.0.0.1:{world.agent.ui_port}"}) as r:
        assert r.status == 200
    async with world.http.get(f"{base}/api/state", headers={"Host": "localhost:1"}) as resp:
        assert resp.status == 200
    # Only the page's own origin (issue 12): not another local page on another port,
    # nor another scheme, over HTTP or the WebSockets alike.
    own = world.agent.ui_port
    other = own + 1 if own < 65535 else own - 1
    for origin in (f"http://127.0.0.1:{other}", f"http://localhost:{other}",
                   f"https://127.0.0.1:{own}", f"http://[::1]:{other}", "http://127.0.0.1",
                   "null", f"http://127.0.0.1:{own}/x"):
        async with world.http.post(f"{base}/api/dial", json={"booking_id": "booking-1"},
                                   headers={"Origin": origin}) as resp:
            assert resp.status == 403, origin
            assert (await resp.json())["error"]["code"] == "not_loopback"
        with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
            await world.http.ws_connect(f"{base}/api/events", headers={"Origin": origin})
        assert handshake.value.status == 403
    assert world.agent.view()["phase"] == "idle"  # no dial went out
    async with world.http.get(f"{base}/api/state",
                              headers={"Origin": f"http://localhost:{own}"}) as resp:
        assert resp.status == 200
    for body in ({}, {"booking_id": 5}, {"booking_id": "x", "more": 1}, {"booking_id": "a b"}):
        async with world.http.post(f"{base}/api/dial", json=body) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "invalid_request"
    async with world.http.post(f"{base}/api/dial", data="booking_id=x",
                               headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415  # a cross-site form cannot drive it
    async with world.http.post(f"{base}/api/dial", data=b"{not json",
                               headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    async with world.http.post(f"{base}/api/hangup", json={}) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "call_not_live"
    async with world.http.get(f"{base}/nothing") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    async with world.http.post(f"{base}/api/dial", data=b"x" * 10000,
                               headers={"Content-Type": "application/json"}) as resp:
        assert resp.status in (400, 413)


@SQLITE
async def test_grants_a_hostile_server_signs_are_refused_and_each_refusal_reported(
    world: World,
) -> None:
    """Issue 12: the real agent against a server that signs, with the real grant key,
    what it must never sign. Each is refused, hung up, shown and reported with its reason."""
    server = world.server
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online")

    async def refused(reason: str) -> None:
        before = len(server.of(GrantRefusedMessage))
        await world.agent.dial("booking-1")
        await wait_for(lambda: len(server.of(GrantRefusedMessage)) > before, what=reason)
        report = server.of(GrantRefusedMessage)[-1]
        assert report.reason == reason and report.call_id == f"call-{server.calls}"
        await wait_for(lambda: HangupMessage(call_id=report.call_id) in server.received,
                       what="hang-up")
        view = world.agent.view()
        assert view["refusal"]["detail"] == reason and view["phase"] == "idle"
        assert world.agent.calls_started == 0

    # (a) R13: a police call through the bridge; a defence counsel call under control.
    server.grant_edit = lambda g: replace(g, category=Category.POLICE, route=Route.BRIDGE)
    await refused("privileged_monitored")
    server.grant_edit = lambda g: replace(g, category=Category.DEFENCE_COUNSEL,
                                          control=ControlLevel.SIGHT)
    await refused("privileged_monitored")
    # (b) over by the server's clock (its state said now), though the grant's own
    # issued_at would give it four minutes.
    server.grant_edit = lambda g: replace(g, issued_at=g.issued_at - timedelta(minutes=5),
                                          not_after=g.issued_at - timedelta(minutes=1))
    await refused("expired")

    # (c) a grant the tablet took, replayed after the agent restarted (in its window still).
    server.grant_edit = None
    server.call_seconds = 600
    await world.agent.dial("booking-1")
    await wait_for(lambda: world.agent.view()["phase"] == "in_call", what="in call")
    captured = server.granted[-1]
    await world.agent.hangup()
    await world.agent.stop()
    world.agent = Agent(world.agent.settings, synthetic_media=True)
    await world.agent.start()
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online again")
    assert server.hub is not None
    await server.hub.send(world.device_id, captured)  # out of the blue
    await wait_for(lambda: server.of(GrantRefusedMessage)[-1].reason == "unsolicited",
                   what="unsolicited")
    server.replay = captured  # and as the answer to the restarted agent's own dial
    await world.agent.dial("booking-1")
    await wait_for(lambda: server.of(GrantRefusedMessage)[-1].reason == "not_my_dial",
                   what="not my dial")
    assert world.agent.calls_started == 0 and world.agent.view()["phase"] == "idle"


def test_the_page_api_refuses_to_listen_beyond_loopback() -> None:
    from kiosk.device.ui_server import UiServer

    with pytest.raises(ValueError):
        UiServer(None, "0.0.0.0", 0)  # type: ignore[arg-type]


def _end(world: World) -> dict[str, Any]:
    """The end screen's call and reason (it also names the contact and whether media flowed)."""
    ended = world.agent.view()["ended"] or {}
    return {k: ended.get(k) for k in ("call_id", "reason")}


async def start_call(world: World, seconds: float = 600) -> Visitor:
    world.server.call_seconds = seconds
    await wait_for(lambda: world.agent.view()["link"] == "online", what="online")
    await world.agent.dial("booking-1")
    await wait_for(lambda: world.agent.view()["phase"] == "in_call", what="in call")
    visitor = world.server.visitor
    assert visitor is not None
    await wait_for(lambda: visitor.frames["video"] > 3, what="video at the visitor")
    return visitor


@SQLITE
async def test_staff_end_from_the_server_shows_its_reason(world: World) -> None:
    visitor = await start_call(world)
    # As the supervisor does: the end to both legs; the visitor's page closes at once.
    await visitor.close()
    assert world.server.hub is not None
    await world.server.hub.send(world.device_id,
                                EndMessage(call_id="call-1", reason=EndReason.ENDED_BY_STAFF))
    await wait_for(lambda: world.agent.view()["phase"] == "ended", what="the end screen")
    # The media going away changes nothing after.
    ended = {"call_id": "call-1", "reason": "ended_by_staff"}
    await stays(lambda: _end(world) == ended, END_GRACE + 0.5, "the reason")
    assert world.agent.call is None and world.agent.last_call is not None
    assert world.agent.last_call.pc.connectionState == "closed"
    assert not world.server.of(HangupMessage)


@SQLITE
async def test_other_end_gone_without_word_the_call_is_offered_again(world: World) -> None:
    first = await start_call(world)
    before = world.agent.view()["call"]
    await first.close()  # no end from the server: the visitor reloaded the page, say

    def offers() -> int:
        return len([m for m in world.server.of(SdpMessage) if m.kind == "offer"])

    await wait_for(lambda: offers() == 2, timeout=END_GRACE + 20, what="the call offered again")
    second = world.server.visitor
    assert second is not None and second is not first
    await wait_for(lambda: second.frames["video"] > 3, what="video at the visitor again")
    await wait_for(lambda: world.agent.view()["phase"] == "in_call", what="in call again")
    after = world.agent.view()["call"]
    # The same call under the same grant: no new dial, no hang-up, the same clock.
    assert after["call_id"] == before["call_id"] == "call-1"
    assert after["remaining_seconds"] < before["remaining_seconds"]
    assert after["reconnecting"] is False
    assert len(world.server.of(DialMessage)) == 1 and not world.server.of(HangupMessage)
    # Hang up and back to the contacts, through the page API.
    async with world.http.post(f"{world.ui}/api/hangup", json={}) as resp:
        assert resp.status == 202
    assert _end(world) == {"call_id": "call-1", "reason": "hangup"}
    await wait_for(lambda: world.server.of(HangupMessage), what="hang-up at the server")
    async with world.http.post(f"{world.ui}/api/dismiss", json={}) as resp:
        assert resp.status == 202
    assert world.agent.view()["phase"] == "idle"


@SQLITE
async def test_hangup_from_the_page_ends_both_sides(world: World) -> None:
    visitor = await start_call(world)
    async with world.http.post(f"{world.ui}/api/hangup", json={}) as resp:
        assert resp.status == 202
    assert _end(world) == {"call_id": "call-1", "reason": "hangup"}
    await wait_for(lambda: world.server.of(HangupMessage), what="hang-up at the server")
    await wait_for(lambda: visitor.ended == {"audio", "video"}, what="visitor's tracks end")
    # A second dial while the first is being torn down is fine: a new call id.
    async with world.http.post(f"{world.ui}/api/dial", json={"booking_id": "booking-1"}) as r:
        assert r.status == 202
    await wait_for(lambda: world.agent.view()["phase"] == "in_call", what="second call")
    assert world.agent.view()["call"]["call_id"] == "call-2"


async def test_a_silent_server_is_noticed_and_the_link_remade(tmp_path: Path) -> None:
    """A server that takes the connection but never answers (a half-dead link, no FIN):
    after three heartbeat intervals of silence the agent drops it and connects again."""
    from aiohttp import web

    from kiosk.crypto import tls as tlsconfig

    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir, ["127.0.0.1"])
    enrolled = local_enrolment.enrol_local(pki_dir, "SN-SILENT-1", tmp_path / "agent")
    accepted: list[float] = []
    hellos: list[str] = []

    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)  # not even WebSocket pongs
        await ws.prepare(request)
        accepted.append(time.monotonic())
        async for msg in ws:
            hellos.append(msg.data)  # read, never answer
        return ws

    app = web.Application()
    app.router.add_get("/device/v1", silent)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0,
                       ssl_context=tlsconfig.device_listener_context(pki_dir))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = AgentSettings(
        server_url=f"wss://127.0.0.1:{port}/device/v1",
        ca_cert=enrolled.ca_cert, cert=enrolled.cert, key=enrolled.key,
        grant_public_key=enrolled.grant_pub, ui_port=0,
        heartbeat_interval=0.3, reconnect_min=0.05, reconnect_max=0.2,
    )
    agent = Agent(settings, synthetic_media=True)
    await agent.start()
    try:
        await wait_for(
            lambda: len(accepted) >= 3 and sum('"type":"hello"' in h for h in hellos) >= 3,
            timeout=30, what="two reconnections, each with its hello",
        )
        gaps = [b - a for a, b in itertools.pairwise(accepted)]
        # Dropped after ~3 silent intervals (0.9 s), not at once and not never.
        assert all(0.6 < g < 10 for g in gaps), gaps
        assert any('"type":"ping"' in h for h in hellos)
    finally:
        await agent.stop()
        await runner.cleanup()
