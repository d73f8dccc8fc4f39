"""Calls end to end (issue 3): a real server, a real tablet agent and an aiortc visitor.

Every process is started with the operator's commands; they talk over
loopback with real TLS (the device listener's mutual TLS) and real aiortc
media. The tests read like the rules they check.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import WSCloseCode

from kiosk.domain.reasons import EndReason, Reason
from tests.harness import (
    Tablet,
    World,
    iso,
    run_kiosk,
    stays,
    utc_now,
    wait_until,
)
from tests.visitor_client import Visitor, moving

pytestmark = pytest.mark.slow


async def test_a_booked_call_connects_and_media_flows_both_ways(world: World) -> None:
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, "TAB-0001")
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: visitor.waiting is not None, what="the waiting room")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    await wait_until(
        lambda: visitor.received.video > 45 and visitor.received.audio > 50,
        timeout=40,
        what="media at the visitor",
    )
    state = await wait_until(_tablet_media(tablet), timeout=30, what="media at the tablet")
    assert state["phase"] == "in_call"
    assert moving(visitor.received.samples), "the tablet's picture moves at the visitor"
    assert visitor.call is not None and visitor.call.route.value == "p2p"


def _tablet_media(tablet: Tablet) -> Any:
    async def check() -> dict[str, Any] | None:
        state = await tablet.state()
        media = state.get("media") or {}
        if media.get("video_received", 0) > 45 and media.get("audio_received", 0) > 50:
            return state
        return None

    return check


# One refusal per mechanism all the way to a real tablet's screen: the tablet found not
# to be the inmate's (the runner's lookup) and a rule of the policy (R16). Every
# reason, R8, R10, R11 among them, is refused through the whole server in
# tests/integration/test_dial_refusals.py, and decided in tests/unit/test_policy_dial.py.
@pytest.mark.parametrize("case", ["device_not_assigned", "facility_restricted"])
async def test_each_refusal_reaches_the_tablet_with_its_reason(world: World, case: str) -> None:
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    assigned = None if case == "device_not_assigned" else inmate
    tablet = await world.tablet(assigned, f"TAB-{case[:10]}")
    if case == "facility_restricted":
        now = utc_now()
        await world.api.call(
            "POST",
            "/facility/restrictions",
            {
                "start": iso(now - timedelta(minutes=1)),
                "end": iso(now + timedelta(hours=2)),
                "kind": "suspend",
                "note": "outbreak",
            },
            expect=201,
        )
    # Both are decided before the window is looked at: no need to wait for it to open.
    await tablet.dial(booking["id"])
    state = await wait_until(_refused(tablet), timeout=20, what=f"refusal {case}")
    assert state == case


def _refused(tablet: Tablet) -> Any:
    async def check() -> str | None:
        state = await tablet.state()
        refusal = state.get("refusal") or {}
        return refusal.get("code")

    return check


async def test_the_call_ends_at_its_end_time_at_both_ends(world: World) -> None:
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    tablet = await world.tablet(inmate, "TAB-END1")  # first: a slow start eats no window
    booking = await world.booking(inmate, contact, start_in=2, seconds=14)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=30, what="media")
    await wait_until(lambda: visitor.end is not None, timeout=30, what="the end at the visitor")
    assert visitor.end is not None and visitor.end.reason is EndReason.TIME_UP
    state = await wait_until(_ended(tablet), timeout=10, what="the end at the tablet")
    assert state["ended"]["reason"] == "time_up"
    calls = await world.api.call("GET", "/calls")  # type: ignore[union-attr]
    [call] = [c for c in calls["items"] if c["booking_id"] == booking["id"]]
    assert call["end_reason"] == "time_up"


def _ended(tablet: Tablet) -> Any:
    async def check() -> dict[str, Any] | None:
        state = await tablet.state()
        return state if state.get("phase") == "ended" else None

    return check


async def _call_under_way(
    world: World, serial: str, seconds: float = 600
) -> tuple[dict[str, Any], str, Tablet, Visitor]:
    """A booked p2p call dialled from a new tablet, with media at the visitor."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    tablet = await world.tablet(inmate, serial)  # first: a slow start eats no window
    booking = await world.booking(inmate, contact, start_in=2, seconds=seconds)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=30, what="media")
    return booking, contact, tablet, visitor


