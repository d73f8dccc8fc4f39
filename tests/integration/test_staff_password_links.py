"""Issue 16: staff set their own passwords; an admin never types another person's.

The real server on loopback, on SQLite and PostgreSQL, with a clock the test
sets: a new account has no usable password, its one-time link sets one
once, a used, replaced, expired or unknown link is refused with its reason
code, a link is mailed through the outbox when the account has an address,
and a signed-in person changes their own password with the current one.
``kiosk admin staff add`` prints a link and no password.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kiosk.domain.model import Role
from kiosk.signalling.context import utc_now
from kiosk.store import schema as t
from tests.integration.api_support import LiveApi, admin_config, kiosk_admin, live_api

GOOD = "a brand new passphrase"
LINK = re.compile(r"https?://\S+/staff/set-password/([A-Za-z0-9_-]{40,})")


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> AsyncIterator[Any]:
    """The live API on each engine, with a clock the test moves."""
    now = [utc_now()]
    async with live_api(tmp_path, migrated_url, clock=lambda: now[0]) as a:
        a.now = now  # type: ignore[attr-defined]
        yield a


async def ok(api: LiveApi, method: str, path: str, body: Any = None) -> Any:
    status, answer = await api.call(method, path, json=body)
    assert status in (200, 201), (method, path, status, answer)
    return answer


async def new_account(api: LiveApi, username: str, email: str = "") -> dict[str, Any]:
    body = {"username": username, "display_name": username.title(), "role": "officer"}
    return await ok(api, "POST", "/staff", {**body, "email": email} if email else body)


async def link(api: LiveApi, staff_id: str) -> dict[str, Any]:
    return await ok(api, "POST", f"/staff/{staff_id}/password-link")


async def page(api: LiveApi, url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    """GET the link's page, or POST its form; (status, HTML)."""
    if form is None:
        async with api.http.get(url) as resp:
            return resp.status, await resp.text()
    async with api.http.post(url, data=form) as resp:
        return resp.status, await resp.text()


def reason(html: str) -> str | None:
    found = re.search(r'<body[^>]*data-reason="([a-z_]+)"', html)
    return found.group(1) if found else None


async def login(api: LiveApi, username: str, password: str) -> tuple[int, dict[str, Any], str]:
    """(status, body, session cookie) of a log-in."""
    async with api.http.post(
        api.url + "/login", json={"username": username, "password": password}
    ) as resp:
        cookie = resp.cookies["kiosk_session"].value if "kiosk_session" in resp.cookies else ""
        return resp.status, await resp.json(), cookie


async def audit(api: LiveApi) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await ok(api, "GET", "/audit?limit=1000"))["items"]
    return items


async def test_a_link_sets_the_password_once_and_only_its_owner_knows_it(api: Any) -> None:
    staff = await new_account(api, "ingrid")
    assert (await login(api, "ingrid", ""))[0] in (400, 401)  # nothing to log in with
    assert (await login(api, "ingrid", "!"))[0] == 401
    issued = await link(api, staff["id"])
    assert issued["mailed"] is False and issued["staff_id"] == staff["id"]
    url = issued["url"]
    token = url.rsplit("/", 1)[1]
    assert datetime.fromisoformat(issued["expires_at"]) == api.now[0] + timedelta(hours=72)

    status, html = await page(api, url)
    assert status == 200 and 'id="setpw-form"' in html and 'value="ingrid"' in html
    assert "Content-Security-Policy" in (await api.http.get(url)).headers
    # The form's own refusals say why and leave the link alive.
    status, html = await page(api, url, {"password": GOOD, "again": GOOD + "!"})
    assert (status, reason(html)) == (422, "invalid_request")
    status, html = await page(api, url, {"password": "too short", "again": "too short"})
    assert (status, reason(html)) == (422, "password_too_short")

    status, html = await page(api, url, {"password": GOOD, "again": GOOD, "lang": "nb"})
    assert status == 200 and 'id="setpw-done"' in html and 'lang="nb"' in html
    status, body, _ = await login(api, "ingrid", GOOD)
    assert status == 200 and body["staff"]["username"] == "ingrid"

    # Used: refused with its reason, by GET and POST alike; the password stays.
    for form in (None, {"password": "another passphrase!", "again": "another passphrase!"}):
        status, html = await page(api, url, form)
        assert (status, reason(html)) == (410, "password_link_used"), html
        assert "password_link_used" in html and "allerede brukt" in html  # bokmål by default
    assert (await login(api, "ingrid", "another passphrase!"))[0] == 401
    assert (await login(api, "ingrid", GOOD))[0] == 200

    entries = await audit(api)
    actions = [e["action"] for e in entries if e["subjects"].get("staff") == staff["id"]]
    assert actions.count("staff.password_link_issued") == 1
    assert actions.count("staff.password_set") == 1
    [done] = [e for e in entries if e["action"] == "staff.password_set"]
    assert done["actor"] == f"staff:{staff['id']}"  # the owner set it, not the admin
    chain = json.dumps(entries)
    assert token not in chain and GOOD not in chain


