"""Inmates: list, register, read, update (name, remand, minor, active)."""

from __future__ import annotations

from dataclasses import replace

from kiosk.domain.access import Action
from kiosk.domain.model import Inmate
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import reading, writing
from kiosk.signalling.schemas import inmates as s
from kiosk.store import inmates as inmates_store
from kiosk.store.facility import get_facility
from kiosk.store.ids import new_id

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
    async with reading(req) as work:
        inmates = await inmates_store.list_inmates(work.conn, active=query.active)
    return s.InmateList(items=[s.InmateOut.model_validate(i) for i in inmates])


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
    async with writing(req) as work:
        facility = await get_facility(work.conn)
        if facility is None:
            raise ApiError(Reason.CONFLICT, "No facility is set up.")
        inmate = Inmate(
            id=new_id(),
            facility_id=facility.id,
            name=body.name,
            remand=body.remand,
            minor=body.minor,
        )
        await inmates_store.insert_inmate(work.conn, inmate, req.now)
        await work.audit(
            "inmate.created",
            {"inmate": inmate.id},
            {"remand": inmate.remand, "minor": inmate.minor},
        )
    return s.InmateOut.model_validate(inmate)


@table.route(
    "GET",
    "/inmates/{inmate_id}",
    Action.INMATE_READ,
    summary="Read an inmate",
    response=s.InmateOut,
)
async def get_inmate(req: ApiRequest) -> s.InmateOut:
    async with reading(req) as work:
        inmate = await work.load(inmates_store.get_inmate, req.params["inmate_id"], "inmate")
    return s.InmateOut.model_validate(inmate)


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
    async with writing(req) as work:
        inmate = await work.load(
            inmates_store.get_inmate, req.params["inmate_id"], "inmate", for_update=True
        )
        if changes:
            inmate = replace(inmate, **changes)
            await inmates_store.update_inmate(work.conn, inmate.id, changes)
            work.tablets_changed(inmates=[inmate.id])
            # Which fields changed, not their values: names stay out of the chain.
            await work.audit(
                "inmate.updated",
                {"inmate": inmate.id},
                {"fields": sorted(changes), **{k: v for k, v in changes.items() if k != "name"}},
            )
    return s.InmateOut.model_validate(inmate)
