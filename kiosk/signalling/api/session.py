"""Log in, log out, who am I (ARCHITECTURE.md, Trust)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from kiosk.domain.access import PERMISSIONS, Action
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling import auth
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, Reply
from kiosk.signalling.api.work import writing
from kiosk.signalling.schemas import staff as s
from kiosk.signalling.schemas.base import Empty
from kiosk.store.db import write_transaction
from kiosk.store.staff import delete_session

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
    refusals=(Reason.NOT_AUTHENTICATED, Reason.RATE_LIMITED),
)
async def login(req: ApiRequest) -> Reply:
    """The CSRF token must be sent in `X-CSRF-Token` with every state-changing request."""
    body = req.body_as(s.LoginRequest)
    ctx = req.ctx
    address = req.http.remote or ""
    if ctx.login_limiter.blocked(body.username, address, req.now):
        raise ApiError(Reason.RATE_LIMITED)
    async with write_transaction(ctx.engine) as conn:
        staff = await auth.check_password(conn, body.username, body.password)
        if staff is None:
            ctx.login_limiter.failed(body.username, address, req.now)
            log.info("login refused")
            raise ApiError(Reason.NOT_AUTHENTICATED, "Wrong username or password.")
        ctx.login_limiter.succeeded(body.username, address)
        lifetime = timedelta(hours=ctx.settings.server.session_hours)
        session = await auth.create_session(conn, staff.id, req.now, lifetime)
        await ctx.audit.append(
            f"staff:{staff.id}", "staff.logged_in", {"staff": staff.id}, conn=conn
        )
    secure = req.http.secure

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