async def test_an_expired_link_is_refused(api: Any) -> None:
    staff = await new_account(api, "jon")
    url = (await link(api, staff["id"]))["url"]
    api.now[0] += timedelta(hours=72)
    for form in (None, {"password": GOOD, "again": GOOD}):
        status, html = await page(api, url, form)
        assert (status, reason(html)) == (410, "password_link_expired")
    assert (await login(api, "jon", GOOD))[0] == 401
    # One second before its end it still works.
    fresh = (await link(api, staff["id"]))["url"]
    api.now[0] += timedelta(hours=72) - timedelta(seconds=1)
    status, html = await page(api, fresh, {"password": GOOD, "again": GOOD})
    assert status == 200, html


async def test_a_new_link_kills_the_older_one(api: Any) -> None:
    staff = await new_account(api, "kjersti")
    old = (await link(api, staff["id"]))["url"]
    new = (await link(api, staff["id"]))["url"]
    assert old != new
    status, html = await page(api, old, {"password": GOOD, "again": GOOD})
    assert (status, reason(html)) == (410, "password_link_replaced")
    assert "nyere lenke" in html
    assert (await login(api, "kjersti", GOOD))[0] == 401
    status, _ = await page(api, new, {"password": GOOD, "again": GOOD})
    assert status == 200
    assert (await login(api, "kjersti", GOOD))[0] == 200


async def test_an_unknown_link_gets_a_page_with_its_reason_never_a_500(api: Any) -> None:
    base = api.server.base_url + "/staff/set-password/"
    for token in ("x" * 43, "short", "a" * 300, "%00%27%3C", ""):
        for form in (None, {"password": GOOD, "again": GOOD}):
            status, html = await page(api, base + token, form)
            assert (status, reason(html)) == (404, "password_link_unknown"), token


async def test_links_of_deactivated_accounts_do_not_work(api: Any) -> None:
    staff = await new_account(api, "lars")
    url = (await link(api, staff["id"]))["url"]
    await ok(api, "PATCH", f"/staff/{staff['id']}", {"active": False})
    status, html = await page(api, url, {"password": GOOD, "again": GOOD})
    assert (status, reason(html)) == (404, "password_link_unknown")
    status, answer = await api.call("POST", f"/staff/{staff['id']}/password-link")
    assert (status, answer["error"]["code"]) == (409, "conflict")


