"""One call read by id, and the unit of work every handler goes through, on both engines.

A refusal inside a unit of work — nothing found (404) or the policy saying no —
leaves every table as it was, the audit chain included, even when it comes
after a write and its audit entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk.domain.access import Action
from kiosk.domain.model import CallState, Category, ControlLevel, Inmate, Role, Route
from kiosk.domain.policy import deny
from kiosk.domain.reasons import EndReason, Reason
from kiosk.signalling.api.base import ApiRequest, OperationTable
from kiosk.signalling.api.work import writing
from kiosk.signalling.schemas import Empty
from kiosk.store import calls as calls_store
from kiosk.store.db import write_transaction
from kiosk.store.facility import get_facility
from kiosk.store.ids import new_id
from kiosk.store.inmates import insert_inmate
from tests.integration.api_support import LiveApi, live_api

pytestmark = pytest.mark.timeout(180)

# A handler that writes, audits, and is then refused by the policy: what a
# unit of work must roll back as a whole.
half_done = OperationTable("test")


@half_done.route(
    "POST",
    "/half-done",
    Action.INMATE_WRITE,
    summary="writes an inmate and its audit entry, then is refused",
    response=Empty,
    refusals=(Reason.CONTACT_NOT_PENDING,),
)
async def write_then_refuse(req: ApiRequest) -> Empty:
    async with writing(req) as work:
        facility = await get_facility(work.conn)
        assert facility is not None
        inmate = Inmate(id=new_id(), facility_id=facility.id, name="Half")
        await insert_inmate(work.conn, inmate, req.now)
        await work.audit("inmate.created", {"inmate": inmate.id})
        work.check(deny(Reason.CONTACT_NOT_PENDING))
    return Empty()


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> AsyncIterator[LiveApi]:
    async with live_api(tmp_path, migrated_url, operations=half_done.operations) as a:
        yield a


async def made(api: LiveApi, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await api.call("POST", path, json=body)
    assert status == 201, answer
    return answer  # type: ignore[no-any-return]


async def refused_unchanged(
    api: LiveApi, method: str, path: str, status: int, code: str, body: Any = None
) -> None:
    before = await api.counts()
    got, answer = await api.call(method, path, json=body)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert await api.counts() == before  # no row, no audit entry


async def a_call(api: LiveApi) -> calls_store.CallRecord:
    """A call as the calls' runner stores it, for an approved contact's booking on a tablet."""
    inmate = await made(api, "/inmates", {"name": "Kari"})
    contact = await made(
        api,
        f"/inmates/{inmate['id']}/contacts",
        {"name": "Emma", "email": "emma@example.org", "category": "personal",
         "relation": "sibling", "cleared_for_visits": True},
    )
    status, _ = await api.call("POST", f"/contacts/{contact['id']}/email-confirmation")
    assert status == 200
    await made(api, f"/contacts/{contact['id']}/decision", {"outcome": "approve"})
    start = api.server.context.clock() + timedelta(hours=1)
    booking = await made(
        api,
        "/bookings",
        {
            "inmate_id": inmate["id"],
            "contact_id": contact["id"],
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "location_kind": "cell",
            "location": "c1",
            "initiation": "staff",
        },
    )
    device = await made(api, "/devices", {"serial": f"TAB-{new_id()[:8]}"})
    call = calls_store.CallRecord(
        id=new_id(),
        booking_id=booking["id"],
        device_id=device["id"],
        inmate_id=inmate["id"],
        contact_id=contact["id"],
        category=Category.PERSONAL,
        route=Route.P2P,
        control=ControlLevel.NONE,
        state=CallState.READY,
        not_before=start,
        not_after=start + timedelta(minutes=30),
        created_at=datetime.now(UTC),
    )
    async with write_transaction(api.server.context.engine) as conn:
        await calls_store.insert_call(conn, call)
    return call


async def test_a_call_is_read_by_id_by_every_role_that_lists_calls(api: LiveApi) -> None:
    call = await a_call(api)
    for role in Role:
        status, got = await api.call("GET", f"/calls/{call.id}", role=role)
        assert status == 200, got
        assert (got["id"], got["state"], got["route"], got["end_reason"]) == (
            call.id,
            "ready",
            "p2p",
            None,
        )
        _, listed = await api.call("GET", "/calls", role=role)
        assert [c for c in listed["items"] if c["id"] == call.id] == [got]  # one row, one body


async def test_an_ended_call_reads_with_how_it_ended(api: LiveApi) -> None:
    call = await a_call(api)
    ended = call.not_before + timedelta(minutes=12)
    async with write_transaction(api.server.context.engine) as conn:
        await calls_store.end_call(conn, call.id, EndReason.ENDED_BY_STAFF, ended, 540)
    status, got = await api.call("GET", f"/calls/{call.id}", role=Role.OFFICER)
    assert status == 200, got
    assert (got["state"], got["end_reason"], got["connected_seconds"]) == (
        "ended",
        "ended_by_staff",
        540,
    )
    assert datetime.fromisoformat(got["ended_at"]) == ended


async def test_no_such_call_is_404_not_found(api: LiveApi) -> None:
    await refused_unchanged(api, "GET", "/calls/no-such-call", 404, "not_found")
    status, answer = await api.call("GET", "/calls/no-such-call", role=None)
    assert (status, answer["error"]["code"]) == (401, "not_authenticated")


async def test_nothing_found_is_404_and_writes_nothing(api: LiveApi) -> None:
    for method, path, body, code in (
        ("POST", "/contacts/nobody/email-confirmation", None, "not_found"),
        ("POST", "/contacts/nobody/application", None, "not_found"),
        ("POST", "/contacts/nobody/appeals", {"by": "inmate", "text": "why"}, "not_found"),
        ("POST", "/appeals/nothing/decision", {"result": "upheld"}, "not_found"),
        ("PATCH", "/inmates/nobody", {"name": "X"}, "not_found"),
        ("PUT", "/devices/nothing/assignment", {"inmate_id": None}, "not_found"),
        ("POST", "/bookings/nothing/cancel", None, "booking_not_found"),
        ("POST", "/bookings/nothing/invites", None, "not_found"),
        ("DELETE", "/facility/restrictions/nothing", None, "not_found"),
    ):
        await refused_unchanged(api, method, path, 404, code, body)


async def test_a_policy_refusal_leaves_the_contact_and_the_chain_as_they_were(
    api: LiveApi,
) -> None:
    inmate = await made(api, "/inmates", {"name": "Kari"})
    contact = await made(
        api,
        f"/inmates/{inmate['id']}/contacts",
        {"name": "Jonas", "email": "jonas@example.org", "category": "personal",
         "relation": "friend"},
    )
    # R3: a contact not cleared for visits confirms nothing by e-mail; R4 comes first.
    path = f"/contacts/{contact['id']}/email-confirmation"
    await refused_unchanged(api, "POST", path, 409, "contact_not_pending")
    await refused_unchanged(
        api, "POST", f"/contacts/{contact['id']}/decision", 409, "application_missing",
        {"outcome": "approve"},
    )
    _, now = await api.call("GET", f"/contacts/{contact['id']}")
    assert now == contact


async def test_a_refusal_after_a_write_rolls_back_the_write_and_its_audit_entry(
    api: LiveApi,
) -> None:
    await refused_unchanged(api, "POST", "/half-done", 409, "contact_not_pending")
    # The chain goes on from where it was: the next write links to the last kept entry.
    before = (await api.counts())["audit_entries"]
    await made(api, "/inmates", {"name": "Whole"})
    assert (await api.counts())["audit_entries"] == before + 1
    _, inmates = await api.call("GET", "/inmates")
    assert [i["name"] for i in inmates["items"]] == ["Whole"]
    status, verified = await api.call("GET", "/audit/verify")
    assert status == 200 and verified["ok"], verified
