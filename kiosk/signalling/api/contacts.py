"""Contacts of an inmate: propose (R2, R5, R3/R4), confirm, application, decision (R4, R6-R8, R13).

A contact shows its breaches (R14) so that later assessments see them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain import policy
from kiosk.domain.access import Action
from kiosk.domain.model import (
    Appeal,
    AppealState,
    Contact,
    ContactStatus,
    Decision,
)
from kiosk.domain.reasons import Reason
from kiosk.signalling import schemas as s
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, not_found, refuse
from kiosk.signalling.api.views import appeal_out, contact_out
from kiosk.signalling.mail import notices as mail
from kiosk.store import appeals as appeals_store
from kiosk.store import contacts as contacts_store
from kiosk.store.appeals import close_appeal, insert_appeal
from kiosk.store.contacts import insert_contact, insert_decision, list_breaches
from kiosk.store.db import write_transaction
from kiosk.store.facility import get_facility
from kiosk.store.ids import new_id
from kiosk.store.inmates import get_inmate

table = OperationTable("contacts")

DECISION_REFUSALS = (
    Reason.CONTACT_NOT_PENDING,
    Reason.EMAIL_NOT_CONFIRMED,
    Reason.APPLICATION_MISSING,
    Reason.PRIVILEGED_NO_CONTROL,
    Reason.CATEGORY_NOT_CONTROLLABLE,
    Reason.GROUNDS_REQUIRED,
    Reason.CONTACT_LIMIT_REACHED,
    Reason.APPEAL_NOT_PENDING,
)


async def contact_view(conn: AsyncConnection, contact_id: str) -> s.ContactOut:
    contact = await contacts_store.get_contact(conn, contact_id)
    if contact is None:
        raise not_found("contact")
    return contact_out(contact, await list_breaches(conn, contact_id))


async def load_contact(conn: AsyncConnection, contact_id: str) -> Contact:
    contact = await contacts_store.get_contact(conn, contact_id)
    if contact is None:
        raise not_found("contact")
    return contact


async def record_decision(
    req: ApiRequest,
    conn: AsyncConnection,
    contact: Contact,
    body: s.DecisionRequest,
    appeal: Appeal | None = None,
) -> Decision:
    """Check the decision with the policy and put it in force, audited (R4, R6-R8, R13, R2)."""
    facility = await get_facility(conn)
    assert facility is not None
    existing = await contacts_store.list_contacts(conn, contact.inmate_id)
    verdict = policy.decide_contact(
        contact, body.outcome, body.control, body.grounds, facility.settings, existing, appeal
    )
    if isinstance(verdict, policy.Deny):
        raise refuse(verdict)
    decision = Decision(
        id=new_id(),
        contact_id=contact.id,
        outcome=body.outcome,
        control=body.control,
        grounds=tuple(body.grounds),
        decided_by=req.staff.staff_id,
        decided_at=req.now,
        note=body.note,
    )
    await insert_decision(conn, decision)
    subjects = {"contact": contact.id, "inmate": contact.inmate_id, "decision": decision.id}
    if appeal is not None:
        subjects["appeal"] = appeal.id
    await req.ctx.audit.append(
        req.staff.actor,
        "contact.decided",
        subjects,
        {
            "outcome": decision.outcome.value,
            "control": decision.control.value,
            "grounds": [g.value for g in decision.grounds],
            "category": contact.category.value,
        },
        conn=conn,
    )
    return decision


@table.route(
    "GET",
    "/inmates/{inmate_id}/contacts",
    Action.CONTACT_READ,
    summary="List an inmate's contacts",
    response=s.ContactList,
)
async def list_contacts(req: ApiRequest) -> s.ContactList:
    async with req.ctx.engine.connect() as conn:
        inmate_id = req.params["inmate_id"]
        if await get_inmate(conn, inmate_id) is None:
            raise not_found("inmate")
        contacts = await contacts_store.list_contacts(conn, inmate_id)
        items = [contact_out(c, await list_breaches(conn, c.id)) for c in contacts]
    return s.ContactList(items=items)


@table.route(
    "POST",
    "/inmates/{inmate_id}/contacts",
    Action.CONTACT_WRITE,
    summary="Propose a contact (R2 limit, R5 category; R3 cleared or R4 application)",
    body=s.ContactPropose,
    response=s.ContactOut,
    status=201,
    refusals=(Reason.CONTACT_LIMIT_REACHED, Reason.INMATE_INACTIVE),
)
async def propose_contact(req: ApiRequest) -> s.ContactOut:
    body = req.body_as(s.ContactPropose)
    async with write_transaction(req.ctx.engine) as conn:
        inmate = await get_inmate(conn, req.params["inmate_id"], for_update=True)
        if inmate is None:
            raise not_found("inmate")
        facility = await get_facility(conn)
        assert facility is not None
        existing = await contacts_store.list_contacts(conn, inmate.id)
        verdict = policy.propose_contact(facility.settings, inmate, existing, body.category)
        if isinstance(verdict, policy.Deny):
            raise refuse(verdict)
        contact = Contact(
            id=new_id(),
            inmate_id=inmate.id,
            name=body.name,
            email=body.email,
            category=body.category,
            relation=body.relation,
            status=policy.initial_status(body.cleared_for_visits),
            cleared_for_visits=body.cleared_for_visits,
        )
        await insert_contact(conn, contact, req.now)
        await req.ctx.audit.append(
            req.staff.actor,
            "contact.proposed",
            {"contact": contact.id, "inmate": inmate.id},
            {"category": contact.category.value, "status": contact.status.value},
            conn=conn,
        )
        view = await contact_view(conn, contact.id)
    # R3: a contact cleared for visits is asked by e-mail to confirm wish and address.
    await mail.contact_proposed(req.ctx, contact, mail.public_base(req.ctx, req.http))
    return view


@table.route(
    "GET",
    "/contacts/{contact_id}",
    Action.CONTACT_READ,
    summary="Read a contact, with its decision and breaches",
    response=s.ContactOut,
)
async def get_contact(req: ApiRequest) -> s.ContactOut:
    async with req.ctx.engine.connect() as conn:
        return await contact_view(conn, req.params["contact_id"])


@table.route(
    "PATCH",
    "/contacts/{contact_id}",
    Action.CONTACT_WRITE,
    summary="Update a contact's name, e-mail or relation; omitted fields stay",
    body=s.ContactUpdate,
    response=s.ContactOut,
)
async def update_contact(req: ApiRequest) -> s.ContactOut:
    body = req.body_as(s.ContactUpdate)
    changes = body.model_dump(exclude_none=True, mode="json")
    async with write_transaction(req.ctx.engine) as conn:
        contact = await load_contact(conn, req.params["contact_id"])
        if changes:
            await contacts_store.update_contact(conn, contact.id, changes)
            await req.ctx.audit.append(
                req.staff.actor,
                "contact.updated",
                {"contact": contact.id, "inmate": contact.inmate_id},
                {"fields": sorted(changes)},
                conn=conn,
            )
        view = await contact_view(conn, contact.id)
    await req.ctx.tablets_changed(inmates=[contact.inmate_id])
    return view


@table.route(
    "POST",
    "/contacts/{contact_id}/email-confirmation",
    Action.CONTACT_WRITE,
    summary="Record that a cleared visitor confirmed the wish to call and the address (R3)",
    response=s.ContactOut,
    refusals=(Reason.CONTACT_NOT_PENDING,),
)
async def confirm_email(req: ApiRequest) -> s.ContactOut:
    async with write_transaction(req.ctx.engine) as conn:
        contact = await load_contact(conn, req.params["contact_id"])
        verdict = policy.confirm_email(contact)
        if isinstance(verdict, policy.Deny):
            raise refuse(verdict)
        await contacts_store.update_contact(
            conn,
            contact.id,
            {"email_confirmed": True, "status": ContactStatus.AWAITING_ASSESSMENT.value},
        )
        await req.ctx.audit.append(
            req.staff.actor,
            "contact.email_confirmed",
            {"contact": contact.id, "inmate": contact.inmate_id},
            conn=conn,
        )
        return await contact_view(conn, contact.id)


@table.route(
    "POST",
    "/contacts/{contact_id}/application",
    Action.CONTACT_WRITE,
    summary="Record that the visit application arrived (R4)",
    response=s.ContactOut,
    refusals=(Reason.CONTACT_NOT_PENDING,),
)
async def receive_application(req: ApiRequest) -> s.ContactOut:
    async with write_transaction(req.ctx.engine) as conn:
        contact = await load_contact(conn, req.params["contact_id"])
        verdict = policy.receive_application(contact)
        if isinstance(verdict, policy.Deny):
            raise refuse(verdict)
        await contacts_store.update_contact(
            conn,
            contact.id,
            {"application_received": True, "status": ContactStatus.AWAITING_ASSESSMENT.value},
        )
        await req.ctx.audit.append(
            req.staff.actor,
            "contact.application_received",
            {"contact": contact.id, "inmate": contact.inmate_id},
            conn=conn,
        )
        view = await contact_view(conn, contact.id)
    await mail.application_recorded(req.ctx, contact)  # R4: a receipt to the applicant
    return view


@table.route(
    "POST",
    "/contacts/{contact_id}/decision",
    Action.CONTACT_DECIDE,
    summary="Approve or refuse a contact, with control level and grounds (R4, R6-R8, R13)",
    body=s.DecisionRequest,
    response=s.ContactOut,
    status=201,
    refusals=DECISION_REFUSALS,
)
async def decide_contact(req: ApiRequest) -> s.ContactOut:
    """A decision already in force changes only through an appeal (R8)."""
    body = req.body_as(s.DecisionRequest)
    async with write_transaction(req.ctx.engine) as conn:
        contact = await load_contact(conn, req.params["contact_id"])
        await get_inmate(conn, contact.inmate_id, for_update=True)  # R2 count
        await record_decision(req, conn, contact, body)
        view = await contact_view(conn, contact.id)
    await req.ctx.tablets_changed(inmates=[contact.inmate_id])
    return view


@table.route(
    "GET",
    "/contacts/{contact_id}/appeals",
    Action.APPEAL_READ,
    summary="List the appeals of a contact",
    response=s.AppealList,
)
async def list_appeals(req: ApiRequest) -> s.AppealList:
    async with req.ctx.engine.connect() as conn:
        contact = await load_contact(conn, req.params["contact_id"])
        records = await appeals_store.list_appeals(conn, contact.id)
    return s.AppealList(items=[appeal_out(r) for r in records])


@table.route(
    "POST",
    "/contacts/{contact_id}/appeals",
    Action.APPEAL_FILE,
    summary="File an appeal against the decision in force (R8)",
    body=s.AppealCreate,
    response=s.AppealOut,
    status=201,
    refusals=(Reason.CONTACT_NOT_PENDING, Reason.CONFLICT),
)
async def file_appeal(req: ApiRequest) -> s.AppealOut:
    body = req.body_as(s.AppealCreate)
    async with write_transaction(req.ctx.engine) as conn:
        contact = await load_contact(conn, req.params["contact_id"])
        pending = [r.appeal for r in await appeals_store.list_appeals(conn, contact.id)]
        verdict = policy.file_appeal(contact, pending)
        if isinstance(verdict, policy.Deny):
            raise refuse(verdict)
        assert contact.decision is not None
        appeal = Appeal(
            id=new_id(),
            contact_id=contact.id,
            decision_id=contact.decision.id,
            by=body.by,
            filed_at=req.now,
            text=body.text,
        )
        await insert_appeal(conn, appeal)
        await req.ctx.audit.append(
            req.staff.actor,
            "appeal.filed",
            {"appeal": appeal.id, "contact": contact.id, "decision": appeal.decision_id},
            {"by": appeal.by.value},
            conn=conn,
        )
        record = await appeals_store.get_appeal(conn, appeal.id)
    assert record is not None
    return appeal_out(record)


@table.route(
    "GET",
    "/appeals/{appeal_id}",
    Action.APPEAL_READ,
    summary="Read an appeal",
    response=s.AppealOut,
)
async def get_appeal(req: ApiRequest) -> s.AppealOut:
    async with req.ctx.engine.connect() as conn:
        record = await appeals_store.get_appeal(conn, req.params["appeal_id"])
    if record is None:
        raise not_found("appeal")
    return appeal_out(record)


@table.route(
    "POST",
    "/appeals/{appeal_id}/decision",
    Action.APPEAL_DECIDE,
    summary="Decide an appeal: the decision is upheld, or changed to the one given (R8)",
    body=s.AppealDecisionRequest,
    response=s.AppealOut,
    refusals=DECISION_REFUSALS,
)
async def decide_appeal(req: ApiRequest) -> s.AppealOut:
    body = req.body_as(s.AppealDecisionRequest)
    if (body.result == "changed") != (body.decision is not None):
        raise ApiError(
            Reason.INVALID_REQUEST,
            "body.decision: required when the result is changed, and only then",
        )
    async with write_transaction(req.ctx.engine) as conn:
        record = await appeals_store.get_appeal(conn, req.params["appeal_id"])
        if record is None:
            raise not_found("appeal")
        appeal = record.appeal
        verdict = policy.decide_appeal(appeal)
        if isinstance(verdict, policy.Deny):
            raise refuse(verdict)
        result_id: str | None = None
        if body.decision is not None:
            contact = await load_contact(conn, appeal.contact_id)
            await get_inmate(conn, contact.inmate_id, for_update=True)
            decision = await record_decision(req, conn, contact, body.decision, appeal)
            result_id = decision.id
            state = AppealState.CHANGED
        else:
            state = AppealState.UPHELD
        await close_appeal(conn, appeal.id, state, result_id, req.now)
        await req.ctx.audit.append(
            req.staff.actor,
            "appeal.decided",
            {"appeal": appeal.id, "contact": appeal.contact_id},
            {"result": state.value},
            conn=conn,
        )
        updated = await appeals_store.get_appeal(conn, appeal.id)
    assert updated is not None
    if body.decision is not None:
        await req.ctx.tablets_changed(inmates=[contact.inmate_id])
    return appeal_out(updated)
