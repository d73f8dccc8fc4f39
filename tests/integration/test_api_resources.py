"""The staff API's resources against a live server: each write with its audit entry."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from kiosk.domain.model import Role
from kiosk.store import schema as t
from tests.harness import set_password_by_link
from tests.integration.api_support import LiveApi, admin_config, kiosk_admin, live_api

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def api(tmp_path: Path) -> Any:
    async with live_api(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}") as a:
        yield a


async def ok(api: LiveApi, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    """A write that succeeds adds exactly one audit entry, in the same transaction; a
    booking adds a second when its invite goes out with it (issue 16: ``invite.sent``)."""
    before = (await api.counts())["audit_entries"]
    got, answer = await api.call(method, path, json=body)
    assert got == status, answer
    if method != "GET":
        mailed = path == "/bookings" and answer["invite_sent"]
        assert (await api.counts())["audit_entries"] == before + (2 if mailed else 1)
    return answer


async def no(
    api: LiveApi, method: str, path: str, status: int, code: str, body: Any = None
) -> None:
    before = await api.counts()
    got, answer = await api.call(method, path, json=body)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert await api.counts() == before


def contact_body(name: str, category: str = "personal", **extra: Any) -> dict[str, Any]:
    relation = "professional" if category != "personal" else "sibling"
    return {
        "name": name,
        "email": f"{name.lower()}@example.org",
        "category": category,
        "relation": relation,
        **extra,
    }


async def approved(api: LiveApi, inmate_id: str, name: str, **decision: Any) -> dict[str, Any]:
    c = await ok(
        api,
        "POST",
        f"/inmates/{inmate_id}/contacts",
        contact_body(name, cleared_for_visits=True),
        201,
    )
    await ok(api, "POST", f"/contacts/{c['id']}/email-confirmation")
    return await ok(
        api, "POST", f"/contacts/{c['id']}/decision", {"outcome": "approve", **decision}, 201
    )


def window(start: datetime, minutes: int = 30) -> dict[str, str]:
    return {"start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat()}


async def test_contact_from_proposal_to_appeal(api: LiveApi) -> None:
    inmate = await ok(api, "POST", "/inmates", {"name": "Kari"}, 201)
    # R4: not cleared for visits -> the application comes first.
    c = await ok(api, "POST", f"/inmates/{inmate['id']}/contacts", contact_body("Jonas"), 201)
    assert c["status"] == "awaiting_application"
    await no(
        api,
        "POST",
        f"/contacts/{c['id']}/decision",
        409,
        "application_missing",
        {"outcome": "approve"},
    )
    await no(api, "POST", f"/contacts/{c['id']}/email-confirmation", 409, "contact_not_pending")
    c = await ok(api, "POST", f"/contacts/{c['id']}/application")
    assert c["status"] == "awaiting_assessment" and c["application_received"]
    # R7: control needs grounds.
    await no(
        api,
        "POST",
        f"/contacts/{c['id']}/decision",
        422,
        "grounds_required",
        {"outcome": "approve", "control": "sight"},
    )
    c = await ok(
        api,
        "POST",
        f"/contacts/{c['id']}/decision",
        {"outcome": "approve", "control": "sight", "grounds": ["threats"]},
        201,
    )
    assert (c["status"], c["control"], c["decision"]["grounds"]) == (
        "approved",
        "sight",
        ["threats"],
    )
    # R8: a decision in force changes only through an appeal.
    await no(
        api,
        "POST",
        f"/contacts/{c['id']}/decision",
        409,
        "contact_not_pending",
        {"outcome": "approve"},
    )
    appeal = await ok(
        api,
        "POST",
        f"/contacts/{c['id']}/appeals",
        {"by": "inmate", "text": "Sight is not needed."},
        201,
    )
    assert appeal["state"] == "pending" and appeal["decision_id"] == c["decision"]["id"]
    await no(
        api,
        "POST",
        f"/contacts/{c['id']}/appeals",
        409,
        "conflict",
        {"by": "contact", "text": "Me too."},
    )
    await no(
        api,
        "POST",
        f"/appeals/{appeal['id']}/decision",
        400,
        "invalid_request",
        {"result": "changed"},
    )
    before = (await api.counts())["audit_entries"]
    status, decided = await api.call(
        "POST",
        f"/appeals/{appeal['id']}/decision",
        json={"result": "changed", "decision": {"outcome": "approve", "control": "none"}},
    )
    assert status == 200 and decided["state"] == "changed"
    # The new decision and the appeal's outcome: two entries, one transaction.
    assert (await api.counts())["audit_entries"] == before + 2
    status, c = await api.call("GET", f"/contacts/{c['id']}")
    assert c["control"] == "none" and c["decision"]["id"] == decided["result_decision_id"]
    await no(
        api,
        "POST",
        f"/appeals/{appeal['id']}/decision",
        409,
        "appeal_not_pending",
        {"result": "upheld"},
    )
    status, listed = await api.call("GET", f"/contacts/{c['id']}/appeals")
    assert [a["id"] for a in listed["items"]] == [appeal["id"]]


async def test_privileged_contacts_are_never_controlled_and_do_not_count(api: LiveApi) -> None:
    await ok(api, "PATCH", "/facility", {"contact_limit": 1})
    inmate = await ok(api, "POST", "/inmates", {"name": "Ola", "remand": True}, 201)
    await approved(api, inmate["id"], "Friend")
    # R2: the one personal contact is used up ...
    await no(
        api,
        "POST",
        f"/inmates/{inmate['id']}/contacts",
        409,
        "contact_limit_reached",
        contact_body("Second"),
    )
    # ... but counsel does not count, and can never be controlled (R13).
    lawyer = await ok(
        api,
        "POST",
        f"/inmates/{inmate['id']}/contacts",
        contact_body("Advokat", "defence_counsel", cleared_for_visits=True),
        201,
    )
    await ok(api, "POST", f"/contacts/{lawyer['id']}/email-confirmation")
    for control in ("sight", "hearing", "sight_and_hearing"):
        await no(
            api,
            "POST",
            f"/contacts/{lawyer['id']}/decision",
            422,
            "privileged_no_control",
            {"outcome": "approve", "control": control, "grounds": ["threats"]},
        )
    lawyer = await ok(
        api, "POST", f"/contacts/{lawyer['id']}/decision", {"outcome": "approve"}, 201
    )
    assert lawyer["control"] == "none"


async def test_breaches_show_on_the_contact(api: LiveApi) -> None:
    """R14: a breach recorded against the contact is visible at later assessments."""
    inmate = await ok(api, "POST", "/inmates", {"name": "Per"}, 201)
    c = await approved(api, inmate["id"], "Mari")
    async with api.server.context.engine.begin() as conn:
        await conn.execute(
            insert(t.breaches).values(
                id="b1",
                inmate_id=inmate["id"],
                contact_id=c["id"],
                call_id="call-1",
                recorded_by=api.staff_ids[Role.OFFICER],
                recorded_at=datetime.now(UTC),
                note="threat",
            )
        )
        await conn.execute(t.contacts.update().values(breaches=1))
    _status, c = await api.call("GET", f"/contacts/{c['id']}")
    assert c["breaches"] == 1
    assert [(b["call_id"], b["note"]) for b in c["breach_records"]] == [("call-1", "threat")]


async def test_bookings_clearance_cancel_and_listing(api: LiveApi) -> None:
    inmate = await ok(api, "POST", "/inmates", {"name": "Ola", "remand": True}, 201)
    c = await approved(api, inmate["id"], "Anne", control="sight", grounds=["witness_tampering"])
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    body = {
        "inmate_id": inmate["id"],
        "contact_id": c["id"],
        **window(start),
        "location_kind": "room",
        "location": "visit-room-1",
        "initiation": "inmate",
    }
    b = await ok(api, "POST", "/bookings", body, 201)
    assert (b["state"], b["control"], b["police_clearance"]) == ("booked", "sight", None)
    # R9: the room is taken in that slot.
    other = await approved(api, inmate["id"], "Nils")
    await no(api, "POST", "/bookings", 409, "capacity_room", {**body, "contact_id": other["id"]})
    # R11: the police clearance is added later.
    cleared_at = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    b = await ok(
        api,
        "PUT",
        f"/bookings/{b['id']}/police-clearance",
        {"cleared_by": "Politiadvokat Berg", "cleared_at": cleared_at.isoformat()},
    )
    assert b["police_clearance"]["cleared_by"] == "Politiadvokat Berg"
    # Lists: by day in the facility's zone, by inmate, by state.
    day = start.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Oslo")).date().isoformat()
    for query, expected in (
        (f"day={day}", [b["id"]]),
        ("day=2001-01-01", []),
        (f"inmate_id={inmate['id']}", [b["id"]]),
        ("state=booked", [b["id"]]),
        ("state=cancelled", []),
    ):
        _status, listed = await api.call("GET", "/bookings?" + query)
        assert [x["id"] for x in listed["items"]] == expected, query
    b = await ok(api, "POST", f"/bookings/{b['id']}/cancel")
    assert b["state"] == "cancelled"
    await no(api, "POST", f"/bookings/{b['id']}/cancel", 409, "booking_not_active")
    await no(
        api,
        "PUT",
        f"/bookings/{b['id']}/police-clearance",
        409,
        "booking_not_active",
        {"cleared_by": "X", "cleared_at": cleared_at.isoformat()},
    )


async def test_bookings_are_listed_over_a_span_of_time_across_midnight(api: LiveApi) -> None:
    """The officer's board asks for the hours around now, whatever the calendar day."""
    from urllib.parse import quote
    from zoneinfo import ZoneInfo

    inmate = await ok(api, "POST", "/inmates", {"name": "Nils"}, 201)
    c = await approved(api, inmate["id"], "Nina")
    zone = ZoneInfo("Europe/Oslo")
    day = (datetime.now(UTC).astimezone(zone) + timedelta(days=3)).date()
    late = datetime.combine(day, time(23, 30), zone)
    body = {"inmate_id": inmate["id"], "contact_id": c["id"], "location_kind": "cell",
            "location": "C-3", "initiation": "staff"}
    before = await ok(api, "POST", "/bookings", {**body, **window(late, 20)}, 201)
    after = await ok(api, "POST", "/bookings", {**body, **window(late + timedelta(hours=1), 20)},
                     201)

    def span(start: datetime, end: datetime) -> str:
        return f"ends_after={quote(start.isoformat())}&starts_before={quote(end.isoformat())}"

    for query, expected in (
        (span(late - timedelta(hours=1), late + timedelta(hours=2)), [before["id"], after["id"]]),
        (span(late + timedelta(minutes=20), late + timedelta(hours=2)), [after["id"]]),
        (f"day={day.isoformat()}", [before["id"]]),  # the calendar day stops at midnight
    ):
        _status, listed = await api.call("GET", "/bookings?" + query)
        assert [x["id"] for x in listed["items"]] == expected, query
    # Each filter narrows; either end of the span may be left open.
    for query, expected in (
        (f"ends_after={quote((late + timedelta(minutes=20)).isoformat())}", [after["id"]]),
        (f"starts_before={quote(late.isoformat())}&day={day.isoformat()}", []),
        (f"{span(late - timedelta(hours=1), late + timedelta(hours=2))}&day={day}", [before["id"]]),
    ):
        _status, listed = await api.call("GET", "/bookings?" + query)
        assert [x["id"] for x in listed["items"]] == expected, query


