"""Inmates: list, register, read, update (name, remand, minor, active)."""

from __future__ import annotations

from kiosk.domain.access import Action
from kiosk.domain.model import Inmate
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, not_found
from kiosk.signalling.api.views import inmate_out
from kiosk.store import inmates as inmates_store
from kiosk.store.db import write_transaction
from kiosk.store.facility import get_facility
from kiosk.store.ids import new_id
from kiosk.store.inmates import insert_inmate

table = OperationTable("inmates")


@table.route(
    "GET",
    "/inmates",
    Action.INMATE_READ,
    summary="List inmates",
    query=s.InmateListQuery,
    response=s.InmateList,
)
async def list_inmates(req: ApiRequest) -> s.InmateList:
    query = req.query_as(s.InmateListQuery)
    async with req.ctx.engine.connect() as conn:
        inmates = await inmates_store.list_inmates(conn, active=query.active)
    return s.InmateList(items=[inmate_out(i) for i in inmates])


@table.route(
    "POST",
    "/inmates",
    Action.INMATE_WRITE,
    summary="Register an inmate",
    body=s.InmateCreate,
    response=s.InmateOut,
    status=201,
    refusals=(Reason.CONFLICT,),
)
async def create_inmate(req: ApiRequest) -> s.InmateOut:
    body = req.body_as(s.InmateCreate)
    async with write_transaction(req.ctx.engine) as conn:
        facility = await get_facility(conn)
        if facility is None:
            raise ApiError(Reason.CONFLICT, "No facility is set up.")
        inmate = Inmate(
            id=new_id(),
            facility_id=facility.id,
            name=body.name,
            remand=body.remand,
            minor=body.minor,
        )
        await insert_inmate(conn, inmate, req.now)
        await req.ctx.audit.append(
            req.staff.actor,
            "inmate.created",
            {"inmate": inmate.id},
            {"remand": inmate.remand, "minor": inmate.minor},
            conn=conn,
        )
    return inmate_out(inmate)


@table.route(
    "GET",
    "/inmates/{inmate_id}",
    Action.INMATE_READ,
    summary="Read an inmate",
    response=s.InmateOut,
)
async def get_inmate(req: ApiRequest) -> s.InmateOut:
    async with req.ctx.engine.connect() as conn:
        inmate = await inmates_store.get_inmate(conn, req.params["inmate_id"])
    if inmate is None:
        raise not_found("inmate")
    return inmate_out(inmate)


@table.route(
    "PATCH",
    "/inmates/{inmate_id}",
    Action.INMATE_WRITE,
    summary="Update an inmate (name, remand, minor, active); omitted fields stay",
    body=s.InmateUpdate,
    response=s.InmateOut,
)
async def update_inmate(req: ApiRequest) -> s.InmateOut:
    body = req.body_as(s.InmateUpdate)
    changes = body.model_dump(exclude_none=True)
    async with write_transaction(req.ctx.engine) as conn:
        inmate_id = req.params["inmate_id"]
        if await inmates_store.get_inmate(conn, inmate_id, for_update=True) is None:
            raise not_found("inmate")
        if changes:
            await inmates_store.update_inmate(conn, inmate_id, changes)
            # Which fields changed, not their values: names stay out of the chain.
            await req.ctx.audit.append(
                req.staff.actor,
                "inmate.updated",
                {"inmate": inmate_id},
                {"fields": sorted(changes), **{k: v for k, v in changes.items() if k != "name"}},
                conn=conn,
            )
        inmate = await inmates_store.get_inmate(conn, inmate_id)
    assert inmate is not None
    await req.ctx.tablets_changed(inmates=[inmate_id])
    return inmate_out(inmate)
