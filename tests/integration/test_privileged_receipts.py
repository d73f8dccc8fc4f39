"""Privilege you can prove (issue 18), end to end on SQLite and PostgreSQL.

A defence lawyer's call made with the real server, a real tablet agent and
an aiortc visitor; staff try to listen in and are refused (R13). Then, with
the commands an outsider runs:

- the receipt from the invite link is accepted by ``kiosk verify-receipt``,
  the auditor's ``privilege-report`` lists the call, and an outside witness
  (``kiosk witness``) cosigns the log;
- a row of the audit table changed in the database: ``kiosk admin audit
  verify`` and a fresh receipt both fail, naming that entry;
- history rewritten from that entry and re-signed with the prison's own key:
  the receipt issued before is caught by the consistency proof to the newer
  checkpoint, and the witness refuses to cosign the forked log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.audit import sql
from kiosk.audit.chain import GENESIS, make_entry, sign_checkpoint
from kiosk.audit.keys import FALLBACK_ORIGIN, load_signing_key
from kiosk.audit.merkle import Frontier
from kiosk.audit.note import TreeHead, sign_note
from kiosk.store import schema
from tests.harness import Api, World, run_kiosk, wait_until

pytestmark = pytest.mark.slow

AUDIT_TABLES = ("audit_entries", "audit_checkpoints", "audit_tree", "audit_tree_heads",
                "audit_cosignatures")


async def drop_guards(engine: AsyncEngine) -> None:
    """What someone with the database's DDL rights does first."""
    async with engine.begin() as conn:
        for table in AUDIT_TABLES:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            else:
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")


async def change_row(engine: AsyncEngine, seq: int) -> None:
    """The grant of the lawyer's call rewritten to say it went through the bridge."""
    async with engine.begin() as conn:
        details = (await conn.execute(select(schema.audit_entries.c.details)
                                      .where(schema.audit_entries.c.seq == seq))).scalar_one()
        details = {**details, "route": "bridge"}
        await conn.execute(schema.audit_entries.update()
                           .where(schema.audit_entries.c.seq == seq).values(details=details))


async def rewrite_history(engine: AsyncEngine, pki: Path, start: int) -> int:
    """The prison rewrites the log from ``start`` on, rebuilds the tree and re-signs it
    with its own key, as if that were the only history; returns the new size."""
    key = load_signing_key(pki)
    async with engine.begin() as conn:
        entries = await sql.entries_after(conn, 0, 10**6)
        for table in (schema.audit_tree, schema.audit_cosignatures):
            await conn.execute(delete(table))
        await conn.execute(delete(schema.audit_entries).where(schema.audit_entries.c.seq >= start))
        await conn.execute(delete(schema.audit_checkpoints)
                           .where(schema.audit_checkpoints.c.seq >= start))
        await conn.execute(delete(schema.audit_tree_heads)
                           .where(schema.audit_tree_heads.c.size >= start))
        frontier, prev = Frontier(), GENESIS
        for e in entries:
            if e.seq >= start:
                e = make_entry(e.seq, e.at, e.actor, e.action, e.subjects, e.details, prev)
                await conn.execute(insert(schema.audit_entries).values(
                    seq=e.seq, at=e.at, actor=e.actor, action=e.action, subjects=e.subjects,
                    details=e.details, prev_hash=e.prev_hash, hash=e.hash))
            prev = e.hash
            await conn.execute(insert(schema.audit_tree).values(
                seq=e.seq, hashes=b"".join(frontier.append(e.leaf()))))
        last = e
        await sql.insert_checkpoint(conn, sign_checkpoint(last, last.at, key))
        note = sign_note(TreeHead(FALLBACK_ORIGIN, last.seq, frontier.root()).text(),
                         FALLBACK_ORIGIN, key)
        await sql.insert_head(conn, last.seq, last.at, note.render())
    return last.seq


async def get_receipt(world: World, token: str) -> dict[str, Any] | None:
    async with aiohttp.ClientSession() as http, http.get(
        f"{world.web_url}/visit/{token}/receipt"
    ) as resp:
        if resp.status != 200:
            return None
        assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
        data: dict[str, Any] = json.loads(await resp.text())
        return data


def kiosk(world: World, *args: str) -> tuple[int, str, str]:
    result = run_kiosk(list(args), env=world.deployment.env(), check=False)
    return result.returncode, result.stdout, result.stderr


def kiosk_plain(*args: str) -> tuple[int, str, str]:
    result = run_kiosk(list(args), check=False)
    return result.returncode, result.stdout, result.stderr


def entry(receipt: dict[str, Any], action: str) -> list[Any]:
    for item in receipt["entries"]:
        fields = json.loads(item["entry"])
        if fields[3] == action:
            return list(fields)
    raise AssertionError(f"no {action} in the receipt")


async def test_a_lawyer_call_yields_a_receipt_that_proves_privilege_and_catches_tampering(
    tmp_path: Path, migrated_url: str, engine: AsyncEngine
) -> None:
    witness_dir = tmp_path / "witness"
    code, vkey, err = kiosk_plain("witness", "init", "--state-dir", str(witness_dir),
                                  "--name", "advokatforeningen.example/witness")
    assert code == 0, err
    world = World(tmp_path / "world", extra_config=f'[audit]\nwitnesses = ["{vkey.strip()}"]\n')
    world.deployment.database_url = migrated_url
    await world.start()
    try:
        await _the_story(world, witness_dir, vkey.strip(), engine)
    finally:
        await world.close()


