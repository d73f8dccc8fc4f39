"""Issue 11: the four defects of the old supervisor, through the real API and a real tablet.

Each test starts ``kiosk server`` and ``kiosk agent`` processes (tests/harness.py)
and drives them as staff and the inmate would: the staff API with a bearer
token, the tablet's own page API on loopback. Times are relative to the
test's own clock (a booking "four hours ahead" is four hours after now,
whatever the hour).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.harness import Tablet, World, iso, utc_now, wait_until
from tests.integration.conftest import _asyncpg_dsn, _pg_url, _Postgres

# Each test gets a world of its own, from the shared fixture (tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.fresh_world]


@pytest.fixture
def pg_url(_postgres: _Postgres) -> Iterator[str]:
    """A migrated PostgreSQL database for a server (its locks can be watched)."""
    name = _postgres.migrated_database()
    try:
        yield _pg_url(name).render_as_string(hide_password=False)
    finally:
        _postgres.drop(name)


@pytest.fixture
async def pg_world(tmp_path: Path, pg_url: str) -> AsyncIterator[World]:
    w = World(tmp_path)
    w.deployment.database_url = pg_url
    await w.start()
    try:
        yield w
    finally:
        await w.close()


def _after(at: datetime) -> Any:
    return lambda: utc_now() > at


def _refusal(tablet: Tablet, code: str) -> Any:
    async def check() -> bool:
        refusal = (await tablet.state()).get("refusal") or {}
        return refusal.get("code") == code

    return check


def _phase(tablet: Tablet, *phases: str) -> Any:
    async def check() -> bool:
        return (await tablet.state()).get("phase") in phases

    return check


async def _waiting_on_calls(conn: asyncpg.Connection, at_least: int) -> bool:
    """Backends of this database waiting for a lock on the ``calls`` table."""
    waiting = await conn.fetchval(
        """SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE NOT l.granted AND c.relname = 'calls'
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    )
    return int(waiting) >= at_least


@pytest.mark.postgres
async def test_a_staff_end_during_a_dial_leaves_no_ghost_call(pg_world: World) -> None:
    """Defect 1: the end lands while the dial waits for its transaction.

    The test holds the ``calls`` table locked, so the dial of a set-up call waits in
    its write; the staff end arrives and waits too; then the lock goes. The call is
    ended for good, and the tablet and the inmate are free for the next call.
    """
    world = pg_world
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=2)
    other = await world.approved_contact(inmate, name="Per Nordmann", email="per@example.org")
    after = await world.booking(inmate, other, start_in=2)
    tablet = await world.tablet(inmate, "TAB-GHOST")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=30, what="window open")
    set_up = await world.api.call(
        "POST", "/calls", {"booking_id": booking["id"], "device_id": tablet.device_id}
    )
    lock = await asyncpg.connect(_asyncpg_dsn(make_url(world.deployment.database_url)))
    try:
        held = lock.transaction()
        await held.start()
        await lock.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        status, _ = await tablet.dial(booking["id"])
        assert status == 202
        await wait_until(lambda: _waiting_on_calls(lock, 1), what="the dial waiting to write")
        end = world.api.call("POST", f"/calls/{set_up['id']}/end", {"note": "wrong booking"})
        ending = asyncio.ensure_future(end)
        await wait_until(lambda: _waiting_on_calls(lock, 2), what="the end waiting too")
        await held.rollback()
        ended = await ending
    finally:
        await lock.close()
    assert ended["end_reason"] == "ended_by_staff"
    await wait_until(_phase(tablet, "ended", "idle"), timeout=20, what="the tablet off the call")
    # No ghost: the same tablet and inmate take the next call.
    again = await world.api.call(
        "POST", "/calls", {"booking_id": after["id"], "device_id": tablet.device_id}, expect=201
    )
    live = (await world.api.call("GET", "/calls?live=true"))["items"]
    assert [c["id"] for c in live] == [again["id"]]


async def test_staff_set_up_refuses_what_the_tablet_s_dial_refuses(world: World) -> None:
    """Defect 2: one policy; the same reason code for set-up (POST /calls) and dial."""
    assert world.api is not None
    tablet: Tablet | None = None
    for case in ("police_clearance_missing", "quota_exhausted", "inmate_inactive",
                 "facility_restricted"):
        inmate = await world.inmate(name=f"Inmate {case}", remand=case.startswith("police"))
        contact = await world.approved_contact(inmate)
        start = utc_now() + timedelta(seconds=3)
        booking = await world.booking(inmate, contact, start_in=3)
        if tablet is None:
            tablet = await world.tablet(inmate, "TAB-POLICY")
        else:
            await world.api.call(
                "PUT", f"/devices/{tablet.device_id}/assignment", {"inmate_id": inmate}
            )
        if case == "quota_exhausted":  # R17: lowered after booking
            await world.api.call("PATCH", "/facility", {"weekly_quota_minutes": 5})
        if case == "inmate_inactive":
            await world.api.call("PATCH", f"/inmates/{inmate}", {"active": False})
        if case == "facility_restricted":  # R16: declared after booking
            now = utc_now()
            await world.api.call(
                "POST",
                "/facility/restrictions",
                {"start": iso(now - timedelta(minutes=1)), "end": iso(now + timedelta(hours=2)),
                 "kind": "suspend", "note": "outbreak"},
                expect=201,
            )
        refused = await world.api.call(
            "POST",
            "/calls",
            {"booking_id": booking["id"], "device_id": tablet.device_id},
            expect=409,
        )
        assert refused["error"]["code"] == case, refused
        await wait_until(_after(start), what="the window open")
        await tablet.dial(booking["id"])
        await wait_until(_refusal(tablet, case), timeout=20, what=f"the tablet refused {case}")
        if case == "quota_exhausted":
            await world.api.call("PATCH", "/facility", {"weekly_quota_minutes": 600})
    calls = await world.api.call("GET", "/calls")
    assert calls["items"] == []  # nothing was set up, nothing dialled


