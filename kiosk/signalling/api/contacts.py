"""Contacts of an inmate: propose (R2, R5, R3/R4), confirm, application, decision (R4, R6-R8, R13).

A contact shows its breaches (R14) so that later assessments see them.
"""

from __future__ import annotations

from kiosk.domain import policy
from kiosk.domain.access import Action
from kiosk.domain.model import Appeal, Contact, Decision
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.api.work import Work, reading, writing
from kiosk.signalling.mail import notices as mail
from kiosk.signalling.schemas import contacts as s
from kiosk.store import appeals as appeals_store
from kiosk.store import contacts as contacts_store
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


async def contact_view(work: Work, contact_id: str) -> s.ContactOut:
    """The contact as staff see it, with its decision and breaches (R14)."""
    record = await work.load(contacts_store.get_contact_record, contact_id, "contact")
    return s.ContactOut.model_validate(record)


async def load_contact(work: Work, contact_id: str) -> Contact:
    return await work.load(contacts_store.get_contact, contact_id, "contact")


def new_decision(work: Work, contact_id: str, body: s.DecisionRequest) -> Decision:
    return Decision(
        id=new_id(),
        contact_id=contact_id,
        outcome=body.outcome,
        control=body.control,
        grounds=tuple(body.grounds),
        decided_by=work.req.staff.staff_id,
        decided_at=work.req.now,
        note=body.note,
    )


async def put_in_force(
    work: Work, contact: Contact, decision: Decision, appeal: Appeal | None = None
) -> None:
    """Check the decision with the policy and put it in force, audited (R4, R6-R8, R13, R2)."""
    await get_inmate(work.conn, contact.inmate_id, for_update=True)  # R2: one count at a time
    facility = await get_facility(work.conn)
    assert facility is not None
    existing = await contacts_store.list_contacts(work.conn, contact.inmate_id)
    decided = work.check(
        policy.decide_contact(contact, decision, facility.settings, existing, appeal)
    )
    await contacts_store.insert_decision(work.conn, decision)
    await contacts_store.save_contact(work.conn, decided)
    work.tablets_changed(inmates=[contact.inmate_id])
    subjects = {"contact": contact.id, "inmate": contact.inmate_id, "decision": decision.id}
    if appeal is not None:
        subjects["appeal"] = appeal.id
    await work.audit(
        "contact.decided",
        subjects,
        {
            "outcome": decision.outcome.value,
            "control": decision.control.value,
            "grounds": [g.value for g in decision.grounds],
            "category": contact.category.value,
        },
    )


@table.route(
    "GET",
    "/inmates/{inmate_id}/contacts",
    Action.CONTACT_READ,
    summary="List an inmate's contacts",
    response=s.ContactList,
)
async def list_contacts(req: ApiRequest) -> s.ContactList:
    async with reading(req) as work:
        inmate = await work.load(get_inmate, req.params["inmate_id"], "inmate")
        records = await contacts_store.list_contact_records(work.conn, inmate.id)
    return s.ContactList(items=[s.ContactOut.model_validate(r) for r in records])


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
    async with writing(req) as work:
        inmate = await work.load(get_inmate, req.params["inmate_id"], "inmate", for_update=True)
        facility = await get_facility(work.conn)
        assert facility is not None
        existing = await contacts_store.list_contacts(work.conn, inmate.id)
        work.check(policy.propose_contact(facility.settings, inmate, existing, body.category))
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
        await contacts_store.insert_contact(work.conn, contact, req.now)
        await work.audit(
            "contact.proposed",
            {"contact": contact.id, "inmate": inmate.id},
            {"category": contact.category.value, "status": contact.status.value},
        )
        # R3: a contact cleared for visits is asked by e-mail to confirm wish and address.
        await work.mail(mail.contact_proposed, contact, mail.public_base(req.ctx, req.http))
        return await contact_view(work, contact.id)


@table.route(
    "GET",
    "/contacts/{contact_id}",
    Action.CONTACT_READ,
    summary="Read a contact, with its decision and breaches",
    response=s.ContactOut,
)
async def get_contact(req: ApiRequest) -> s.ContactOut:
    async with reading(req) as work:
        return await contact_view(work, req.params["contact_id"])


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
    async with writing(req) as work:
        contact = await load_contact(work, req.params["contact_id"])
        if changes:
            await contacts_store.update_contact(work.conn, contact.id, changes)
            work.tablets_changed(inmates=[contact.inmate_id])
            await work.audit(
                "contact.updated",
                {"contact": contact.id, "inmate": contact.inmate_id},
                {"fields": sorted(changes)},
            )
        return await contact_view(work, contact.id)


