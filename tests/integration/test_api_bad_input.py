"""Bad input gets a 4xx with a reason code and writes nothing (issue 2, "Done means").

Runs on SQLite and PostgreSQL: every refused request leaves every table,
the audit chain included, exactly as it was.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk.domain.model import Role
from tests.integration.api_support import LiveApi, live_api

pytestmark = pytest.mark.timeout(180)

SQL_NAMES = [
    "Robert'); DROP TABLE inmates;--",
    'x" OR "1"="1',
    "%_\\; SELECT * FROM staff; --",
    "Ærlig Øystein Åsen ☃",
]


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> Any:
    async with live_api(tmp_path, migrated_url) as a:
        yield a


async def approved_contact(api: LiveApi, **inmate: Any) -> tuple[dict, dict]:
    status, person = await api.call("POST", "/inmates", json={"name": "In Mate", **inmate})
    assert status == 201
    status, contact = await api.call(
        "POST",
        f"/inmates/{person['id']}/contacts",
        json={
            "name": "Kontakt",
            "email": "k@example.org",
            "category": "personal",
            "relation": "sibling",
            "cleared_for_visits": True,
        },
    )
    assert status == 201
    assert (await api.call("POST", f"/contacts/{contact['id']}/email-confirmation"))[0] == 200
    status, contact = await api.call(
        "POST", f"/contacts/{contact['id']}/decision", json={"outcome": "approve"}
    )
    assert status == 201, contact
    return person, contact


def booking(person: dict, contact: dict, start: datetime, minutes: int = 30) -> dict[str, Any]:
    return {
        "inmate_id": person["id"],
        "contact_id": contact["id"],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "location_kind": "cell",
        "location": "cell-1",
        "initiation": "staff",
    }


async def refused(
    api: LiveApi,
    method: str,
    path: str,
    status: int,
    code: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    before = await api.counts()
    if raw is not None:
        got, answer = await api.call(
            method, path, data=raw, headers={"Content-Type": "application/json"}
        )
    else:
        got, answer = await api.call(method, path, json=body)
    assert got == status, answer
    assert answer["error"]["code"] == code
    if field is not None:
        assert field in answer["error"]["message"], answer
    assert "Traceback" not in json.dumps(answer)
    assert await api.counts() == before, "a refused request wrote something"
    return answer


async def test_oversized_body_is_refused_before_it_is_read(api: LiveApi) -> None:
    limit = api.server.context.settings.server.max_body_bytes
    big = json.dumps({"name": "x" * (limit + 1)}).encode()
    await refused(api, "POST", "/inmates", 413, "payload_too_large", raw=big)


async def test_oversized_chunked_body_is_refused(api: LiveApi) -> None:
    """Without Content-Length the limit holds while reading."""
    limit = api.server.context.settings.server.max_body_bytes

    async def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(limit // 1000 + 2):
            yield b"y" * 1000
        yield b'"}'

    before = await api.counts()
    async with api.http.post(
        api.url + "/inmates",
        data=chunks(),
        headers={"Authorization": f"Bearer {api.tokens[Role.ADMIN]}"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert await api.counts() == before


WRONG_BODIES = [
    ({"name": 42}, "body.name"),
    ({"name": "A", "remand": "yes"}, "body.remand"),
    ({"name": "A", "remand": 1}, "body.remand"),
    ({"name": ["A"]}, "body.name"),
    ({"name": "A", "admin": True}, "body.admin"),  # unknown field
    ({"name": ""}, "body.name"),
    ({"name": "x" * 201}, "body.name"),
    ({}, "body.name"),
    ([], "body"),
]


async def test_wrong_types_unknown_fields_and_long_strings(api: LiveApi) -> None:
    for body, field in WRONG_BODIES:
        await refused(api, "POST", "/inmates", 400, "invalid_request", body=body, field=field)


async def test_malformed_json_is_invalid_request(api: LiveApi) -> None:
    for raw in (b"", b"{", b"\xff\xfe", b'{"name": "A"} trailing', b"null"):
        await refused(api, "POST", "/inmates", 400, "invalid_request", raw=raw)


async def test_booking_with_bad_times(api: LiveApi) -> None:
    person, contact = await approved_contact(api)
    start = datetime.now(UTC) + timedelta(days=1)
    # End before start: the rule about windows (R10).
    body = booking(person, contact, start)
    body["end"] = (start - timedelta(minutes=5)).isoformat()
    await refused(api, "POST", "/bookings", 422, "window_invalid", body=body)
    # A time without a zone is refused by the schema, naming the field.
    body = booking(person, contact, start)
    body["start"] = "2030-01-01T10:00:00"
    await refused(api, "POST", "/bookings", 400, "invalid_request", body=body, field="body.start")
    # Out of range after conversion to UTC.
    body = booking(person, contact, start)
    body["end"] = "9999-12-31T23:59:59-12:00"
    await refused(api, "POST", "/bookings", 400, "invalid_request", body=body, field="body.end")
    # The last week datetime can hold: its week would end past datetime's range.
    body = booking(person, contact, datetime(9999, 12, 31, tzinfo=UTC))
    await refused(api, "POST", "/bookings", 400, "invalid_request", body=body, field="body.start")
    # Unknown ids are 404, and nothing is written.
    body = booking(person, contact, start)
    body["contact_id"] = "00000000-0000-0000-0000-000000000000"
    await refused(api, "POST", "/bookings", 404, "not_found", body=body)


async def test_booking_inside_a_closure_is_refused(api: LiveApi) -> None:
    """R15: a window inside a closed period, unless staff override."""
    person, contact = await approved_contact(api)
    start = datetime.now(UTC) + timedelta(days=2)
    status, _ = await api.call(
        "POST",
        "/facility/closures",
        json={
            "start": (start - timedelta(days=1)).isoformat(),
            "end": (start + timedelta(days=1)).isoformat(),
            "note": "week 29",
        },
    )
    assert status == 201
    body = booking(person, contact, start)
    await refused(api, "POST", "/bookings", 409, "facility_closed", body=body)
    # With the override it goes through, and writes the booking and its audit entry, and
    # one for the invite that went with it (issue 16).
    before = await api.counts()
    status, made = await api.call("POST", "/bookings", json={**body, "override_closure": True})
    assert status == 201, made
    assert made["invite_sent"] is True
    after = await api.counts()
    assert after["bookings"] == before["bookings"] + 1
    assert after["audit_entries"] == before["audit_entries"] + 2


async def test_closure_and_restriction_windows(api: LiveApi) -> None:
    now = datetime.now(UTC)
    window = {"start": now.isoformat(), "end": (now - timedelta(hours=1)).isoformat()}
    await refused(api, "POST", "/facility/closures", 422, "window_invalid", body=window)
    await refused(
        api,
        "POST",
        "/facility/restrictions",
        400,
        "invalid_request",
        body={**window, "end": (now + timedelta(hours=1)).isoformat(), "kind": "limit"},
        field="body.limit_minutes",
    )


async def test_sql_metacharacters_in_names_are_stored_verbatim(api: LiveApi) -> None:
    for name in SQL_NAMES:
        await _stored_verbatim(api, name)


async def _stored_verbatim(api: LiveApi, name: str) -> None:
    before = await api.counts()
    status, person = await api.call("POST", "/inmates", json={"name": name})
    assert status == 201
    assert person["name"] == name
    status, contact = await api.call(
        "POST",
        f"/inmates/{person['id']}/contacts",
        json={"name": name, "email": "a@b.c", "category": "official", "relation": "professional"},
    )
    assert status == 201 and contact["name"] == name
    status, again = await api.call("GET", f"/inmates/{person['id']}")
    assert status == 200 and again["name"] == name
    after = await api.counts()
    assert after["inmates"] == before["inmates"] + 1
    assert after["contacts"] == before["contacts"] + 1
    assert after["staff"] == before["staff"]  # nothing dropped, nothing else touched


UNKNOWN = [
    ("GET", "/inmates/does-not-exist"),
    ("GET", "/contacts/00000000-0000-0000-0000-000000000000"),
    ("PATCH", "/contacts/x' OR '1'='1"),
    ("GET", "/inmates/" + "9" * 200),
    ("POST", "/devices/nope/revoke"),
    ("GET", "/appeals/nope"),
    ("DELETE", "/facility/closures/nope"),
]


async def test_unknown_ids_are_not_found(api: LiveApi) -> None:
    for method, path in UNKNOWN:
        body = {} if method == "PATCH" else None
        await refused(api, method, path, 404, "not_found", body=body)


async def test_unknown_booking_is_booking_not_found(api: LiveApi) -> None:
    await refused(api, "POST", "/bookings/nope/cancel", 404, "booking_not_found")


async def test_query_parameters_are_validated(api: LiveApi) -> None:
    for query in ("day=tomorrow", "state=lost", "limit=0", "limit=abc", "colour=red"):
        status, answer = await api.call("GET", "/bookings?" + query)
        assert status == 400, query
        assert answer["error"]["code"] == "invalid_request"
        assert answer["error"]["message"].startswith("query."), answer


async def test_policy_refusals_write_nothing(api: LiveApi) -> None:
    """R13 and R2 refusals: the reason code, and no row or audit entry."""
    status, person = await api.call("POST", "/inmates", json={"name": "P"})
    status, lawyer = await api.call(
        "POST",
        f"/inmates/{person['id']}/contacts",
        json={
            "name": "Advokat",
            "email": "adv@example.org",
            "category": "defence_counsel",
            "relation": "professional",
            "cleared_for_visits": True,
        },
    )
    await api.call("POST", f"/contacts/{lawyer['id']}/email-confirmation")
    await refused(
        api,
        "POST",
        f"/contacts/{lawyer['id']}/decision",
        422,
        "privileged_no_control",
        body={"outcome": "approve", "control": "hearing", "grounds": ["threats"]},
    )
    status, _ = await api.call("PATCH", "/facility", json={"contact_limit": 0})
    assert status == 200
    await refused(
        api,
        "POST",
        f"/inmates/{person['id']}/contacts",
        409,
        "contact_limit_reached",
        body={"name": "F", "email": "f@example.org", "category": "personal", "relation": "friend"},
    )


async def test_concurrent_proposals_respect_the_contact_limit(api: LiveApi) -> None:
    """R2 under concurrency: the inmate's row is locked while its contacts are counted."""
    status, _ = await api.call("PATCH", "/facility", json={"contact_limit": 1})
    status, person = await api.call("POST", "/inmates", json={"name": "Racer"})
    assert status == 201
    answers = await asyncio.gather(
        *(
            api.call(
                "POST",
                f"/inmates/{person['id']}/contacts",
                json={
                    "name": f"F{n}",
                    "email": f"f{n}@example.org",
                    "category": "personal",
                    "relation": "friend",
                },
            )
            for n in range(6)
        )
    )
    assert sorted(status for status, _ in answers) == [201] + [409] * 5
    assert {a["error"]["code"] for status, a in answers if status == 409} == {
        "contact_limit_reached"
    }


