"""Builders and hypothesis strategies for the rule core's tests.

Builders give a valid value with sensible defaults; a test overrides only the
fields its rule is about, so each test reads like the rule it checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from hypothesis import strategies as st

from kiosk.domain.model import (
    Appeal,
    AppealBy,
    Booking,
    Category,
    Contact,
    ContactStatus,
    ControlLevel,
    Decision,
    Device,
    FacilitySettings,
    Ground,
    Initiation,
    Inmate,
    LocationKind,
    MediaKind,
    Outcome,
    PoliceClearance,
    Relation,
)
from kiosk.domain.policy import BookingContext, BookingRequest, CallContext, CallFacts

# Monday 2 March 2026, 09:00 UTC: a week with room on both sides.
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

_ids = count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def inmate(**kw: Any) -> Inmate:
    values: dict[str, Any] = {"id": "inmate-1", "facility_id": "fac-1", "name": "Ola"}
    values.update(kw)
    return Inmate(**values)


def decision(
    contact_id: str,
    outcome: Outcome = Outcome.APPROVE,
    control: ControlLevel = ControlLevel.NONE,
    grounds: tuple[Ground, ...] = (),
) -> Decision:
    return Decision(
        id=new_id("decision"),
        contact_id=contact_id,
        outcome=outcome,
        control=control,
        grounds=grounds,
        decided_by="staff-1",
        decided_at=MONDAY - timedelta(days=7),
    )


def contact(**kw: Any) -> Contact:
    """A contact; pending (awaiting assessment) unless told otherwise."""
    values: dict[str, Any] = {
        "id": new_id("contact"),
        "inmate_id": "inmate-1",
        "name": "Kari",
        "email": "kari@example.org",
        "category": Category.PERSONAL,
        "relation": Relation.PARTNER,
        "status": ContactStatus.AWAITING_ASSESSMENT,
    }
    values.update(kw)
    return Contact(**values)


def approved(
    category: Category = Category.PERSONAL,
    control: ControlLevel = ControlLevel.NONE,
    **kw: Any,
) -> Contact:
    """An approved contact with a decision in force at ``control``."""
    cid = kw.pop("id", new_id("contact"))
    grounds = (Ground.THREATS,) if control.controlled else ()
    return contact(
        id=cid,
        category=category,
        status=ContactStatus.APPROVED,
        decision=decision(cid, control=control, grounds=grounds),
        **kw,
    )


def refused(**kw: Any) -> Contact:
    cid = kw.pop("id", new_id("contact"))
    return contact(
        id=cid, status=ContactStatus.REFUSED, decision=decision(cid, Outcome.REFUSE), **kw
    )


def appeal(c: Contact, **kw: Any) -> Appeal:
    assert c.decision is not None
    values: dict[str, Any] = {
        "id": new_id("appeal"),
        "contact_id": c.id,
        "decision_id": c.decision.id,
        "by": AppealBy.INMATE,
        "filed_at": MONDAY,
        "text": "",
    }
    values.update(kw)
    return Appeal(**values)


def booking(c: Contact, start: datetime, minutes: int = 30, **kw: Any) -> Booking:
    values: dict[str, Any] = {
        "id": new_id("booking"),
        "inmate_id": c.inmate_id,
        "contact_id": c.id,
        "start": start,
        "end": start + minutes * MINUTE,
        "location_kind": LocationKind.CELL,
        "location": "cell-12",
        "initiation": Initiation.STAFF,
        "control": c.control,
    }
    values.update(kw)
    return Booking(**values)


def request(c: Contact, start: datetime, minutes: int = 30, **kw: Any) -> BookingRequest:
    values: dict[str, Any] = {
        "inmate": inmate(id=c.inmate_id),
        "contact": c,
        "start": start,
        "end": start + minutes * MINUTE,
        "location_kind": LocationKind.CELL,
        "location": "cell-12",
        "initiation": Initiation.STAFF,
        "police_clearance": None,
    }
    values.update(kw)
    return BookingRequest(**values)


def context(
    settings: FacilitySettings | None = None,
    overlapping: tuple[Booking, ...] = (),
    week: tuple[Booking, ...] = (),
    categories: dict[str, Category] | None = None,
) -> BookingContext:
    return BookingContext(
        settings=settings or FacilitySettings(),
        overlapping=overlapping,
        week_bookings=week,
        categories=categories or {},
    )


def device(**kw: Any) -> Device:
    values: dict[str, Any] = {"id": "device-1", "serial": "SN1", "inmate_id": "inmate-1"}
    values.update(kw)
    return Device(**values)


def clearance(at: datetime = MONDAY - timedelta(hours=1)) -> PoliceClearance:
    return PoliceClearance(cleared_by="Oslo politidistrikt, duty officer", cleared_at=at)


_CONTEXT_ONLY = ("inmate_has_live_call", "device_has_live_call", "purpose")


def dial_context(c: Contact, b: Booking, **kw: Any) -> CallContext:
    """The facts of dialling ``b`` to ``c``; ``kw`` overrides facts and the caller's flags."""
    facts: dict[str, Any] = {
        "inmate": inmate(id=c.inmate_id),
        "contact": c,
        "booking": b,
        "device": device(inmate_id=c.inmate_id),
        "settings": FacilitySettings(),
        "week_bookings": (b,),
        "categories": {c.id: c.category},
    }
    facts.update({k: v for k, v in kw.items() if k not in _CONTEXT_ONLY})
    flags: dict[str, Any] = {"inmate_has_live_call": False, "device_has_live_call": False}
    flags.update({k: v for k, v in kw.items() if k in _CONTEXT_ONLY})
    return CallContext(CallFacts(**facts), **flags)


# --- hypothesis strategies ---------------------------------------------------------

categories = st.sampled_from(list(Category))
control_levels = st.sampled_from(list(ControlLevel))
media_kind_sets = st.frozensets(st.sampled_from(list(MediaKind)))
relations = st.sampled_from(list(Relation))
grounds = st.lists(st.sampled_from(list(Ground)), max_size=3).map(tuple)

# Moments within a few weeks of MONDAY, to the minute.
moments = st.integers(min_value=-3 * 24 * 60, max_value=21 * 24 * 60).map(
    lambda m: MONDAY + m * MINUTE
)
durations = st.integers(min_value=1, max_value=180)
