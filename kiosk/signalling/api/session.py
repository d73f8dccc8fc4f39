"""Log in, log out, who am I (ARCHITECTURE.md, Trust)."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import timedelta

from aiohttp import web

from kiosk.domain.access import PERMISSIONS, Action
from kiosk.domain.login_throttle import Attempt, Wait
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling import auth
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, Reply
from kiosk.signalling.api.work import writing
from kiosk.signalling.proxies import served_over_tls
from kiosk.signalling.schemas import staff as s
from kiosk.signalling.schemas.base import Empty
from kiosk.store.db import write_transaction
from kiosk.store.staff import delete_session, get_staff_by_username

log = get_logger(__name__)
table = OperationTable("session")


def _staff_out(p: auth.Principal) -> s.StaffOut:
    return s.StaffOut(id=p.staff_id, username=p.username, display_name=p.display_name, role=p.role)


@table.route(
    "POST",
    "/login",
    None,
    summary="Log in: sets the session cookie and returns the CSRF token",
    body=s.LoginRequest,
    response=s.LoginResponse,
    refusals=(Reason.NOT_AUTHENTICATED, Reason.LOGIN_DELAYED, Reason.LOGIN_BUDGET_EXHAUSTED),
)
async def login(req: ApiRequest) -> Reply:
    """The CSRF token must be sent in `X-CSRF-Token` with every state-changing request.
    A client that keeps giving wrong passwords waits longer before each try (429 with
    `Retry-After`); any other client is let in at once (kiosk/domain/login_throttle.py)."""
    body = req.body_as(s.LoginRequest)
    ctx = req.ctx
    address = req.http.remote or ""  # the client, behind a trusted proxy too
    attempt = ctx.login_throttle.attempt(body.username, address, req.now)
    if isinstance(attempt, Wait):
        seconds = max(1, math.ceil(attempt.retry_after.total_seconds()))
        log.info("login refused for now", code=attempt.reason.value, retry_after=seconds)
        raise ApiError(attempt.reason, headers={"Retry-After": str(seconds)})
    try:
        async with write_transaction(ctx.engine) as conn:
            staff = await auth.check_password(conn, body.username, body.password)
            if staff is not None:
                lifetime = timedelta(hours=ctx.settings.server.session_hours)
                session = await auth.create_session(conn, staff.id, req.now, lifetime)
                details = {"refused_before": attempt.refused_before} if (
                    attempt.refused_before) else {}
                await ctx.audit.append(
                    f"staff:{staff.id}", "staff.logged_in", {"staff": staff.id}, details,
                    conn=conn,
                )
    except BaseException:
        ctx.login_throttle.abandoned(attempt)
        raise
    if staff is None:
        await _record_failure(req, attempt)
        raise ApiError(Reason.NOT_AUTHENTICATED, "Wrong username or password.")
    ctx.login_throttle.succeeded(attempt)
    secure = served_over_tls(req.http)

    def set_cookie(response: web.StreamResponse) -> None:
        response.set_cookie(
            auth.SESSION_COOKIE,
            session.token,
            httponly=True,
            secure=secure,
            samesite="Strict",
            path="/",
            max_age=int(lifetime.total_seconds()),
        )

    principal = auth.Principal(
        staff_id=staff.id,
        username=staff.username,
        display_name=staff.display_name,
        role=staff.role,
        via="session",
    )
    return Reply(
        s.LoginResponse(
            csrf_token=session.csrf_token,
            expires_at=session.expires_at,
            staff=_staff_out(principal),
        ),
        cookies=(set_cookie,),
    )


# Issue 12: the chain counts failures per client, but an address is personal data and
# the chain keeps everything for ever (ARCHITECTURE.md principle 6). So the chain names
# a client by a keyed pseudonym, and the journal, which has a retention period, says
# which address it stands for. The key lives as long as the process, as the counts do.
_PSEUDONYM_KEY = secrets.token_bytes(32)


def client_pseudonym(client: str) -> str:
    digest = hmac.new(_PSEUDONYM_KEY, client.encode("utf-8", "replace"), hashlib.sha256)
    return "c" + digest.hexdigest()[:15]


async def _record_failure(req: ApiRequest, attempt: Attempt) -> None:
    """A wrong password goes into the audit chain as counts per account and client, with
    the wait it imposes; never the password, nor a username that names nobody (an
    attacker's text). Attempts refused while waiting are counted in the next entry of
    the same account and client, not each on its own."""
    ctx = req.ctx
    failure = ctx.login_throttle.failed(attempt, req.now)
    async with ctx.engine.connect() as conn:
        staff = await get_staff_by_username(conn, attempt.account)
    details: dict[str, object] = {
        "client": client_pseudonym(attempt.client),
        "failures": failure.failures,
        "client_failures": failure.client_failures,
        "delay_seconds": int(failure.delay.total_seconds()),
        "client_budget_exhausted": failure.budget_exhausted,
        "refused_before": attempt.refused_before,
    }
    if staff is None:
        details["account"] = "unknown"
    subjects = {"staff": staff.id} if staff is not None else {}
    log.info("login refused", client=details["client"], client_address=attempt.client,
             failures=failure.failures, delay_seconds=details["delay_seconds"])
    try:
        await ctx.audit.append("system", "staff.login_failed", subjects, details)
    except Exception:
        log.exception("failed login not recorded")


@table.route("POST", "/logout", Action.SELF, summary="Log out: ends the session", response=Empty)
async def logout(req: ApiRequest) -> Reply:
    staff = req.staff
    if staff.session_hash is not None:
        async with writing(req) as work:
            await delete_session(work.conn, staff.session_hash)
            await work.audit("staff.logged_out", {"staff": staff.staff_id})

    def clear(response: web.StreamResponse) -> None:
        response.del_cookie(auth.SESSION_COOKIE, path="/")

    return Reply(Empty(), cookies=(clear,))


@table.route(
    "GET", "/me", Action.SELF, summary="The staff member behind this request", response=s.MeResponse
)
async def me(req: ApiRequest) -> s.MeResponse:
    allowed = PERMISSIONS.get(req.staff.role, frozenset())
    return s.MeResponse(
        staff=_staff_out(req.staff), via=req.staff.via, actions=sorted(a.value for a in allowed)
    )