async def test_a_suspension_holds_bookings_and_its_removal_releases_them(api: LiveApi) -> None:
    """R16 (kiosk/signalling/api/facility.py): held, then booked again."""
    inmate = await ok(api, "POST", "/inmates", {"name": "Kari"}, 201)
    c = await approved(api, inmate["id"], "Emma")
    base = datetime.now(UTC) + timedelta(days=1)
    body = {
        "inmate_id": inmate["id"],
        "contact_id": c["id"],
        "location_kind": "cell",
        "location": "cell-7",
        "initiation": "staff",
    }
    inside = await ok(api, "POST", "/bookings", {**body, **window(base)}, 201)
    outside = await ok(api, "POST", "/bookings", {**body, **window(base + timedelta(hours=5))}, 201)
    restriction = await ok(
        api,
        "POST",
        "/facility/restrictions",
        {
            "start": (base - timedelta(hours=1)).isoformat(),
            "end": (base + timedelta(hours=2)).isoformat(),
            "kind": "suspend",
            "note": "outbreak",
        },
        201,
    )
    assert restriction["held_bookings"] == [inside["id"]]
    _, got = await api.call("GET", f"/bookings/{inside['id']}")
    assert got["state"] == "held"
    _, got = await api.call("GET", f"/bookings/{outside['id']}")
    assert got["state"] == "booked"
    # New bookings in the period are refused.
    await no(
        api,
        "POST",
        "/bookings",
        409,
        "facility_restricted",
        {**body, **window(base + timedelta(minutes=40))},
    )
    rid = restriction["restriction"]["id"]
    released = await ok(api, "DELETE", f"/facility/restrictions/{rid}")
    assert released["released_bookings"] == [inside["id"]]
    _status, got = await api.call("GET", f"/bookings/{inside['id']}")
    assert got["state"] == "booked"
    await no(api, "DELETE", f"/facility/restrictions/{rid}", 404, "not_found")


