"""The audit log's public API on SQLite and PostgreSQL: checkpoint, proofs, cosignatures.

Without credentials, as a lawyer or a witness uses it: the checkpoint is a
C2SP signed note that opens with the facility's key; inclusion and
consistency proofs served from the stored tree verify against it with the
RFC 9162 algorithms; a witness's cosignature is taken only from a configured
witness and only if it verifies; bad requests get a reason code.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit import merkle
from kiosk.audit.keys import FALLBACK_ORIGIN, load_verify_key
from kiosk.audit.log import read_entries
from kiosk.audit.note import (
    COSIGNATURE_V1,
    ED25519,
    b64decode,
    cosign,
    open_checkpoint,
    parse_note,
    verifier_for,
)
from kiosk.audit.receipt import verify_receipt
from kiosk.domain.model import CallState, Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.signalling import web as pages
from kiosk.store.calls import CallRecord, end_call, insert_call
from kiosk.store.db import write_transaction
from tests.integration.api_support import LiveApi, live_api


async def public(api: LiveApi, method: str, path: str, **kw: Any) -> tuple[int, Any, str]:
    async with api.http.request(method, api.url + path, **kw) as resp:
        text = await resp.text()
        body = await resp.json(content_type=None) if "json" in resp.content_type else None
        return resp.status, body, text


async def checkpoint(api: LiveApi, tmp_path: Path) -> tuple[str, Any]:
    await api.server.context.audit.checkpoint()
    status, _, text = await public(api, "GET", "/audit/checkpoint")
    assert status == 200
    log = verifier_for(FALLBACK_ORIGIN, ED25519, load_verify_key(tmp_path / "pki"))
    return text, open_checkpoint(text, log)[1]


async def add_entries(api: LiveApi, n: int) -> None:
    for i in range(n):
        await api.server.context.audit.append("system", "call.warned", {"call": f"c{i}"})


async def test_the_checkpoint_and_proofs_verify_without_credentials(
    tmp_path: Path, migrated_url: str
) -> None:
    async with live_api(tmp_path, migrated_url) as api:
        _, first = await checkpoint(api, tmp_path)
        async with api.http.get(api.url + "/audit/checkpoint") as resp:
            assert resp.content_type == "text/plain"
        await add_entries(api, 13)
        _, second = await checkpoint(api, tmp_path)
        assert second.size == first.size + 13
        entries = await read_entries(api.server.context.engine, 0, 1000)
        leaves = [e.leaf() for e in entries]
        assert merkle.root_of(leaves[: second.size]) == second.root
        for seq in (1, first.size, first.size + 1, second.size):
            status, body, _ = await public(
                api, "GET", "/audit/proof/inclusion", params={"seq": seq, "size": second.size}
            )
            assert status == 200, body
            path = [b64decode(h, "h") for h in body["hashes"]]
            assert merkle.verify_inclusion(seq - 1, second.size, leaves[seq - 1], path,
                                           second.root)
        status, body, _ = await public(
            api, "GET", "/audit/proof/consistency",
            params={"old": first.size, "new": second.size},
        )
        assert status == 200, body
        path = [b64decode(h, "h") for h in body["hashes"]]
        assert merkle.verify_consistency(first.size, second.size, first.root, second.root, path)


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/audit/proof/inclusion", {"seq": "5", "size": "4"}, 400, "invalid_request"),
        ("/audit/proof/inclusion", {"seq": "0", "size": "4"}, 400, "invalid_request"),
        ("/audit/proof/inclusion", {"seq": "1"}, 400, "invalid_request"),
        ("/audit/proof/inclusion", {"seq": "1", "size": "999999"}, 409, "beyond_log"),
        ("/audit/proof/consistency", {"old": "9", "new": "3"}, 400, "invalid_request"),
        ("/audit/proof/consistency", {"old": "1", "new": "4611686018427387904"}, 409,
         "beyond_log"),
        ("/audit/proof/consistency", {"old": "x", "new": "3"}, 400, "invalid_request"),
    ],
)
async def test_bad_proof_requests_get_a_reason(
    tmp_path: Path, migrated_url: str, path: str, params: dict[str, str], status: int, code: str
) -> None:
    async with live_api(tmp_path, migrated_url) as api:
        got, body, _ = await public(api, "GET", path, params=params)
        assert (got, body["error"]["code"]) == (status, code)


async def test_only_a_configured_witness_can_add_a_verifying_cosignature(
    tmp_path: Path, migrated_url: str
) -> None:
    witness_key = Ed25519PrivateKey.generate()
    witness = verifier_for("witness.example/w1", COSIGNATURE_V1, witness_key.public_key())
    stranger_key = Ed25519PrivateKey.generate()
    async with live_api(tmp_path, migrated_url) as api:
        api.server.context.settings.audit.witnesses = [witness.vkey()]
        text, head = await checkpoint(api, tmp_path)
        body_text = parse_note(text).text

        now = int(api.server.context.clock().timestamp())

        async def post(name: str, key: Ed25519PrivateKey, size: int, when: int = now,
                       over: str = body_text) -> tuple[int, Any]:
            line = cosign(over, name, key, when).line().rstrip("\n")
            got, body, _ = await public(api, "POST", "/audit/cosignatures",
                                        json={"size": size, "signature": line})
            return got, body

        got, body = await post("stranger.example/w", stranger_key, head.size)
        assert (got, body["error"]["code"]) == (422, "witness_unknown")
        got, body = await post(witness.name, witness_key, head.size, over=body_text + "x\n")
        assert (got, body["error"]["code"]) == (422, "cosignature_invalid")
        got, body = await post(witness.name, witness_key, head.size, when=now + 86400)
        assert (got, body["error"]["code"]) == (422, "cosignature_invalid")  # from the future
        got, body = await post(witness.name, witness_key, head.size + 50)
        assert (got, body["error"]["code"]) == (404, "not_found")
        got, body, _ = await public(api, "POST", "/audit/cosignatures",
                                    json={"size": head.size, "signature": "— w\nAAAA"})
        assert (got, body["error"]["code"]) == (400, "invalid_request")
        got, body = await post(witness.name, witness_key, head.size)
        assert (got, body) == (200, {"size": head.size, "stored": True})
        got, body = await post(witness.name, witness_key, head.size, when=now - 60)
        assert (got, body) == (200, {"size": head.size, "stored": False})
        # The published checkpoint now carries the witness's line, and it verifies.
        _, _, published = await public(api, "GET", "/audit/checkpoint")
        note = parse_note(published)
        assert [s.name for s in note.signatures] == [FALLBACK_ORIGIN, witness.name]
        assert witness.verify(note)


async def _ended_call(api: LiveApi, category: str, ago: timedelta = timedelta(0)) -> str:
    """A booked call of ``category``, granted and ended as the calls' runner records it; the
    invite token of its booking."""
    ctx = api.server.context
    now = ctx.clock()
    _, inmate = await api.call("POST", "/inmates", json={"name": "Ola Nordmann"})
    _, contact = await api.call("POST", f"/inmates/{inmate['id']}/contacts", json={
        "name": "Kari Berg", "email": "berg@example.org", "category": category,
        "relation": "professional" if category != "personal" else "sibling",
        "cleared_for_visits": True})
    await api.call("POST", f"/contacts/{contact['id']}/email-confirmation")
    await api.call("POST", f"/contacts/{contact['id']}/decision",
                   json={"outcome": "approve", "control": "none"})
    start = now + timedelta(minutes=5)
    _, booking = await api.call("POST", "/bookings", json={
        "inmate_id": inmate["id"], "contact_id": contact["id"], "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(), "location_kind": "cell",
        "location": "A-1", "initiation": "staff"})
    _, invite = await api.call("POST", f"/bookings/{booking['id']}/invites")
    _, device = await api.call("POST", "/devices", json={"serial": f"TAB-{category}"})
    call = CallRecord(
        id=str(uuid.uuid4()), booking_id=booking["id"], device_id=device["id"],
        inmate_id=inmate["id"], contact_id=contact["id"], category=Category(category),
        route=Route.P2P, control=ControlLevel.NONE, state=CallState.CONNECTED,
        not_before=start, not_after=start + timedelta(minutes=30), created_at=now - ago)
    subjects = {"call": call.id, "device": call.device_id, "booking": call.booking_id}
    async with write_transaction(ctx.engine) as conn:
        await insert_call(conn, call)
        await ctx.audit.append("device:d", "call.granted", subjects,
                               {"route": "p2p", "control": "none", "category": category},
                               conn=conn)
        await end_call(conn, call.id, EndReason.HANGUP, now - ago, 60)
        await ctx.audit.append("system", "call.ended", subjects, {"reason": "hangup"},
                               conn=conn)
    return str(invite["url"]).rsplit("/", 1)[1]


async def test_a_receipt_only_for_an_ended_privileged_call_within_its_time(
    tmp_path: Path, migrated_url: str
) -> None:
    async with live_api(tmp_path, migrated_url, configure=pages.add_routes) as api:
        web = api.url.removesuffix("/api/v1")
        lawyer = await _ended_call(api, "defence_counsel")
        family = await _ended_call(api, "personal")
        stale = await _ended_call(api, "police", ago=timedelta(days=400))
        for token in (family, stale, "x" * 43):
            async with api.http.get(f"{web}/visit/{token}/receipt") as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == "not_found"
        async with api.http.get(f"{web}/visit/{lawyer}/receipt") as resp:
            assert resp.status == 200
            receipt = json.loads(await resp.text())
        key = load_verify_key(tmp_path / "pki")
        verdict = verify_receipt(receipt, key)
        assert verdict.ok, verdict.problems
        assert (verdict.category, verdict.refused) == ("defence_counsel", 0)