async def _the_story(world: World, witness_dir: Path, witness_vkey: str,
                     engine: AsyncEngine) -> None:
    assert world.api is not None
    config = str(world.deployment.config)
    pub = str(world.deployment.data_dir / "pki" / "audit.pub")
    inmate = await world.inmate()
    lawyer = await world.approved_contact(inmate, category="defence_counsel",
                                          relation="professional")
    booking = await world.booking(inmate, lawyer, start_in=2)
    token = await world.invite_token(booking["id"])
    tablet = await world.tablet(inmate, "TAB-RECEIPT")
    visitor = await world.visitor(token)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=30, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=60, what="media")
    live = await world.api.call("GET", "/calls?live=true")
    (call,) = [c for c in live["items"] if c["booking_id"] == booking["id"]]
    officer = Api(world.deployment.api, world.deployment.admin_token("officer1", "officer"))
    try:
        refused = await officer.call("POST", f"/calls/{call['id']}/monitors",
                                     {"kinds": ["audio"]}, expect=422)
    finally:
        await officer.close()
    assert refused["error"]["code"] == "privileged_no_monitor"
    assert await get_receipt(world, token) is None  # not before the call has ended
    await world.api.call("POST", f"/calls/{call['id']}/end", {"note": ""})

    # 1. The receipt from the invite link, checked as the lawyer checks it.
    receipt = await wait_until(lambda: get_receipt(world, token), timeout=30, what="receipt")
    path = world.deployment.root / "receipt.json"
    path.write_text(json.dumps(receipt))
    code, out, err = kiosk(world, "verify-receipt", str(path), "--key", pub)
    assert code == 0, err
    assert "This call was peer to peer; nobody was attached; 1 attempt was refused" in out
    code, log_vkey, err = kiosk(world, "admin", "audit", "key", "--config", config)
    assert code == 0 and log_vkey.startswith(FALLBACK_ORIGIN + "+"), err
    code, out, err = kiosk(world, "verify-receipt", str(path), "--key", log_vkey.strip())
    assert code == 0, err

    # 2. The auditor's report lists the call, with its proof.
    granted = entry(receipt, "call.granted")
    day = granted[1][:10]
    code, out, err = kiosk(world, "admin", "audit", "privilege-report", "--from", day,
                           "--to", day, "--config", config)
    assert code == 0, out + err
    assert call["id"] in out and "1 monitor attempts refused" in out and "proof: entries" in out

    # 3. The witness cosigns; a fresh receipt carries its cosignature.
    log_key_file = world.deployment.root / "log.vkey"
    log_key_file.write_text(log_vkey)
    cosign = ("witness", "cosign", "--state-dir", str(witness_dir), "--log", world.web_url,
              "--log-key", str(log_key_file))
    code, out, err = kiosk(world, *cosign)
    assert code == 0, err
    cosigned = await get_receipt(world, token)
    assert cosigned is not None
    path_cosigned = world.deployment.root / "receipt-cosigned.json"
    path_cosigned.write_text(json.dumps(cosigned))
    code, out, err = kiosk(world, "verify-receipt", str(path_cosigned), "--key", pub,
                           "--witness", witness_vkey)
    assert code == 0, err
    assert "Cosigned by: advokatforeningen.example/witness" in out

    # 4. A row of the audit table changed: the chain and a fresh receipt name it.
    seq = granted[0]
    await drop_guards(engine)
    await change_row(engine, seq)
    code, out, err = kiosk(world, "admin", "audit", "verify", "--config", config)
    assert code == 3
    assert f"audit chain broken at seq {seq}: entry {seq} was changed" in err
    fresh = await get_receipt(world, token)
    assert fresh is not None
    path_fresh = world.deployment.root / "receipt-fresh.json"
    path_fresh.write_text(json.dumps(fresh))
    code, out, err = kiosk(world, "verify-receipt", str(path_fresh), "--key", pub)
    assert code == 3
    assert f"entry {seq} is not in the log the checkpoint signed" in err

    # 5. History rewritten from there and re-signed with the prison's key.
    await rewrite_history(engine, world.deployment.data_dir / "pki", seq)
    code, out, err = kiosk(world, "verify-receipt", str(path), "--key", pub)
    assert code == 0, err  # offline, the old receipt still holds what it held ...
    code, out, err = kiosk(world, "verify-receipt", str(path), "--key", pub,
                           "--log", world.web_url)
    assert code == 3  # ... and the newer checkpoint shows the log was rewritten since
    assert "the log was rewritten after this receipt" in err
    code, out, err = kiosk(world, *cosign)
    assert code == 3
    assert "witness refuses to cosign" in err and "forked" in err
    state = json.loads((witness_dir / "state.json").read_text())
    assert state[FALLBACK_ORIGIN]["size"] >= receipt_size(receipt)


def receipt_size(receipt: dict[str, Any]) -> int:
    return int(receipt["checkpoint"].split("\n")[1])