async def test_devices_register_assign_revoke(api: LiveApi, tmp_path: Path) -> None:
    inmate = await ok(api, "POST", "/inmates", {"name": "Kari"}, 201)
    d = await ok(
        api,
        "POST",
        "/devices",
        {"serial": "TAB-001", "model": "demo", "certificate_serial": "0A1B"},
        201,
    )
    assert d["certificate_serial"] == "0a1b"
    await no(api, "POST", "/devices", 409, "conflict", {"serial": "TAB-001"})
    d = await ok(api, "PUT", f"/devices/{d['id']}/assignment", {"inmate_id": inmate["id"]})
    assert d["inmate_id"] == inmate["id"]
    d = await ok(api, "POST", f"/devices/{d['id']}/revoke")
    assert d["revoked"]
    async with api.server.context.engine.connect() as conn:
        serials = (await conn.execute(select(t.revoked_certificates.c.serial))).scalars().all()
    assert serials == ["0a1b"]
    await no(api, "POST", f"/devices/{d['id']}/revoke", 409, "device_revoked")
    await no(
        api, "PUT", f"/devices/{d['id']}/assignment", 409, "device_revoked", {"inmate_id": None}
    )

    # The same from the command line, by hardware serial, while the server runs.
    d2 = await ok(api, "POST", "/devices", {"serial": "TAB-002", "certificate_serial": "ff"}, 201)
    config = admin_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}")
    for args, code in ((["revoke", "TAB-002"], 0), (["revoke", "TAB-002"], 1), (["list"], 0)):
        got_code, out, err = await kiosk_admin(config, "device", *args)
        assert got_code == code, (args, err)
    assert "TAB-002" in out and "revoked" in out
    _, got = await api.call("GET", f"/devices/{d2['id']}")
    assert got["revoked"]
    # The server's next write still links to the chain the command extended.
    await ok(api, "POST", "/inmates", {"name": "After"}, 201)
    _status, verified = await api.call("GET", "/audit/verify")
    assert verified["ok"], verified


