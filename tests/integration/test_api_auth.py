"""Staff authentication against a live server: passwords, cookies, CSRF, tokens, roles."""

from __future__ import annotations

import asyncio
import ssl
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.crypto import authority, pki
from kiosk.domain.access import PERMISSIONS
from kiosk.domain.login_throttle import FREE_FAILURES
from kiosk.domain.model import Role
from kiosk.signalling.auth import SESSION_COOKIE
from tests.integration.api_support import PASSWORD, LiveApi, admin_config, kiosk_admin, live_api

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def api(tmp_path: Path) -> LiveApi:
    async with live_api(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}") as a:
        yield a  # type: ignore[misc]


def _set_cookie(resp: aiohttp.ClientResponse) -> str:
    headers = resp.headers.getall("Set-Cookie", [])
    found = [h for h in headers if h.startswith(SESSION_COOKIE + "=")]
    assert len(found) == 1, headers
    return found[0]


def _attrs(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")[1:]]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


async def _login(http: aiohttp.ClientSession, url: str, username: str, password: str):
    return await http.post(url + "/login", json={"username": username, "password": password})


async def test_wrong_password_is_refused_and_sets_no_cookie(api: LiveApi) -> None:
    resp = await _login(api.http, api.url, api.username(Role.ADMIN), "not the password")
    body = await resp.json()
    assert resp.status == 401
    assert body["error"]["code"] == "not_authenticated"
    assert "Set-Cookie" not in resp.headers
    # An unknown user gets the same answer (no user enumeration).
    resp = await _login(api.http, api.url, "nobody", "whatever")
    assert resp.status == 401
    assert (await resp.json())["error"] == body["error"]


async def test_session_cookie_flags_on_plain_http(api: LiveApi) -> None:
    resp = await _login(api.http, api.url, api.username(Role.VISIT_OFFICE), PASSWORD)
    assert resp.status == 200
    attrs = _attrs(_set_cookie(resp))
    assert "httponly" in attrs
    assert attrs["samesite"] == "Strict"
    assert attrs["path"] == "/"
    # Plain HTTP (behind a reverse proxy on loopback): a Secure cookie would never return.
    assert "secure" not in attrs
    body = await resp.json()
    assert len(body["csrf_token"]) >= 40
    assert body["staff"]["role"] == "visit_office"


async def test_csrf_is_required_for_state_changes_with_a_session(api: LiveApi) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # loopback IP: accept its cookies
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        resp = await _login(http, api.url, api.username(Role.VISIT_OFFICE), PASSWORD)
        csrf = (await resp.json())["csrf_token"]
        before = await api.counts()

        # Reads need no CSRF token.
        resp = await http.get(api.url + "/me")
        assert resp.status == 200
        assert (await resp.json())["via"] == "session"

        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": csrf[:-1]}):
            resp = await http.post(api.url + "/inmates", json={"name": "A"}, headers=headers)
            assert resp.status == 403, headers
            assert (await resp.json())["error"]["code"] == "csrf_failed"
        assert await api.counts() == before

        resp = await http.post(
            api.url + "/inmates", json={"name": "A"}, headers={"X-CSRF-Token": csrf}
        )
        assert resp.status == 201

        # Logging out ends the session for good.
        resp = await http.post(api.url + "/logout", headers={"X-CSRF-Token": csrf})
        assert resp.status == 200
        resp = await http.get(api.url + "/me")
        assert resp.status == 401


async def test_session_cookie_from_another_login_does_not_carry_its_csrf(api: LiveApi) -> None:
    """A CSRF token is bound to its own session."""
    tokens = []
    cookies = []
    for _ in range(2):
        resp = await _login(api.http, api.url, api.username(Role.ADMIN), PASSWORD)
        tokens.append((await resp.json())["csrf_token"])
        cookie = SimpleCookie()
        cookie.load(_set_cookie(resp))
        cookies.append(cookie[SESSION_COOKIE].value)
    resp = await api.http.post(
        api.url + "/inmates",
        json={"name": "B"},
        headers={"Cookie": f"{SESSION_COOKIE}={cookies[0]}", "X-CSRF-Token": tokens[1]},
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"


async def test_no_credentials_and_bad_tokens_are_not_authenticated(api: LiveApi) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"Cookie": f"{SESSION_COOKIE}=forged"},
    ):
        resp = await api.http.get(api.url + "/inmates", headers=headers)
        assert resp.status == 401, headers
        assert (await resp.json())["error"]["code"] == "not_authenticated"


async def test_failed_logins_delay_that_client_for_that_user_only(tmp_path: Path) -> None:
    """Issue 12: a growing wait, not a lockout (tests/integration/test_outside_attacks.py
    attacks it through a proxy). A first wait no round trip outlasts."""
    async with live_api(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}",
        web_settings={"login_delay_seconds": 60},
    ) as api:
        await _delayed_for_one_user(api)