# The in-process server's log renders the bug's traceback for a terminal, on the loop (tests
# only: a deployed server logs JSON).
@pytest.mark.blocks_loop
async def test_a_bug_is_a_500_without_a_trace(tmp_path: Path, migrated_url: str) -> None:
    from kiosk.signalling import schemas
    from kiosk.signalling.api.base import OperationTable

    table = OperationTable("test")

    @table.route("GET", "/broken", None, summary="always fails", response=schemas.Empty)
    async def broken(req: Any) -> Any:
        raise RuntimeError("secret internals")

    async with live_api(tmp_path, migrated_url, operations=table.operations) as api:
        status, answer = await api.call("GET", "/broken")
    assert status == 500
    assert answer["error"]["code"] == "internal_error"
    assert "secret internals" not in json.dumps(answer)


async def test_nul_characters_are_refused_everywhere(api: LiveApi) -> None:
    """PostgreSQL cannot store NUL in text: refused up front, on both engines alike."""
    await refused(api, "POST", "/inmates", 400, "invalid_request", body={"name": "a\u0000b"})
    await refused(api, "GET", "/inmates/a%00b", 404, "not_found")
    before = await api.counts()
    status, answer = await api.call("GET", "/bookings", params={"inmate_id": "a\x00b"})
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    status, answer = await api.call(
        "POST", "/login", role=None, json={"username": "x\u0000", "password": "y"}
    )
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    assert await api.counts() == before
