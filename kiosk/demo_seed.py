"""The demo facility, filled through the staff API itself, so every rule applies to
the demo data as to real data: inmates (one on remand, one minor), contacts of
every category with decisions, controlled ones among them, and bookings over
the rest of today, some starting now so that a call can be made at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp


class DemoError(Exception):
    """The demo could not be set up; the message says why, in one line."""


class ApiClient:
    def __init__(self, http: aiohttp.ClientSession, api_url: str, token: str) -> None:
        self.http, self.api_url = http, api_url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def __call__(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(
            method, self.api_url + path, json=body, headers=self.headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 300:
                raise DemoError(f"{method} {path}: {resp.status} {data}")
            return data


def _contact(name: str, email: str, category: str, relation: str) -> dict[str, Any]:
    return {
        "name": name,
        "email": email,
        "category": category,
        "relation": relation,
        "cleared_for_visits": True,
    }


# (inmate, contact, decision) — the decision: outcome, control, grounds; None: left pending.
INMATES: list[dict[str, Any]] = [
    {"name": "Kari Larsen", "remand": False, "minor": False},
    {"name": "Ola Nordmann", "remand": True, "minor": False},  # R11
    {"name": "Per Hansen", "remand": False, "minor": True},
]
CONTACTS: list[tuple[int, dict[str, Any], tuple[str, str, list[str]] | None]] = [
    (0, _contact("Emma Larsen", "emma@example.org", "personal", "child"), ("approve", "none", [])),
    (
        0,
        _contact("Jonas Berg", "jonas@example.org", "personal", "partner"),
        ("approve", "sight_and_hearing", ["domestic_violence"]),
    ),
    (
        0,
        _contact("Advokat Nilsen", "nilsen@law.example.org", "defence_counsel", "professional"),
        ("approve", "none", []),
    ),
    (
        0,
        _contact("Oslo tingrett", "post@court.example.org", "court", "professional"),
        ("approve", "none", []),
    ),
    (
        0,
        _contact("Konfliktrådet", "post@mediation.example.org", "official", "professional"),
        ("approve", "hearing", ["other"]),
    ),
    (0, _contact("Lise Dahl", "lise@example.org", "personal", "friend"), None),
    (0, _contact("Tor Vik", "tor@example.org", "personal", "friend"), ("refuse", "none", [])),
    (
        1,
        _contact("Anne Nordmann", "anne@example.org", "personal", "parent"),
        ("approve", "sight", ["witness_tampering"]),
    ),
    (
        1,
        _contact("Advokat Holm", "holm@law.example.org", "defence_counsel", "professional"),
        ("approve", "none", []),
    ),
    (
        1,
        _contact("Politiet Øst", "post@police.example.org", "police", "professional"),
        ("approve", "none", []),
    ),
    (2, _contact("Mari Hansen", "mari@example.org", "personal", "parent"), ("approve", "none", [])),
]


def _iso(at: datetime) -> str:
    return at.isoformat()


async def seed(api_url: str, token: str, now: datetime) -> dict[str, Any]:
    """The demo facility, through the staff API with the admin token."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        call = ApiClient(http, api_url, token)
        await call("PATCH", "/facility", {"name": "Romerike prison (demo)"})
        inmates = [await call("POST", "/inmates", inmate) for inmate in INMATES]
        contacts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for index, proposal, decision in CONTACTS:
            inmate = inmates[index]
            contact = await call("POST", f"/inmates/{inmate['id']}/contacts", proposal)
            await call("POST", f"/contacts/{contact['id']}/email-confirmation")  # R3
            if decision is not None:
                outcome, control, grounds = decision
                contact = await call(
                    "POST",
                    f"/contacts/{contact['id']}/decision",
                    {"outcome": outcome, "control": control, "grounds": grounds},
                )
            contacts.append((inmate, contact))

        # Bookings: each inmate's first approved contact now (callable at once),
        # the others one an hour after another.
        # Seeding took a moment: the windows start a few seconds from the real now.
        now = datetime.now(UTC)
        start = now + timedelta(seconds=5)
        bookable = [(i, c) for i, c in contacts if c["status"] == "approved"]
        bookings = []
        per_inmate: dict[str, int] = {}
        for inmate, contact in bookable:
            n = per_inmate[inmate["id"]] = per_inmate.get(inmate["id"], -1) + 1
            slot = start + timedelta(hours=n)
            minutes = 30 if contact["category"] == "personal" else 45
            body: dict[str, Any] = {
                "inmate_id": inmate["id"],
                "contact_id": contact["id"],
                "start": _iso(slot),
                "end": _iso(slot + timedelta(minutes=minutes)),
                "location_kind": "cell",
                "location": f"cell-{inmates.index(inmate) + 101}",
                "initiation": "staff",
                # The demo makes the links itself, to list them in demo.json (API.md).
                "send_invite": False,
            }
            if inmate["remand"]:  # R11
                body["police_clearance"] = {
                    "cleared_by": "Politiadvokat (demo)",
                    "cleared_at": _iso(now - timedelta(minutes=10)),
                }
            bookings.append(await call("POST", "/bookings", body))
        categories = {c["id"]: c["category"] for _, c in contacts}
        return {
            "inmates": [{"id": i["id"], "name": i["name"]} for i in inmates],
            "bookings": [
                {
                    "id": b["id"],
                    "inmate_id": b["inmate_id"],
                    "contact_id": b["contact_id"],
                    "start": b["start"],
                    "end": b["end"],
                    "control": b["control"],
                    "category": categories[b["contact_id"]],
                }
                for b in bookings
            ],
        }