async def test_audit_reads_from_a_sequence_number(api: LiveApi) -> None:
    await ok(api, "POST", "/inmates", {"name": "Kari"}, 201)
    _, page = await api.call("GET", "/audit?after_seq=0&limit=2")
    assert [e["seq"] for e in page["items"]] == [1, 2]
    _, rest = await api.call("GET", "/audit?after_seq=2&limit=1000")
    last = rest["items"][-1]
    assert last["action"] == "inmate.created" and last["actor"].startswith("staff:")
    assert "Kari" not in str(rest["items"])  # ids in the chain, never names
    # The names beside the ids are the staff's reading aid, looked up now (issue 16).
    assert "Kari" in rest["names"].values()
    assert rest["items"][0]["prev_hash"] == page["items"][-1]["hash"]
    _status, verified = await api.call("GET", "/audit/verify")
    assert verified == {"ok": True, "entries": last["seq"], "first_bad_seq": None, "problem": ""}


async def test_calls_list_live_and_past(api: LiveApi) -> None:
    inmate = await ok(api, "POST", "/inmates", {"name": "Kari"}, 201)
    c = await approved(api, inmate["id"], "Emma")
    start = datetime.now(UTC) + timedelta(hours=1)
    b = await ok(
        api,
        "POST",
        "/bookings",
        {
            "inmate_id": inmate["id"],
            "contact_id": c["id"],
            **window(start),
            "location_kind": "cell",
            "location": "c1",
            "initiation": "staff",
        },
        201,
    )
    d = await ok(api, "POST", "/devices", {"serial": "TAB-9"}, 201)
    now = datetime.now(UTC)
    async with api.server.context.engine.begin() as conn:
        for call_id, ended in (("live-call", None), ("past-call", now)):
            await conn.execute(
                insert(t.calls).values(
                    id=call_id,
                    booking_id=b["id"],
                    device_id=d["id"],
                    inmate_id=inmate["id"],
                    contact_id=c["id"],
                    category="personal",
                    route="p2p",
                    control="none",
                    state="ended" if ended else "connected",
                    not_before=start,
                    not_after=start + timedelta(minutes=30),
                    created_at=now,
                    ended_at=ended,
                    end_reason="hangup" if ended else None,
                )
            )
    for query, expected in (
        ("live=true", {"live-call"}),
        ("live=false", {"past-call"}),
        (f"inmate_id={inmate['id']}", {"live-call", "past-call"}),
        ("inmate_id=nobody", set()),
    ):
        status, listed = await api.call("GET", "/calls?" + query, role=Role.OFFICER)
        assert status == 200
        assert {x["id"] for x in listed["items"]} == expected, query


