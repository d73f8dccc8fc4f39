"""Domain values to response bodies: the one mapping the resource modules share."""

from __future__ import annotations

from kiosk.domain.model import Booking, Closure, Contact, Decision, Facility, Inmate, Restriction
from kiosk.signalling import schemas as s
from kiosk.store.appeals import AppealRecord
from kiosk.store.calls import CallRecord
from kiosk.store.contacts import BreachRecord
from kiosk.store.devices import DeviceRecord


def inmate_out(inmate: Inmate) -> s.InmateOut:
    return s.InmateOut(
        id=inmate.id,
        name=inmate.name,
        remand=inmate.remand,
        minor=inmate.minor,
        active=inmate.active,
    )


def decision_out(decision: Decision) -> s.DecisionOut:
    return s.DecisionOut(
        id=decision.id,
        outcome=decision.outcome,
        control=decision.control,
        grounds=list(decision.grounds),
        decided_by=decision.decided_by,
        decided_at=decision.decided_at,
        note=decision.note,
    )


def contact_out(contact: Contact, breaches: list[BreachRecord] | None = None) -> s.ContactOut:
    return s.ContactOut(
        id=contact.id,
        inmate_id=contact.inmate_id,
        name=contact.name,
        email=contact.email,
        category=contact.category,
        relation=contact.relation,
        status=contact.status,
        cleared_for_visits=contact.cleared_for_visits,
        email_confirmed=contact.email_confirmed,
        application_received=contact.application_received,
        control=contact.control,
        decision=decision_out(contact.decision) if contact.decision else None,
        breaches=contact.breaches,
        breach_records=[
            s.BreachOut(
                id=b.id,
                call_id=b.call_id,
                recorded_by=b.recorded_by,
                recorded_at=b.recorded_at,
                note=b.note,
            )
            for b in breaches or []
        ],
    )


def appeal_out(record: AppealRecord) -> s.AppealOut:
    a = record.appeal
    return s.AppealOut(
        id=a.id,
        contact_id=a.contact_id,
        decision_id=a.decision_id,
        by=a.by,
        filed_at=a.filed_at,
        text=a.text,
        state=a.state,
        result_decision_id=record.result_decision_id,
        decided_at=record.decided_at,
    )


def booking_out(booking: Booking) -> s.BookingOut:
    clearance = booking.police_clearance
    return s.BookingOut(
        id=booking.id,
        inmate_id=booking.inmate_id,
        contact_id=booking.contact_id,
        start=booking.start,
        end=booking.end,
        location_kind=booking.location_kind,
        location=booking.location,
        initiation=booking.initiation,
        state=booking.state,
        control=booking.control,
        police_clearance=(
            s.PoliceClearanceOut(cleared_by=clearance.cleared_by, cleared_at=clearance.cleared_at)
            if clearance
            else None
        ),
    )


def closure_out(c: Closure) -> s.ClosureOut:
    return s.ClosureOut(
        id=c.id, start=c.start, end=c.end, order_deadline=c.order_deadline, note=c.note
    )


def restriction_out(r: Restriction) -> s.RestrictionOut:
    return s.RestrictionOut(
        id=r.id, start=r.start, end=r.end, kind=r.kind, limit_minutes=r.limit_minutes, note=r.note
    )


def facility_out(f: Facility) -> s.FacilityOut:
    st = f.settings
    return s.FacilityOut(
        id=f.id,
        name=f.name,
        timezone=f.timezone,
        contact_limit=st.contact_limit,
        weekly_quota_minutes=st.weekly_quota_minutes,
        parent_weekly_quota_minutes=st.parent_weekly_quota_minutes,
        tablets=st.tablets,
        rooms=list(st.rooms),
        monitoring_staff=st.monitoring_staff,
        max_call_minutes=st.max_call_minutes,
        closures=[closure_out(c) for c in st.closures],
        restrictions=[restriction_out(r) for r in st.restrictions],
    )


def device_out(record: DeviceRecord) -> s.DeviceOut:
    d = record.device
    return s.DeviceOut(
        id=d.id,
        serial=d.serial,
        model=record.model,
        inmate_id=d.inmate_id,
        revoked=d.revoked,
        certificate_serial=d.certificate_serial,
        registered_at=record.registered_at,
        last_seen_at=record.last_seen_at,
    )


def call_out(c: CallRecord) -> s.CallOut:
    return s.CallOut(
        id=c.id,
        booking_id=c.booking_id,
        device_id=c.device_id,
        inmate_id=c.inmate_id,
        contact_id=c.contact_id,
        category=c.category,  # type: ignore[arg-type]
        route=c.route,  # type: ignore[arg-type]
        control=c.control,  # type: ignore[arg-type]
        state=c.state,
        not_before=c.not_before,
        not_after=c.not_after,
        created_at=c.created_at,
        connected_at=c.connected_at,
        ended_at=c.ended_at,
        end_reason=c.end_reason,
        connected_seconds=c.connected_seconds,
    )
