"""Staff accounts: list, add, change (role, active, e-mail), send a set-password link.
Admins only.

An admin cannot change their own role or deactivate themselves, so that the
last admin never locks everybody out by a slip. A changed role or a
deactivation ends the account's sessions; bearer tokens of an inactive
account stop working at once. An admin never sets another person's password
(issue 16): a new account has none until its owner sets one through a
one-time link (kiosk/signalling/staff_passwords.py).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from kiosk.domain.access import Action
from kiosk.domain.reasons import Reason
from kiosk.signalling import auth
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import reading, writing
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.schemas import staff as s
from kiosk.signalling.staff_passwords import issue_link, link_url
from kiosk.store import staff as staff_store
from kiosk.store.staff import (
    delete_staff_sessions,
    get_staff,
    get_staff_by_username,
    insert_staff,
)

table = OperationTable("staff")


@table.route(
    "GET", "/staff", Action.STAFF_READ, summary="List staff accounts", response=s.StaffList
)
async def list_staff(req: ApiRequest) -> s.StaffList:
    async with reading(req) as work:
        accounts = await staff_store.list_staff(work.conn)
    return s.StaffList(items=[s.StaffAccount.model_validate(a) for a in accounts])


@table.route(
    "POST",
    "/staff",
    Action.STAFF_WRITE,
    summary="Add a staff account",
    body=s.StaffCreate,
    response=s.StaffAccount,
    status=201,
    refusals=(Reason.CONFLICT,),
)
async def add_staff(req: ApiRequest) -> s.StaffAccount:
    """The account has no password: send it a set-password link next."""
    body = req.body_as(s.StaffCreate)
    try:
        async with writing(req) as work:
            if await get_staff_by_username(work.conn, body.username) is not None:
                raise ApiError(Reason.CONFLICT, "That username is taken.")
            staff_id = await insert_staff(
                work.conn, body.username, body.display_name, auth.NO_PASSWORD, body.role,
                req.now, body.email,
            )  # fmt: skip
            await work.audit("staff.added", {"staff": staff_id}, {"role": body.role.value})
            staff = await get_staff(work.conn, staff_id)  # just written: never None
    except IntegrityError:
        raise ApiError(Reason.CONFLICT, "That username is taken.") from None
    return s.StaffAccount.model_validate(staff)


@table.route(
    "PATCH",
    "/staff/{staff_id}",
    Action.STAFF_WRITE,
    summary="Change a staff account (display name, role, active, e-mail); omitted stay",
    body=s.StaffUpdate,
    response=s.StaffAccount,
    refusals=(Reason.CONFLICT,),
)
async def update_staff(req: ApiRequest) -> s.StaffAccount:
    body = req.body_as(s.StaffUpdate)
    staff_id = req.params["staff_id"]
    changes = body.model_dump(exclude_none=True, mode="json")
    if staff_id == req.staff.staff_id and ("role" in changes or changes.get("active") is False):
        raise ApiError(Reason.CONFLICT, "You cannot change your own role or deactivate yourself.")
    async with writing(req) as work:
        await work.load(get_staff, staff_id, "staff member")
        if changes:
            await staff_store.update_staff(work.conn, staff_id, changes)
            if changes.keys() & {"role", "active"}:
                await delete_staff_sessions(work.conn, staff_id)
            details = {k: v for k, v in changes.items() if k in ("role", "active")}
            if "email" in changes:
                details["email_changed"] = True  # an address is personal data: not in the chain
            await work.audit("staff.updated", {"staff": staff_id}, details)
        staff = await work.load(get_staff, staff_id, "staff member")
    return s.StaffAccount.model_validate(staff)


@table.route(
    "POST",
    "/staff/{staff_id}/password-link",
    Action.STAFF_WRITE,
    summary="Send a set-password link: mailed if the account has an e-mail, else returned once",
    response=s.PasswordLinkOut,
    status=201,
    refusals=(Reason.CONFLICT,),
)
async def send_password_link(req: ApiRequest) -> s.PasswordLinkOut:
    """The account's earlier links stop working. Its current password, if any, keeps
    working until the owner sets a new one."""
    staff_id = req.params["staff_id"]
    lifetime = timedelta(hours=req.ctx.settings.server.password_link_hours)
    async with writing(req) as work:
        staff = await work.load(get_staff, staff_id, "staff member")
        if not staff.active:
            raise ApiError(Reason.CONFLICT, "The account is deactivated.")
        mailed = bool(staff.email)
        token, expires_at = await issue_link(
            work.conn, req.ctx.audit, staff.id, req.now, lifetime, req.staff.actor, mailed
        )
        url = link_url(mail.public_base(req.ctx, req.http), token)
        if mailed:
            await work.mail(mail.staff_password_link, staff, url, expires_at)
    return s.PasswordLinkOut(
        staff_id=staff.id, mailed=mailed, url=None if mailed else url, expires_at=expires_at
    )
