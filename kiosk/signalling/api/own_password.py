"""A signed-in staff member changes their own password (issue 16).

The current password is asked for, so that a session left open, or a stolen
cookie, does not hand over the account. Wrong current passwords count in the
login throttle as wrong logins do (kiosk/domain/login_throttle.py). The
change ends the account's other sessions, not this one.
"""

from __future__ import annotations

import math

from kiosk.domain.access import Action
from kiosk.domain.login_throttle import Wait
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling import auth
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import writing
from kiosk.signalling.schemas import staff as s
from kiosk.signalling.schemas.base import Empty
from kiosk.store.staff import delete_staff_sessions, set_staff_password

log = get_logger(__name__)
table = OperationTable("session")


@table.route(
    "POST",
    "/me/password",
    Action.SELF,
    summary="Change your own password: the current one and the new (at least 12 characters)",
    body=s.OwnPasswordChange,
    response=Empty,
    refusals=(Reason.WRONG_PASSWORD, Reason.LOGIN_DELAYED, Reason.LOGIN_BUDGET_EXHAUSTED),
)
async def change_own_password(req: ApiRequest) -> Empty:
    body = req.body_as(s.OwnPasswordChange)
    me, ctx = req.staff, req.ctx
    attempt = ctx.login_throttle.attempt(me.username, req.http.remote or "", req.now)
    if isinstance(attempt, Wait):
        seconds = max(1, math.ceil(attempt.retry_after.total_seconds()))
        raise ApiError(attempt.reason, headers={"Retry-After": str(seconds)})
    try:
        async with ctx.engine.connect() as conn:
            staff = await auth.check_password(conn, me.username, body.current_password)
        if staff is None or staff.id != me.staff_id:
            failure = ctx.login_throttle.failed(attempt, req.now)
            log.info("own password change refused", staff_id=me.staff_id)
            await ctx.audit.append(
                me.actor, "staff.password_change_refused", {"staff": me.staff_id},
                {"reason": Reason.WRONG_PASSWORD.value, "failures": failure.failures},
            )  # fmt: skip
            raise ApiError(Reason.WRONG_PASSWORD, audited=True)
        password_hash = await auth.hash_password_off_loop(body.new_password)
    except ApiError:
        raise
    except BaseException:
        ctx.login_throttle.abandoned(attempt)
        raise
    ctx.login_throttle.succeeded(attempt)
    async with writing(req) as work:
        await set_staff_password(work.conn, me.staff_id, password_hash)
        await delete_staff_sessions(work.conn, me.staff_id, keep=me.session_hash)
        await work.audit("staff.password_changed", {"staff": me.staff_id})
    return Empty()