async def test_a_call_set_up_for_later_blocks_nothing_now(world: World) -> None:
    """Defect 3 (R12): set up four hours ahead; the call open now still connects."""
    assert world.api is not None
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    now_booking = await world.booking(inmate, contact, start_in=2)
    ahead = await world.booking(inmate, contact, start_in=4 * 3600)
    tablet = await world.tablet(inmate, "TAB-AHEAD")
    set_up = await world.api.call(
        "POST", "/calls", {"booking_id": ahead["id"], "device_id": tablet.device_id}
    )
    assert set_up["state"] == "ready"
    visitor = await world.visitor(await world.invite_token(now_booking["id"]))
    await wait_until(lambda: tablet.callable(now_booking["id"]), timeout=20, what="window open")
    status, _ = await tablet.dial(now_booking["id"])
    assert status == 202
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media now")
    assert visitor.call is not None and visitor.call.call_id != set_up["id"]
    live = {c["id"]: c for c in (await world.api.call("GET", "/calls?live=true"))["items"]}
    assert live[set_up["id"]]["state"] == "ready"  # still waiting for its window


async def test_a_reassigned_tablet_shows_the_next_inmate_at_once(world: World) -> None:
    """Defect 4: state is pushed when the assignment, a contact, a decision or a booking
    the tablet shows changes; the next inmate never sees another's contacts."""
    assert world.api is not None
    first = await world.inmate(name="Ola Nordmann")
    lawyer = await world.approved_contact(
        first, category="defence_counsel", relation="professional", name="Advokat Berg"
    )
    await world.booking(first, lawyer, start_in=600)
    tablet = await world.tablet(first, "TAB-REASSIGN")

    async def shows(inmate_id: str, contacts: set[str]) -> bool:
        state = await tablet.state()
        who = (state.get("inmate") or {}).get("id")
        return who == inmate_id and {c["contact_id"] for c in state["contacts"]} == contacts

    await wait_until(lambda: shows(first, {lawyer}), what="the first inmate's lawyer")
    second = await world.inmate(name="Kari Hansen")
    await world.api.call("PUT", f"/devices/{tablet.device_id}/assignment", {"inmate_id": second})
    await wait_until(lambda: shows(second, set()), timeout=15, what="the next inmate, alone")
    sister = await world.approved_contact(second, name="Eva Hansen", email="eva@example.org")
    booking = await world.booking(second, sister, start_in=600)
    await wait_until(lambda: shows(second, {sister}), timeout=15, what="the new booking")
    appeal = await world.api.call(
        "POST", f"/contacts/{sister}/appeals", {"by": "inmate", "text": "review"}, expect=201
    )
    await world.api.call(
        "POST",
        f"/appeals/{appeal['id']}/decision",
        {"result": "changed", "decision": {"outcome": "refuse", "note": "revoked"}},
    )
    await wait_until(lambda: shows(second, set()), timeout=15, what="the refused contact gone")
    assert booking["state"] == "booked"


async def test_a_bridge_that_fails_by_itself_ends_the_call_and_holds_nothing_up(
    world: World,
) -> None:
    """Principle 3, through the runner: the bridge's own failure report ends the call, the
    bridge is let go, and the tablet's next call goes through (nothing waits for ever)."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate, control="sight")
    first = await world.booking(inmate, contact, start_in=2)
    other = await world.approved_contact(inmate, name="Per Nordmann", email="per@example.org")
    second = await world.booking(inmate, other, start_in=2)
    tablet = await world.tablet(inmate, "TAB-BFAIL")
    visitor = await world.visitor(await world.invite_token(first["id"]))
    await wait_until(lambda: tablet.callable(first["id"]), timeout=20, what="window open")
    await tablet.dial(first["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="bridged media")
    assert visitor.pc is not None
    await visitor.pc.close()  # the visitor's media goes; its page stays
    await wait_until(lambda: visitor.end is not None, timeout=60, what="the end at the visitor")
    assert visitor.end is not None and visitor.end.reason.value == "bridge_failed"
    await wait_until(_phase(tablet, "ended"), timeout=20, what="the end at the tablet")
    next_visitor = await world.visitor(await world.invite_token(second["id"]))
    await tablet.dial(second["id"])
    await wait_until(lambda: next_visitor.received.video > 10, timeout=40, what="the next call")