@table.route(
    "POST",
    "/contacts/{contact_id}/email-confirmation",
    Action.CONTACT_WRITE,
    summary="Record that a cleared visitor confirmed the wish to call and the address (R3)",
    response=s.ContactOut,
    refusals=(Reason.CONTACT_NOT_PENDING,),
)
async def confirm_email(req: ApiRequest) -> s.ContactOut:
    async with writing(req) as work:
        contact = await load_contact(work, req.params["contact_id"])
        await contacts_store.save_contact(work.conn, work.check(policy.confirm_email(contact)))
        await work.audit(
            "contact.email_confirmed", {"contact": contact.id, "inmate": contact.inmate_id}
        )
        return await contact_view(work, contact.id)


@table.route(
    "POST",
    "/contacts/{contact_id}/application",
    Action.CONTACT_WRITE,
    summary="Record that the visit application arrived (R4)",
    response=s.ContactOut,
    refusals=(Reason.CONTACT_NOT_PENDING,),
)
async def receive_application(req: ApiRequest) -> s.ContactOut:
    async with writing(req) as work:
        contact = await load_contact(work, req.params["contact_id"])
        received = work.check(policy.receive_application(contact))
        await contacts_store.save_contact(work.conn, received)
        await work.audit(
            "contact.application_received", {"contact": contact.id, "inmate": contact.inmate_id}
        )
        await work.mail(mail.application_recorded, received)  # R4: a receipt to the applicant
        return await contact_view(work, contact.id)


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
    async with writing(req) as work:
        contact = await load_contact(work, req.params["contact_id"])
        await put_in_force(work, contact, new_decision(work, contact.id, body))
        return await contact_view(work, contact.id)


@table.route(
    "GET",
    "/contacts/{contact_id}/appeals",
    Action.APPEAL_READ,
    summary="List the appeals of a contact",
    response=s.AppealList,
)
async def list_appeals(req: ApiRequest) -> s.AppealList:
    async with reading(req) as work:
        contact = await load_contact(work, req.params["contact_id"])
        appeals = await appeals_store.list_appeals(work.conn, contact.id)
    return s.AppealList(items=[s.AppealOut.model_validate(a) for a in appeals])


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
    async with writing(req) as work:
        contact = await load_contact(work, req.params["contact_id"])
        pending = await appeals_store.list_appeals(work.conn, contact.id)
        appeal = work.check(
            policy.file_appeal(
                contact, pending, appeal_id=new_id(), by=body.by, text=body.text, now=req.now
            )
        )
        await appeals_store.insert_appeal(work.conn, appeal)
        await work.audit(
            "appeal.filed",
            {"appeal": appeal.id, "contact": contact.id, "decision": appeal.decision_id},
            {"by": appeal.by.value},
        )
    return s.AppealOut.model_validate(appeal)


@table.route(
    "GET",
    "/appeals/{appeal_id}",
    Action.APPEAL_READ,
    summary="Read an appeal",
    response=s.AppealOut,
)
async def get_appeal(req: ApiRequest) -> s.AppealOut:
    async with reading(req) as work:
        appeal = await work.load(appeals_store.get_appeal, req.params["appeal_id"], "appeal")
    return s.AppealOut.model_validate(appeal)


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
    async with writing(req) as work:
        appeal = await work.load(appeals_store.get_appeal, req.params["appeal_id"], "appeal")
        changed = None
        if body.decision is not None:  # R8: the decision is changed to this one
            changed = new_decision(work, appeal.contact_id, body.decision)
        decided = work.check(policy.decide_appeal(appeal, changed, req.now))
        if changed is not None:
            contact = await load_contact(work, appeal.contact_id)
            await put_in_force(work, contact, changed, appeal)
        await appeals_store.close_appeal(work.conn, decided)
        await work.audit(
            "appeal.decided",
            {"appeal": appeal.id, "contact": appeal.contact_id},
            {"result": decided.state.value},
        )
    return s.AppealOut.model_validate(decided)