async def _delayed_for_one_user(api: LiveApi) -> None:
    user = api.username(Role.OFFICER)
    for _ in range(FREE_FAILURES):
        resp = await _login(api.http, api.url, user, "wrong")
        assert resp.status == 401
    resp = await _login(api.http, api.url, user, PASSWORD)  # not yet, even the right one
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "login_delayed"
    assert int(resp.headers["Retry-After"]) >= 1
    # Another user from the same address is not affected.
    resp = await _login(api.http, api.url, api.username(Role.ADMIN), PASSWORD)
    assert resp.status == 200


# (role, method, path, body) that must be refused with forbidden_role.
REFUSED = [
    (Role.OFFICER, "POST", "/inmates", {"name": "X"}),
    (Role.OFFICER, "POST", "/bookings", {}),
    (Role.OFFICER, "PATCH", "/facility", {"contact_limit": 9}),
    (Role.OFFICER, "POST", "/devices", {"serial": "S1"}),
    (Role.OFFICER, "GET", "/audit", None),
    (Role.VISIT_OFFICE, "PATCH", "/facility", {"contact_limit": 9}),
    (Role.VISIT_OFFICE, "POST", "/facility/restrictions", {}),
    (Role.VISIT_OFFICE, "POST", "/devices", {"serial": "S1"}),
    (Role.VISIT_OFFICE, "GET", "/audit/verify", None),
]


@pytest.mark.parametrize(("role", "method", "path", "body"), REFUSED)
async def test_each_role_is_refused_where_it_must_be(
    api: LiveApi, role: Role, method: str, path: str, body: object
) -> None:
    before = await api.counts()
    status, answer = await api.call(method, path, role=role, json=body)
    assert status == 403
    assert answer["error"]["code"] == "forbidden_role"
    assert await api.counts() == before


async def test_each_role_is_allowed_its_own_work(api: LiveApi) -> None:
    assert (await api.call("GET", "/inmates", role=Role.OFFICER))[0] == 200
    assert (await api.call("GET", "/bookings", role=Role.OFFICER))[0] == 200
    assert (await api.call("POST", "/inmates", role=Role.VISIT_OFFICE, json={"name": "V"}))[
        0
    ] == 201
    assert (await api.call("PATCH", "/facility", role=Role.ADMIN, json={"tablets": 6}))[0] == 200
    assert (await api.call("GET", "/audit", role=Role.ADMIN))[0] == 200
    # Admin may also do the visit office's work (kiosk/domain/access.py).
    assert (await api.call("POST", "/inmates", role=Role.ADMIN, json={"name": "W"}))[0] == 201


