"""Staff accounts: list, add, change (role, active, password). Admins only.

An admin cannot change their own role or deactivate themselves, so that the
last admin never locks everybody out by a slip. A changed role, a
deactivation or a new password ends the account's sessions; bearer tokens of
an inactive account stop working at once.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from kiosk.domain.access import Action
from kiosk.domain.reasons import Reason
from kiosk.signalling import auth
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import reading, writing
from kiosk.signalling.schemas import staff as s
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
    body = req.body_as(s.StaffCreate)
    password_hash = await auth.hash_password_off_loop(body.password)  # before the write lock
    try:
        async with writing(req) as work:
            if await get_staff_by_username(work.conn, body.username) is not None:
                raise ApiError(Reason.CONFLICT, "That username is taken.")
            staff_id = await insert_staff(
                work.conn, body.username, body.display_name, password_hash, body.role, req.now
            )
            await work.audit("staff.added", {"staff": staff_id}, {"role": body.role.value})
            staff = await get_staff(work.conn, staff_id)  # just written: never None
    except IntegrityError:
        raise ApiError(Reason.CONFLICT, "That username is taken.") from None
    return s.StaffAccount.model_validate(staff)


@table.route(
    "PATCH",
    "/staff/{staff_id}",
    Action.STAFF_WRITE,
    summary="Change a staff account (display name, role, active, password); omitted stay",
    body=s.StaffUpdate,
    response=s.StaffAccount,
    refusals=(Reason.CONFLICT,),
)
async def update_staff(req: ApiRequest) -> s.StaffAccount:
    body = req.body_as(s.StaffUpdate)
    staff_id = req.params["staff_id"]
    changes = body.model_dump(exclude_none=True, exclude={"password"}, mode="json")
    if staff_id == req.staff.staff_id and ("role" in changes or changes.get("active") is False):
        raise ApiError(Reason.CONFLICT, "You cannot change your own role or deactivate yourself.")
    if body.password is not None:
        changes["password_hash"] = await auth.hash_password_off_loop(body.password)
    async with writing(req) as work:
        await work.load(get_staff, staff_id, "staff member")
        if changes:
            await staff_store.update_staff(work.conn, staff_id, changes)
            if changes.keys() & {"role", "active", "password_hash"}:
                await delete_staff_sessions(work.conn, staff_id)
            details = {k: v for k, v in changes.items() if k in ("role", "active")}
            if "password_hash" in changes:
                details["password_changed"] = True
            await work.audit("staff.updated", {"staff": staff_id}, details)
        staff = await work.load(get_staff, staff_id, "staff member")
    return s.StaffAccount.model_validate(staff)
