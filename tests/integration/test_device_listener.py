"""The device listener over real mutual TLS on loopback, with a real database.

A device is its certificate: revoked, expired, foreign and missing
certificates never get past the handshake; unknown and revoked rows get 403;
a revoked device's live link is cut at once. Bad input from one tablet gets
``invalid_request`` or a close while another tablet keeps being served.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.crypto import authority, local_enrolment, pki, revocation
from kiosk.crypto import tls as tlsconfig
from kiosk.signalling.devices import registry as device_registry
from kiosk.signalling.devices.listener import (
    CloseCode,
    DeviceHub,
    DeviceListener,
    LinkTimers,
)
from kiosk.store import schema as t
from kiosk.wire.messages import MAX_MESSAGE_BYTES, DialMessage, HelloMessage
from tests.harness import wait_until

TIMERS = LinkTimers(
    handshake_timeout=1.0,
    heartbeat_interval=0.5,
    hello_timeout=2.0,
    rate=200.0,
    burst=400.0,
    touch_every=0.0,
)
HELLO = json.dumps({"type": "hello", "version": 1, "agent_version": "test", "calls": []})


@dataclass
class Recorder:
    """A DeviceHandler that writes down what the listener tells it."""

    events: list[tuple[str, str, Any]] = field(default_factory=list)

    async def on_connect(self, device_id: str) -> None:
        self.events.append(("connect", device_id, None))

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        self.events.append(("message", device_id, message))

    async def on_disconnect(self, device_id: str) -> None:
        self.events.append(("disconnect", device_id, None))


@dataclass
class Tablet:
    device_id: str
    enrolled: local_enrolment.EnrolledDevice

    def context(self) -> ssl.SSLContext:
        e = self.enrolled
        return tlsconfig.agent_client_context(e.ca_cert, e.cert, e.key)


@dataclass
class World:
    engine: AsyncEngine
    pki_dir: Path
    tmp: Path
    hub: DeviceHub
    listener: DeviceListener
    handler: Recorder
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.listener.port}/device/v1"

    async def tablet(self, serial: str, *, register: bool = True, **enrol: Any) -> Tablet:
        e = local_enrolment.enrol_local(self.pki_dir, serial, self.tmp / serial, **enrol)
        device_id = ""
        if register:
            async with self.engine.begin() as conn:
                device = await device_registry.register_device(
                    conn, serial, e.certificate_serial, datetime.now(UTC)
                )
            device_id = device.id
        return Tablet(device_id, e)

    async def connect(
        self, tablet: Tablet | ssl.SSLContext, hello: bool = True
    ) -> aiohttp.ClientWebSocketResponse:
        ctx = tablet if isinstance(tablet, ssl.SSLContext) else tablet.context()
        ws = await asyncio.wait_for(self.session.ws_connect(self.url, ssl=ctx), 10)
        if hello:
            await ws.send_str(HELLO)
        return ws


@pytest.fixture
async def world(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[World]:
    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir, ["127.0.0.1"])
    handler = Recorder()
    hub = DeviceHub(engine, handler, TIMERS)
    listener = DeviceListener(hub, pki_dir, "127.0.0.1", 0)
    await listener.start()
    async with aiohttp.ClientSession() as session:
        try:
            yield World(engine, pki_dir, tmp_path, hub, listener, handler, session)
        finally:
            await listener.stop()


async def last_seen(world: World, device_id: str) -> datetime | None:
    async with world.engine.connect() as conn:
        seen: datetime | None = (
            await conn.execute(select(t.devices.c.last_seen_at).where(t.devices.c.id == device_id))
        ).scalar_one()
    return seen


async def ping(ws: aiohttp.ClientWebSocketResponse, seq: int) -> dict[str, Any]:
    await ws.send_str(json.dumps({"type": "ping", "seq": seq}))
    return await next_json(ws)


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, list[Any]]:
    """Read until the server closes; return the close code and what came before."""
    seen = []
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return msg.data, seen  # the server's code (the reply may meet a closed socket)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code, seen
        if msg.type == aiohttp.WSMsgType.ERROR:
            return ws.close_code, seen
        seen.append(json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else msg.data)


async def refused_at_handshake(world: World, ctx: ssl.SSLContext) -> str:
    """The connection fails in TLS: no HTTP status, no WebSocket, nothing reaches the hub.

    Returns the reason the listener logged and counted ("device refused at
    handshake"). The client itself sees only the connection end: asyncio
    closes a failed server-side handshake without sending the alert.
    """
    site = world.listener.site
    assert site is not None
    before = site.refusals.copy()
    connects = sum(1 for kind, _, _ in world.handler.events if kind == "connect")
    with pytest.raises(aiohttp.ClientError) as err:
        ws = await asyncio.wait_for(world.session.ws_connect(world.url, ssl=ctx), 10)
        await ws.close()
    assert not isinstance(err.value, aiohttp.WSServerHandshakeError), err.value
    assert sum(1 for kind, _, _ in world.handler.events if kind == "connect") == connects
    (reason,) = await wait_until(
        lambda: site.refusals - before, timeout=30, what="the listener's record of the refusal"
    )
    return reason


# --- who gets in ------------------------------------------------------------------------


async def test_an_enrolled_device_is_accepted_and_answered(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    pong = await ping(ws, 7)
    assert pong["type"] == "pong" and pong["seq"] == 7
    assert abs(datetime.fromisoformat(pong["server_time"]) - datetime.now(UTC)) < timedelta(
        seconds=5
    )
    await ws.send_str(json.dumps({"type": "dial", "booking_id": "b-1", "nonce": "n" * 16}))
    await ping(ws, 8)  # a round trip later the dial has reached the handler
    assert ("connect", tablet.device_id, None) in world.handler.events
    messages = [m for kind, d, m in world.handler.events if kind == "message"]
    assert isinstance(messages[0], HelloMessage)
    assert messages[1] == DialMessage(booking_id="b-1", nonce="n" * 16)
    assert world.hub.connected(tablet.device_id)
    seen = await wait_until(lambda: last_seen(world, tablet.device_id), what="last seen")
    assert datetime.now(UTC) - seen < timedelta(seconds=30)
    await ws.close()
    await wait_until(
        lambda: ("disconnect", tablet.device_id, None) in world.handler.events,
        timeout=30,
        what="the disconnect",
    )
    assert not world.hub.connected(tablet.device_id)


async def test_the_server_sends_to_a_connected_device_by_id(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    await ping(ws, 1)
    from kiosk.domain.reasons import EndReason
    from kiosk.wire.messages import EndMessage

    assert await world.hub.send(
        tablet.device_id, EndMessage(call_id="c1", reason=EndReason.TIME_UP)
    )
    assert await next_json(ws) == {"type": "end", "call_id": "c1", "reason": "time_up"}
    assert not await world.hub.send(
        "no-such-device", EndMessage(call_id="c1", reason=EndReason.TIME_UP)
    )


async def test_a_revoked_certificate_fails_the_handshake(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    assert (await ping(ws, 1))["type"] == "pong"
    await ws.close()
    # Only the CRL: the database still thinks the device is fine.
    revocation.revoke(world.pki_dir, tablet.enrolled.certificate_serial)
    assert await refused_at_handshake(world, tablet.context()) == "certificate revoked"


async def test_an_expired_certificate_fails_the_handshake(world: World) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    tablet = await world.tablet("TAB-OLD", now=long_ago, days=1)  # registered, not revoked
    assert await refused_at_handshake(world, tablet.context()) == "certificate has expired"


async def test_a_certificate_from_a_foreign_ca_fails_the_handshake(world: World) -> None:
    other = world.tmp / "other-pki"
    pki.init_ca(other, ["127.0.0.1"])
    foreign = local_enrolment.enrol_local(other, "TAB-X", world.tmp / "x")
    # Even registered under its serial, the certificate does not chain to our CA.
    async with world.engine.begin() as conn:
        await device_registry.register_device(
            conn, "TAB-X", foreign.certificate_serial, datetime.now(UTC)
        )
    ctx = tlsconfig.agent_client_context(
        world.pki_dir / authority.CA_CERT, foreign.cert, foreign.key
    )
    reason = await refused_at_handshake(world, ctx)
    assert reason == "unable to get local issuer certificate"


async def test_no_client_certificate_fails_the_handshake(world: World) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(world.pki_dir / authority.CA_CERT)
    assert await refused_at_handshake(world, ctx) == "peer_did_not_return_a_certificate"


async def test_a_valid_certificate_without_a_device_row_gets_403(world: World) -> None:
    tablet = await world.tablet("TAB-GHOST", register=False)
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await world.session.ws_connect(world.url, ssl=tablet.context())
    assert err.value.status == 403


async def test_a_device_revoked_in_the_database_gets_403(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    async with world.engine.begin() as conn:
        await conn.execute(
            t.devices.update().where(t.devices.c.id == tablet.device_id).values(revoked=True)
        )
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await world.session.ws_connect(world.url, ssl=tablet.context())
    assert err.value.status == 403


# --- revocation cuts live links ----------------------------------------------------------


async def test_revoking_a_connected_device_cuts_it_at_once(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    other = await world.tablet("TAB-2")
    ws = await world.connect(tablet)
    ws2 = await world.connect(other)
    await ping(ws, 1)
    await ping(ws2, 1)
    async with world.engine.begin() as conn:
        device = await device_registry.device_for_certificate(
            world.engine, tablet.enrolled.certificate_serial
        )
        assert device is not None
        await device_registry.revoke_device(conn, world.pki_dir, device, datetime.now(UTC))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await world.hub.revoke_device(tablet.device_id)
    code, before = await closed_with(ws)
    assert loop.time() - started < 2.5
    assert code == CloseCode.DEVICE_REVOKED
    assert before == [
        {"type": "error", "code": "device_revoked", "message": "This tablet has been revoked."}
    ]
    assert not world.hub.connected(tablet.device_id)
    assert (await ping(ws2, 2))["type"] == "pong"  # the other tablet is untouched
    assert await refused_at_handshake(world, tablet.context()) == "certificate revoked"


async def test_a_revocation_by_another_process_cuts_the_link_through_the_crl(
    world: World,
) -> None:
    world.hub.timers = LinkTimers(heartbeat_interval=0.5, silent_intervals=40)  # no timeout
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    await ping(ws, 1)
    # What `kiosk admin device revoke` in another process leaves behind: a new crl.pem.
    revocation.revoke(world.pki_dir, tablet.enrolled.certificate_serial)
    code, _ = await closed_with(ws)  # the listener's CRL watch notices within seconds
    assert code == CloseCode.DEVICE_REVOKED


# --- bad input, floods and silence -------------------------------------------------------


async def test_the_first_message_must_be_hello(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet, hello=False)
    await ws.send_str(json.dumps({"type": "ping", "seq": 1}))
    code, before = await closed_with(ws)
    assert code == CloseCode.BAD_MESSAGES
    assert before[0]["code"] == "invalid_request"
    assert not any(kind == "connect" for kind, _, _ in world.handler.events)


async def test_bad_frames_get_invalid_request_then_a_close(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    frames = [
        "not json",
        '{"type":"ping","seq":1,"admin":1}',
        '{"type":"hello","version":1,"agent_version":"x","calls":[]}',
        '{"type":"nope"}',
    ]
    for frame in frames:
        await ws.send_str(frame)
        reply = await next_json(ws)
        assert reply["type"] == "error" and reply["code"] == "invalid_request"
    await ws.send_bytes(b"\x00\x01")
    code, before = await closed_with(ws)
    assert before[0]["code"] == "invalid_request"
    assert code == CloseCode.BAD_MESSAGES


async def test_an_oversized_frame_closes_the_link_but_not_others(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    other = await world.tablet("TAB-2")
    ws = await world.connect(tablet)
    ws2 = await world.connect(other)
    await ping(ws, 1)
    await ws.send_str(json.dumps({"type": "ping", "seq": 2, "pad": "x" * MAX_MESSAGE_BYTES}))
    code, _ = await closed_with(ws)
    assert code == CloseCode.MESSAGE_TOO_BIG
    assert (await ping(ws2, 3))["type"] == "pong"


def _hypothesis_frames() -> list[str | bytes]:
    frames: list[str | bytes] = []
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )
    typed = st.builds(
        lambda kind, body: json.dumps({**body, "type": kind}),
        st.sampled_from(["dial", "sdp", "ice", "hangup", "tamper", "ping", "hello", "grant", "x"]),
        st.dictionaries(
            st.sampled_from(
                ["call_id", "booking_id", "seq", "kind", "sdp", "candidate", "details", "extra"]
            ),
            json_values,
            max_size=4,
        ),
    )

    @given(
        st.one_of(
            st.binary(max_size=200), st.text(max_size=200), json_values.map(json.dumps), typed
        )
    )
    # A corpus of 150 frames (the assertions below count on it), not a search: fixed.
    @settings(max_examples=150, database=None, suppress_health_check=list(HealthCheck))
    def collect(frame: str | bytes) -> None:
        frames.append(frame)

    collect()
    return frames


async def test_random_frames_never_crash_and_other_devices_keep_their_pongs(
    world: World,
) -> None:
    frames = _hypothesis_frames()
    fuzzer = await world.tablet("TAB-FUZZ")
    bystander = await world.tablet("TAB-OK")
    calm = await world.connect(bystander)
    ws = await world.connect(fuzzer)
    answered = closes = passed = 0
    for i, frame in enumerate(frames):
        if ws.closed:
            closes += 1
            ws = await world.connect(fuzzer)
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        # A ping right behind each frame: every frame is answered before the pong
        # (error invalid_request), or is a valid message (passed on), or closed the link.
        await ws.send_str(json.dumps({"type": "ping", "seq": i}))
        replies: list[dict[str, Any]] = []
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                assert msg.type == aiohttp.WSMsgType.CLOSE, (frame, msg)
                assert msg.data == CloseCode.BAD_MESSAGES, (frame, msg)
                break
            reply = json.loads(msg.data)
            replies.append(reply)
            if reply["type"] == "pong":
                break
        errors = [r for r in replies if r["type"] == "error"]
        assert all(r["code"] == "invalid_request" for r in errors), replies
        answered += len(errors)
        passed += not errors and not ws.closed
        if i % 10 == 0:
            assert (await ping(calm, i))["type"] == "pong"
    assert (await ping(calm, 10**6))["type"] == "pong"
    assert answered > 50 and closes > 5
    assert world.hub.connected(bystander.device_id)


async def test_a_flood_is_rate_limited_and_closed(world: World) -> None:
    world.hub.timers = LinkTimers(heartbeat_interval=0.5, rate=5.0, burst=10.0)
    tablet = await world.tablet("TAB-1")
    other = await world.tablet("TAB-2")
    ws = await world.connect(tablet)
    ws2 = await world.connect(other)
    for i in range(40):
        await ws.send_str(json.dumps({"type": "ping", "seq": i}))
    code, before = await closed_with(ws)
    assert code == CloseCode.RATE_LIMITED
    assert before[-1] == {
        "type": "error",
        "code": "rate_limited",
        "message": "Too many requests; slow down.",
    }
    assert 5 <= sum(1 for m in before if m["type"] == "pong") <= 20  # burst + refill
    assert (await ping(ws2, 1))["type"] == "pong"
    # Reconnecting does not refill the bucket.
    again = await world.connect(tablet)
    for i in range(20):
        await again.send_str(json.dumps({"type": "ping", "seq": i}))
    code, _ = await closed_with(again)
    assert code == CloseCode.RATE_LIMITED


async def test_a_silent_link_is_closed_after_three_heartbeat_intervals(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    await ping(ws, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    code, _ = await closed_with(ws)
    waited = loop.time() - started
    assert code == CloseCode.HEARTBEAT_TIMEOUT
    assert TIMERS.silence_limit * 0.9 <= waited < TIMERS.silence_limit + 5


async def test_a_second_connection_replaces_the_first(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    first = await world.connect(tablet)
    await ping(first, 1)
    second = await world.connect(tablet)
    await ping(second, 1)
    code, _ = await closed_with(first)
    assert code == CloseCode.REPLACED
    assert world.hub.connected(tablet.device_id)
    assert (await ping(second, 2))["type"] == "pong"


# --- the commands, end to end -----------------------------------------------------------


def test_a_tablet_enrolled_by_the_commands_connects(tmp_path: Path) -> None:
    from kiosk.cli import main
    from kiosk.runtime.config import AgentProgramSettings, load, load_settings

    config = tmp_path / "kiosk.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    assert main(["admin", "ca", "init", "--config", str(config), "--host", "127.0.0.1"]) == 0
    out = tmp_path / "agent"
    args = ["admin", "ca", "enrol-local", "--config", str(config), "--serial", "TAB-CLI"]
    assert main([*args, "--out", str(out)]) == 0
    assert main([*args, "--out", str(tmp_path / "again")]) == 1  # serial already registered
    assert not (tmp_path / "again").exists()
    agent = load(AgentProgramSettings, out / "agent.toml").agent
    settings = load_settings(config)

    async def connect() -> dict[str, Any]:
        from kiosk.store.db import make_engine

        engine = make_engine(settings.database_url)
        listener = DeviceListener(DeviceHub(engine, timers=TIMERS), settings.pki_dir, port=0)
        await listener.start()
        ctx = tlsconfig.agent_client_context(agent.ca_cert, agent.cert, agent.key)
        try:
            async with aiohttp.ClientSession() as session:
                url = f"wss://127.0.0.1:{listener.port}/device/v1"
                async with session.ws_connect(url, ssl=ctx) as ws:
                    await ws.send_str(HELLO)
                    return await ping(ws, 5)
        finally:
            await listener.stop()
            await engine.dispose()

    assert asyncio.run(connect())["seq"] == 5


async def test_a_connection_that_never_finishes_its_handshake_is_dropped(world: World) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", world.listener.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
    assert await asyncio.wait_for(reader.read(), 15) == b""
    assert loop.time() - started < TIMERS.handshake_timeout + 5
    writer.close()
    assert world.listener.site is not None
    assert world.listener.site.refusals["handshake timeout"] == 1


# --- heartbeats and last-seen at scale: one wheel, batched writes (issue 14) -------------


def _updates_of_last_seen(engine: AsyncEngine) -> list[int]:
    """Count the statements that write devices.last_seen_at (an executemany counts once)."""
    from sqlalchemy import event

    count = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DEVICES") and "last_seen_at" in statement:
            count[0] += 1

    return count


async def test_last_seen_is_written_for_many_tablets_in_one_batch(world: World) -> None:
    world.hub.timers = replace(TIMERS, touch_every=1.0)
    writes = _updates_of_last_seen(world.engine)
    tablets = [await world.tablet(f"TAB-{i}") for i in range(10)]
    before = datetime.now(UTC)
    links = [await world.connect(tablet) for tablet in tablets]
    for ws in links:
        for seq in range(3):
            assert (await ping(ws, seq))["type"] == "pong"
    after = datetime.now(UTC)
    for tablet in tablets:
        seen = await wait_until(lambda d=tablet.device_id: last_seen(world, d), what="last seen")
        # The time the tablet was heard, not the time the batch was written.
        assert before - timedelta(seconds=1) <= seen <= after + timedelta(seconds=1)
    # 10 tablets, 30 pings, 10 connections: a handful of batches, not a write for each.
    assert 1 <= writes[0] < 10


async def test_the_last_sightings_are_written_when_the_listener_stops(world: World) -> None:
    world.hub.timers = replace(TIMERS, touch_every=3600.0)  # no batch before the stop
    # The writer already sleeps its old interval: started again, it sleeps the new one.
    await world.hub.last_seen.stop()
    world.hub.last_seen.start()
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    assert (await ping(ws, 1))["type"] == "pong"
    assert await last_seen(world, tablet.device_id) is None
    await world.listener.stop()
    assert await last_seen(world, tablet.device_id) is not None


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"ping"}',
        '{"type":"ping","seq":-1}',
        '{"type":"ping","seq":"1"}',
        '{"type":"ping","seq":1.5}',
        '{"type":"ping","seq":true}',
        '{"type":"ping","seq":9007199254740992}',
        '{"type":"ping","seq":1,"extra":0}',
        '{"type":"Ping","seq":1}',
        '{"seq":1}',
    ],
)
async def test_a_ping_that_is_not_valid_is_refused_and_not_answered(
    world: World, frame: str
) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    await ws.send_str(frame)
    reply = await next_json(ws)  # the error, and no pong before it
    assert reply["type"] == "error" and reply["code"] == "invalid_request", reply
    pong = await ping(ws, 2)  # the next reply answers the next, valid ping
    assert pong["type"] == "pong" and pong["seq"] == 2


async def test_a_link_that_never_says_hello_is_closed_by_the_wheel(world: World) -> None:
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet, hello=False)
    code, before = await closed_with(ws)
    assert code == CloseCode.HEARTBEAT_TIMEOUT and before == []
    assert not any(kind == "connect" for kind, _, _ in world.handler.events)


async def test_a_tablet_that_keeps_pinging_outlives_the_silence_limit(world: World) -> None:
    world.hub.timers = replace(TIMERS, heartbeat_interval=0.5, silent_intervals=6)  # 3 s
    tablet = await world.tablet("TAB-1")
    ws = await world.connect(tablet)
    loop = asyncio.get_running_loop()
    started = loop.time()
    seq = 0
    while loop.time() - started < 2 * world.hub.timers.silence_limit:
        seq += 1
        assert (await ping(ws, seq))["seq"] == seq
        await asyncio.sleep(0.2)  # the tablet's own pace, well inside the limit
    assert world.hub.connected(tablet.device_id)


async def test_a_tablet_that_does_not_read_is_cut_and_others_are_served(world: World) -> None:
    from kiosk.domain.reasons import Reason
    from kiosk.wire.messages import ErrorMessage

    world.hub.timers = replace(TIMERS, send_timeout=1.0, heartbeat_interval=5.0)
    slow = await world.tablet("TAB-SLOW")
    calm = await world.tablet("TAB-OK")
    ws = await world.connect(slow)
    ws2 = await world.connect(calm)
    assert (await ping(ws, 1))["type"] == "pong"  # then it stops reading
    bulky = ErrorMessage.of(Reason.INTERNAL_ERROR, "x" * 1000)

    async def flood() -> int:
        sent = 0
        while await world.hub.send(slow.device_id, bulky):
            sent += 1
        return sent

    sent = await asyncio.wait_for(flood(), 120)  # ends when a send finds the link cut
    assert sent > 100
    assert not world.hub.connected(slow.device_id)
    assert (await ping(ws2, 1))["type"] == "pong"
