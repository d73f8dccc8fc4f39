"""Issue 12, the calls' part: every refused attempt on a call recorded, invites for a call
that is over or off refused with the reason, and monitors bounded.

Real processes (``kiosk server``, ``kiosk agent``), aiortc visitors and an
aiortc staff monitor, attacking and using the real API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness import World, iso, utc_now, wait_until
from tests.integration.test_controlled import _OFFICERS, Monitor, _officer

pytestmark = pytest.mark.slow

# Short on purpose: the real default is 30 s, for a person at a console to answer.
QUICK_MONITORS = "[calls]\nmax_monitors = 1\nmonitor_answer_seconds = 2\n"


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    w = World(tmp_path, extra_config=getattr(request, "param", ""))
    await w.start()
    try:
        yield w
    finally:
        await w.close()


async def _audit(world: World, action: str) -> list[dict[str, Any]]:
    assert world.api is not None
    entries = (await world.api.call("GET", "/audit?limit=1000"))["items"]
    return [e for e in entries if e["action"] == action]


async def test_every_refused_attempt_on_a_call_is_recorded_whatever_the_role(
    world: World,
) -> None:
    """Item 1 (R13): an admin's monitor attempt on a lawyer's call is refused 403 and kept."""
    assert world.api is not None
    inmate = await world.inmate()
    lawyer = await world.approved_contact(
        inmate, category="defence_counsel", relation="professional"
    )
    booking = await world.booking(inmate, lawyer, start_in=2)
    device = world.deployment.enrol_tablet("TAB-R13", inmate, world.deployment.root / "t")
    call = await world.api.call(
        "POST", "/calls", {"booking_id": booking["id"], "device_id": device}, expect=201
    )
    refused = await world.api.call(
        "POST", f"/calls/{call['id']}/monitors", {"kinds": ["audio"]}, expect=403
    )
    assert refused["error"]["code"] == "forbidden_role"
    [entry] = await _audit(world, "monitor.refused")
    assert entry["subjects"] == {"call": call["id"]}
    assert entry["details"]["reason"] == "forbidden_role"
    assert entry["actor"].startswith("staff:")
    # Other refused requests on calls too: one that never was, one that is over.
    await world.api.call("POST", "/calls/no-such-call/end", {"note": ""}, expect=404)
    await world.api.call("POST", f"/calls/{call['id']}/end", {"note": "done"})
    await world.api.call("POST", f"/calls/{call['id']}/end", {"note": "again"}, expect=409)
    reasons = [e["details"]["reason"] for e in await _audit(world, "call.end_refused")]
    assert sorted(reasons) == ["call_not_live", "not_found"]


async def test_an_invite_for_a_call_that_is_over_or_off_is_refused_with_its_reason(
    world: World,
) -> None:
    """Item 6: used, cancelled and held bookings' invites; each says why."""
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    used = await world.booking(inmate, contact, start_in=2)
    cancelled = await world.booking(inmate, contact, start_in=1200)
    held = await world.booking(inmate, contact, start_in=2400)
    tokens = {b["id"]: await world.invite_token(b["id"]) for b in (used, cancelled, held)}
    tablet = await world.tablet(inmate, "TAB-OVER")
    visitor = await world.visitor(tokens[used["id"]])
    await wait_until(lambda: tablet.callable(used["id"]), timeout=20, what="window open")
    await tablet.dial(used["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="the call")
    await visitor.hangup()
    await wait_until(lambda: visitor.end is not None, timeout=20, what="the call over")
    await visitor.close()
    await world.api.call("POST", f"/bookings/{cancelled['id']}/cancel", None)
    start = utc_now() + timedelta(seconds=2300)
    await world.api.call(
        "POST",
        "/facility/restrictions",
        {"start": iso(start), "end": iso(start + timedelta(hours=1)), "kind": "suspend"},
        expect=201,
    )
    assert (await world.api.call("GET", f"/bookings/{held['id']}"))["state"] == "held"
    for booking, code in ((used, "booking_used"), (cancelled, "booking_cancelled"),
                          (held, "facility_restricted")):
        late = await world.visitor(tokens[booking["id"]])
        await wait_until(lambda: late.errors, timeout=20, what=f"refusal {code}")  # noqa: B023
        assert late.errors[0].code.value == code
        assert late.waiting is None


@pytest.mark.parametrize("world", [QUICK_MONITORS], indirect=True)
async def test_monitors_are_capped_and_one_never_answered_goes(world: World) -> None:
    """Item 10: at most ``max_monitors`` per call; an offer not answered in time is dropped."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, control="sight_and_hearing")
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, "TAB-CAP")
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="bridged media")
    assert visitor.call is not None
    call_id = visitor.call.call_id
    officer = await _officer(world)
    monitor = Monitor()
    try:
        path = f"/calls/{call_id}/monitors"
        silent = await officer.call("POST", path, {"kinds": ["video"]}, expect=201)
        full = await officer.call("POST", path, {"kinds": ["video"]}, expect=409)
        assert full["error"]["code"] == "monitor_limit_reached"

        async def dropped() -> bool:
            gone = await _audit(world, "monitor.detached")
            return any(e["subjects"].get("monitor") == silent["monitor_id"] for e in gone)

        await wait_until(dropped, timeout=30, what="the silent monitor dropped")
        [gone] = await _audit(world, "monitor.detached")
        assert gone["details"]["why"] == "not_answered"
        assert world.server is not None
        server = world.server

        def closed_on_the_bridge() -> bool:  # its peer connection closed, not only forgotten
            return any("bridge monitor removed" in line and silent["monitor_id"] in line
                       for line in server.output().splitlines())

        await wait_until(closed_on_the_bridge, timeout=30, what="the bridge closing it")
        await monitor.attach(world, call_id, ["video"])  # room again, and answered in time
        await wait_until(lambda: monitor.frames["video"] > 10, timeout=30, what="watching")
        refusals = await _audit(world, "monitor.refused")
        assert [e["details"]["reason"] for e in refusals] == ["monitor_limit_reached"]
    finally:
        await monitor.close()
        await _OFFICERS.pop(id(world)).close()