async def test_with_the_server_killed_the_tablet_still_ends_on_time(world: World) -> None:
    booking, _contact, tablet, visitor = await _call_under_way(world, "TAB-KILL", seconds=16)
    assert world.server is not None
    world.server.kill(signal.SIGKILL)  # no clean-up, no end message from the server
    state = await wait_until(_ended(tablet), timeout=30, what="the tablet ends by itself")
    assert state["ended"]["reason"] == "time_up"
    # The visitor's media stops too: the tablet closed the peer connection. (Frames
    # already in the visitor's decoder may still come out on a loaded machine.)
    await wait_until(
        lambda: time.monotonic() - (visitor.received.last_video_at or 0) > 0.5,
        timeout=30,
        what="the visitor's video stopped",
    )
    last = visitor.received.last_video_at
    await stays(lambda: visitor.received.last_video_at == last, 1.5, "no video at the visitor")
    # After a restart the server records the call ended, with the right reason.
    await world.start_server()
    calls = await world.api.call("GET", "/calls")  # type: ignore[union-attr]
    [call] = [c for c in calls["items"] if c["booking_id"] == booking["id"]]
    assert call["end_reason"] == "time_up"
    result = run_kiosk(
        ["admin", "audit", "verify", "--config", str(world.deployment.config)],
        env=world.deployment.env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_a_tablet_restarted_mid_call_dials_again_and_gets_the_same_call_back(
    world: World,
) -> None:
    assert world.api is not None
    booking, _contact, tablet, visitor = await _call_under_way(world, "TAB-AGAIN")
    assert visitor.call is not None
    call_id = visitor.call.call_id
    assert tablet.proc is not None
    tablet.proc.kill(signal.SIGKILL)  # the agent loses the call; the server still holds it
    await tablet.start()
    await wait_until(tablet.online, timeout=30, what="the tablet back online")
    before = visitor.received.video
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    await wait_until(lambda: visitor.offers == 2, timeout=20, what="a new offer at the visitor")
    await wait_until(lambda: visitor.received.video > before + 20, timeout=30, what="media again")
    state = await wait_until(_tablet_media(tablet), timeout=30, what="media at the tablet")
    assert state["phase"] == "in_call"
    # The same call, not a second one: one row, one grant and one grant again in the chain.
    assert visitor.call.call_id == call_id and visitor.end is None
    calls = await world.api.call("GET", "/calls")
    assert [c["id"] for c in calls["items"] if c["booking_id"] == booking["id"]] == [call_id]
    entries = (await world.api.call("GET", "/audit?limit=1000"))["items"]
    actions = [e["action"] for e in entries if e["subjects"].get("call") == call_id]
    assert actions.count("call.granted") == 1 and actions.count("call.granted_again") == 1


async def test_a_visitor_who_reloads_the_page_mid_call_joins_the_same_call_again(
    world: World,
) -> None:
    assert world.api is not None
    booking, _contact, tablet, first = await _call_under_way(world, "TAB-RELOAD")
    assert first.call is not None
    call_id = first.call.call_id
    token = first.token
    await first.close()  # the page goes away mid-call, without a hang-up
    second = await world.visitor(token)  # the same invite, a new page
    await wait_until(lambda: second.received.video > 20, timeout=40, what="media again")
    assert second.call is not None and second.call.call_id == call_id
    state = await wait_until(_tablet_media(tablet), timeout=30, what="media at the tablet")
    assert state["phase"] == "in_call" and state["call"]["call_id"] == call_id
    # One call all along: the tablet offered it again under its grant, it did not dial.
    calls = await world.api.call("GET", "/calls")
    [row] = [c for c in calls["items"] if c["booking_id"] == booking["id"]]
    assert row["id"] == call_id and row["end_reason"] is None


async def test_staff_end_through_the_api_ends_both_sides_and_records_a_breach(
    world: World,
) -> None:
    assert world.api is not None
    _booking, contact, tablet, visitor = await _call_under_way(world, "TAB-STAFF")
    assert visitor.call is not None
    await world.api.call(
        "POST", f"/calls/{visitor.call.call_id}/end", {"note": "showed a weapon", "breach": True}
    )
    await wait_until(lambda: visitor.end is not None, timeout=10, what="end at the visitor")
    assert visitor.end is not None and visitor.end.reason is EndReason.BREACH
    state = await wait_until(_ended(tablet), timeout=10, what="end at the tablet")
    assert state["ended"]["reason"] == "breach"
    got = await world.api.call("GET", f"/contacts/{contact}")
    assert got["breaches"] == 1  # R14: recorded against the contact (and the inmate)


async def test_revoking_a_device_mid_call_cuts_the_call(world: World) -> None:
    assert world.api is not None
    _booking, _contact, tablet, visitor = await _call_under_way(world, "TAB-REVOKE")
    await world.api.call("POST", f"/devices/{tablet.device_id}/revoke", None)
    await wait_until(lambda: visitor.end is not None, timeout=10, what="end at the visitor")
    assert visitor.end is not None and visitor.end.reason is EndReason.DEVICE_REVOKED
    await wait_until(_ended(tablet), timeout=10, what="end at the tablet")
    await wait_until(lambda: _offline(tablet), timeout=10, what="the link cut")


async def _offline(tablet: Tablet) -> bool:
    return (await tablet.state()).get("link") == "offline"


async def test_a_visitor_sending_garbage_gets_invalid_request_and_others_go_on(
    world: World,
) -> None:
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: visitor.waiting is not None, what="waiting room")
    for junk in ['{"type":"sdp"}', "not json", b"\x00\xff" * 10, '{"type":"launch"}']:
        await visitor.send_raw(junk)
    await wait_until(lambda: len(visitor.errors) >= 4, timeout=10, what="four errors")
    assert {e.code for e in visitor.errors} == {Reason.INVALID_REQUEST}
    # The server keeps serving: a second visitor with a bad token is refused cleanly.
    other = await world.visitor("A" * 43)
    await wait_until(lambda: other.errors, timeout=10, what="refusal of a bad token")
    assert other.errors[0].code is Reason.NOT_FOUND


async def test_a_stopping_server_tells_every_visitor_it_is_going_away(world: World) -> None:
    """A graceful stop closes the visitors' sockets with 1001 at once (their pages come back,
    to this node or another) instead of leaving them for the web server to wait on until it
    is killed: a node's restart must not outlast its stop timeout (issue 14, item 6)."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=60, seconds=600)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: visitor.waiting is not None, what="the waiting room")
    server = world.server
    assert server is not None
    await asyncio.to_thread(server.kill, signal.SIGTERM)  # waits for the exit, at most 20 s
    assert server.popen.returncode == 0, server.output()[-2000:]
    await wait_until(visitor.closed.is_set, what="the visitor's socket closed")
    assert visitor.ws is not None and visitor.ws.close_code == WSCloseCode.GOING_AWAY