async def test_token_from_kiosk_admin_token_create_works(tmp_path: Path) -> None:
    db = tmp_path / "kiosk.sqlite3"
    async with live_api(tmp_path, f"sqlite+aiosqlite:///{db}") as api:
        config = admin_config(tmp_path, f"sqlite+aiosqlite:///{db}")
        code, out, err = await kiosk_admin(
            config, "token", "create", api.username(Role.VISIT_OFFICE), "--label", "script"
        )
        assert code == 0, err
        token = out.strip()
        assert token and token not in err
        resp = await api.http.get(api.url + "/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        body = await resp.json()
        assert body == {
            "staff": {
                "id": api.staff_ids[Role.VISIT_OFFICE],
                "username": api.username(Role.VISIT_OFFICE),
                "display_name": "visit_office person",
                "role": "visit_office",
            },
            "via": "token",
            "actions": sorted(a.value for a in PERMISSIONS[Role.VISIT_OFFICE]),
        }
        # A bearer token needs no CSRF token, and carries its staff member's role.
        resp = await api.http.post(
            api.url + "/inmates", json={"name": "T"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 201
        resp = await api.http.patch(
            api.url + "/facility", json={"tablets": 1}, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 403

        # An unknown user is an operator error: one line, non-zero exit.
        code, out, err = await kiosk_admin(config, "token", "create", "ghost")
        assert code == 1
        assert err.strip().splitlines()[-1] == "kiosk: no active staff member 'ghost'"


_admin = kiosk_admin


async def test_tokens_are_listed_by_id_and_a_revoked_one_is_refused_at_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "kiosk.sqlite3"
    async with live_api(tmp_path, f"sqlite+aiosqlite:///{db}") as api:
        config = admin_config(tmp_path, f"sqlite+aiosqlite:///{db}")
        user = api.username(Role.VISIT_OFFICE)
        tokens = []
        for label in ("nightly export", "report script"):
            code, out, err = await _admin(config, "token", "create", user, "--label", label)
            assert code == 0, err
            tokens.append(out.strip())
        code, listing, _ = await _admin(config, "token", "list")
        assert code == 0
        rows = [line.split() for line in listing.splitlines()[1:] if "script" in line]
        assert len(rows) == 1
        token_id = rows[0][0]
        assert len(token_id) == 16 and not any(tok in listing for tok in tokens)

        def me(token: str) -> Any:
            return api.http.get(api.url + "/me", headers={"Authorization": f"Bearer {token}"})

        assert (await me(tokens[1])).status == 200
        code, out, err = await _admin(config, "token", "revoke", token_id)
        assert code == 0, err
        assert out.strip() == f"revoked token {token_id} of {user}"
        # Refused from the next request on; the other token goes on working.
        assert (await me(tokens[1])).status == 401
        assert (await me(tokens[0])).status == 200
        code, listing, _ = await _admin(config, "token", "list")
        [row] = [line for line in listing.splitlines() if line.startswith(token_id)]
        assert "revoked" in row.split()
        # Both ends are in the audit chain, by id; the token itself never is.
        status, chain = await api.call("GET", "/audit", params={"limit": "1000"})
        assert status == 200
        revoked = [e for e in chain["items"] if e["action"] == "staff.token_revoked"]
        assert [e["subjects"]["api_token"] for e in revoked] == [token_id]
        created = [e for e in chain["items"] if e["action"] == "staff.token_created"]
        assert token_id in [e["subjects"].get("api_token") for e in created]
        assert not any(tok in str(chain) for tok in tokens)
        # Bad and unknown ids: one line, non-zero exit, nothing changed.
        for bad, message in (
            ("xyz", "kiosk: a token id is 16 hex digits, as `kiosk admin token list` shows"),
            ("0" * 16, f"kiosk: no token with id {'0' * 16}"),
        ):
            code, _, err = await _admin(config, "token", "revoke", bad)
            assert code == 1 and err.strip().splitlines()[-1] == message
        assert (await me(tokens[0])).status == 200


async def test_tls_listener_sets_secure_cookie_and_hsts(tmp_path: Path) -> None:
    """A real TLS listener with a certificate from the deployment CA."""
    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir, hosts=["127.0.0.1"])
    paths = authority.PkiPaths(pki_dir)
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    async with live_api(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}",
        client_ssl=client,
        web_cert=str(paths.listener_cert),
        web_key=str(paths.listener_key),
    ) as api:
        assert api.url.startswith("https://127.0.0.1:")
        resp = await _login(api.http, api.url, api.username(Role.ADMIN), PASSWORD)
        assert resp.status == 200
        attrs = _attrs(_set_cookie(resp))
        assert "secure" in attrs and "httponly" in attrs and attrs["samesite"] == "Strict"
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        # A TLS 1.2 client gets an ECDHE key exchange with an AEAD cipher, nothing weaker.
        tls12 = ssl.create_default_context(cafile=str(paths.ca_cert))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        tls12.set_ciphers("ALL:@SECLEVEL=0")  # offer everything; the server chooses
        _, writer = await asyncio.open_connection("127.0.0.1", api.server.port, ssl=tls12)
        try:
            tls = writer.get_extra_info("ssl_object")
            name, version, _ = tls.cipher()
            assert version == "TLSv1.2"
            assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
        finally:
            writer.close()


async def test_cookie_secure_setting_for_a_proxy_that_does_not_say(tmp_path: Path) -> None:
    """Issue 12, item 4: ``[web] cookie_secure`` on a plain-HTTP listener."""
    async with live_api(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}",
        web_settings={"cookie_secure": True},
    ) as api:
        assert api.url.startswith("http://")
        resp = await _login(api.http, api.url, api.username(Role.ADMIN), PASSWORD)
        assert resp.status == 200
        assert "secure" in _attrs(_set_cookie(resp))
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_security_headers_on_every_answer(api: LiveApi) -> None:
    for path in ("/openapi.json", "/no/such/thing", "/inmates"):
        resp = await api.http.get(api.url + path)
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"


async def test_kiosk_admin_staff_add(tmp_path: Path) -> None:
    db = tmp_path / "kiosk.sqlite3"
    config = admin_config(tmp_path, f"sqlite+aiosqlite:///{db}")

    async def add(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        return await kiosk_admin(config, "staff", "add", *args, stdin=stdin)

    code, out, err = await add(
        "kari", "--role", "visit_office", "--password-stdin", stdin=b"a long enough password\n"
    )
    assert code == 0, err
    # A password given on stdin is never echoed; only a generated one is printed.
    assert out.startswith("added kari (visit_office)") and "password" not in out
    assert (await add("kari", "--role", "admin", stdin=b""))[0] == 1
    code, _, err = await add("short", "--role", "admin", "--password-stdin", stdin=b"tiny\n")
    assert code == 1 and "at least 12 characters" in err
    code, _, err = await add("x", "--role", "janitor")
    assert code == 2  # argparse refuses an unknown role

    async with live_api(tmp_path, f"sqlite+aiosqlite:///{db}") as api:
        resp = await _login(api.http, api.url, "kari", "a long enough password")
        assert resp.status == 200
        assert (await resp.json())["staff"]["role"] == "visit_office"