async def test_an_account_with_an_address_gets_its_link_by_mail(api: Any) -> None:
    staff = await new_account(api, "marit", email="marit@fengsel.example")
    assert staff["email"] == "marit@fengsel.example"
    issued = await link(api, staff["id"])
    assert issued["mailed"] is True and issued["url"] is None  # the admin never sees it
    async with api.server.context.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox).where(t.outbox.c.kind == "staff_password")))
        [row] = rows.all()
    mail = message_from_bytes(row.message, policy=default)
    assert isinstance(mail, EmailMessage) and mail["To"] == "marit@fengsel.example"
    body = mail.get_content()
    tokens = set(LINK.findall(body))
    assert len(tokens) == 1 and body.count("/staff/set-password/") == 2  # nb and en
    url = api.server.base_url + "/staff/set-password/" + tokens.pop()
    status, _ = await page(api, url, {"password": GOOD, "again": GOOD})
    assert status == 200
    assert (await login(api, "marit", GOOD))[0] == 200
    [issued_entry] = [e for e in await audit(api) if e["action"] == "staff.password_link_issued"
                      and e["subjects"]["staff"] == staff["id"]]
    assert issued_entry["details"]["mailed"] is True


async def test_signed_in_staff_change_their_own_password(api: Any) -> None:
    staff = await new_account(api, "nils")
    await page(api, (await link(api, staff["id"]))["url"], {"password": GOOD, "again": GOOD})
    _, first, cookie = await login(api, "nils", GOOD)
    _, _, other = await login(api, "nils", GOOD)

    async def change(current: str, new: str) -> tuple[int, Any]:
        headers = {"Cookie": f"kiosk_session={cookie}", "X-CSRF-Token": first["csrf_token"]}
        body = {"current_password": current, "new_password": new}
        async with api.http.post(api.url + "/me/password", json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    status, answer = await change("not my password", "a newer passphrase")
    assert (status, answer["error"]["code"]) == (403, "wrong_password")
    status, answer = await change(GOOD, "short")
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    assert (await login(api, "nils", "a newer passphrase"))[0] == 401
    status, _ = await change(GOOD, "a newer passphrase")
    assert status == 200
    assert (await login(api, "nils", GOOD))[0] == 401
    assert (await login(api, "nils", "a newer passphrase"))[0] == 200

    async def me(session: str) -> int:
        async with api.http.get(
            api.url + "/me", headers={"Cookie": f"kiosk_session={session}"}
        ) as resp:
            return resp.status

    assert await me(cookie) == 200 and await me(other) == 401  # only this session stays
    entries = await audit(api)
    changed = [e for e in entries if e["action"] == "staff.password_changed"]
    assert [e["actor"] for e in changed] == [f"staff:{staff['id']}"]
    [refused] = [e for e in entries if e["action"] == "staff.password_change_refused"]
    assert refused["subjects"] == {"staff": staff["id"]}
    assert refused["details"]["reason"] == "wrong_password"
    chain = json.dumps(entries)
    assert "a newer passphrase" not in chain and "not my password" not in chain


async def test_kiosk_admin_staff_add_prints_a_link_and_no_password(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}"
    config = admin_config(tmp_path, db)
    text = config.read_text()
    config.write_text(text.replace("[server]\n", '[server]\npublic_url = "https://kiosk.example"\n'))
    async with live_api(tmp_path, db) as api:
        code, out, err = await kiosk_admin(config, "staff", "add", "olga", "--role", "officer")
        assert code == 0, err
        [token] = LINK.findall(out)
        lines = out.splitlines()
        assert lines[0].startswith("added olga (officer)")
        assert lines[-1] == f"https://kiosk.example/staff/set-password/{token}"
        assert "password:" not in out  # nothing to hand over but the link
        assert (await login(api, "olga", ""))[0] in (400, 401)

        # Another link for the same account: the first stops working.
        code, again, err = await kiosk_admin(config, "staff", "password-link", "olga")
        assert code == 0, err
        [second] = LINK.findall(again)
        local = api.server.base_url + "/staff/set-password/"
        status, html = await page(api, local + token, {"password": GOOD, "again": GOOD})
        assert (status, reason(html)) == (410, "password_link_replaced")
        status, _ = await page(api, local + second, {"password": GOOD, "again": GOOD})
        assert status == 200
        status, body, _ = await login(api, "olga", GOOD)
        assert status == 200 and body["staff"]["role"] == Role.OFFICER.value
        code, _, err = await kiosk_admin(config, "staff", "password-link", "nobody")
        assert code == 1 and "no active staff member" in err