async def test_revoking_through_the_api_puts_the_serial_on_the_crl(tmp_path: Path) -> None:
    from kiosk.crypto import pki, revocation

    pki.init_ca(tmp_path / "pki")
    async with live_api(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite3'}") as api:
        d = await ok(api, "POST", "/devices", {"serial": "TAB-3", "certificate_serial": "abc"}, 201)
        assert "abc" not in revocation.revoked_serials(tmp_path / "pki")
        await ok(api, "POST", f"/devices/{d['id']}/revoke")
        assert "abc" in revocation.revoked_serials(tmp_path / "pki")


async def test_facility_settings(api: LiveApi) -> None:
    f = await ok(api, "PATCH", "/facility", {"timezone": "UTC", "rooms": ["A", "B"], "tablets": 2})
    assert (f["timezone"], f["rooms"], f["tablets"]) == ("UTC", ["A", "B"], 2)
    await no(api, "PATCH", "/facility", 400, "invalid_request", {"timezone": "Mars/Olympus"})
    await no(api, "PATCH", "/facility", 400, "invalid_request", {"tablets": -1})
    await no(api, "PATCH", "/facility", 400, "invalid_request", {"rooms": "A"})
    closure = await ok(
        api,
        "POST",
        "/facility/closures",
        {**window(datetime.now(UTC) + timedelta(days=30), 60 * 24 * 7), "note": "week 29"},
        201,
    )
    _, f = await api.call("GET", "/facility", role=Role.OFFICER)
    assert [x["id"] for x in f["closures"]] == [closure["id"]]
    await ok(api, "DELETE", f"/facility/closures/{closure['id']}")
    _status, f = await api.call("GET", "/facility")
    assert f["closures"] == []


async def test_admins_manage_staff_accounts(api: LiveApi) -> None:
    new = await ok(
        api,
        "POST",
        "/staff",
        {"username": "o'brien", "display_name": "O'Brien", "role": "officer"},
        201,
    )
    assert (new["role"], new["active"], new["email"]) == ("officer", True, "")
    await no(
        api,
        "POST",
        "/staff",
        409,
        "conflict",
        {"username": "o'brien", "display_name": "X", "role": "admin"},
    )
    # Issue 16: an admin never types another person's password, on adding or changing.
    await no(
        api,
        "POST",
        "/staff",
        400,
        "invalid_request",
        {"username": "short", "display_name": "X", "role": "admin",
         "password": "a very long password"},
    )  # fmt: skip
    await no(
        api, "PATCH", f"/staff/{new['id']}", 400, "invalid_request",
        {"password": "a very long password"},
    )  # fmt: skip
    status, listed = await api.call("GET", "/staff")
    assert "o'brien" in {a["username"] for a in listed["items"]}
    status, _ = await api.call("GET", "/staff", role=Role.VISIT_OFFICE)
    assert status == 403
    status, link = await api.call("POST", f"/staff/{new['id']}/password-link")
    assert status == 201, link
    await set_password_by_link(api.http, link["url"], "a very long password")

    # Logged in, then deactivated: the session and the account stop working at once.
    resp = await api.http.post(
        api.url + "/login", json={"username": "o'brien", "password": "a very long password"}
    )
    assert resp.status == 200
    cookie = resp.cookies["kiosk_session"].value
    changed = await ok(api, "PATCH", f"/staff/{new['id']}", {"active": False})
    assert changed["active"] is False
    resp = await api.http.get(api.url + "/me", headers={"Cookie": f"kiosk_session={cookie}"})
    assert resp.status == 401
    resp = await api.http.post(
        api.url + "/login", json={"username": "o'brien", "password": "a very long password"}
    )
    assert resp.status == 401

    # No admin can demote or deactivate themselves.
    me = api.staff_ids[Role.ADMIN]
    await no(api, "PATCH", f"/staff/{me}", 409, "conflict", {"role": "officer"})
    await no(api, "PATCH", f"/staff/{me}", 409, "conflict", {"active": False})
    await no(api, "PATCH", "/staff/nobody", 404, "not_found", {"display_name": "X"})
