"""Contacts and decisions: R1-R8 and R13 (the decision side), each allowed and refused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.model import (
    Appeal,
    AppealBy,
    AppealState,
    Category,
    Contact,
    ContactStatus,
    ControlLevel,
    Decision,
    FacilitySettings,
    Ground,
    Outcome,
)
from kiosk.domain.policy import (
    ALLOW,
    Deny,
    confirm_email,
    decide_appeal,
    decide_contact,
    file_appeal,
    initial_status,
    propose_contact,
    receive_application,
)
from kiosk.domain.reasons import MESSAGES, Reason

from . import strategies as s

SETTINGS = FacilitySettings()  # contact_limit 4


def refused_for(verdict: object) -> Reason | None:
    return verdict.reason if isinstance(verdict, Deny) else None


def allowed(outcome: object) -> bool:
    """Allowed: the rule gave the new value (or ALLOW), not a refusal."""
    return not isinstance(outcome, Deny)


def test_verdicts_are_truthy_when_allowed_and_carry_a_reason_when_denied() -> None:
    assert ALLOW
    denied = Deny(Reason.CONTACT_LIMIT_REACHED)
    assert not denied
    assert denied.message == MESSAGES[Reason.CONTACT_LIMIT_REACHED]
    assert Deny(Reason.CONFLICT, "why").message == "why"


# --- R2: the limit of personal contacts ----------------------------------------------


def test_r2_allows_a_personal_contact_under_the_limit() -> None:
    existing = [s.approved(), s.contact(), s.contact()]
    assert propose_contact(SETTINGS, s.inmate(), existing, Category.PERSONAL) == ALLOW


def test_r2_refuses_a_fifth_personal_contact() -> None:
    existing = [s.approved(), s.approved(), s.contact(), s.contact()]
    verdict = propose_contact(SETTINGS, s.inmate(), existing, Category.PERSONAL)
    assert refused_for(verdict) is Reason.CONTACT_LIMIT_REACHED


def test_r2_refused_contacts_do_not_count_against_the_limit() -> None:
    existing = [s.approved(), s.approved(), s.approved(), s.refused(), s.refused()]
    assert propose_contact(SETTINGS, s.inmate(), existing, Category.PERSONAL) == ALLOW


def test_r2_other_inmates_contacts_do_not_count() -> None:
    existing = [s.approved(inmate_id="inmate-2") for _ in range(4)]
    assert propose_contact(SETTINGS, s.inmate(), existing, Category.PERSONAL) == ALLOW


@pytest.mark.parametrize("category", [c for c in Category if c is not Category.PERSONAL], ids=str)
def test_r2_official_and_privileged_contacts_never_count(category: Category) -> None:
    """R2 / R5: no limit for lawyers, police, courts or officials, even past the limit."""
    existing = [s.approved() for _ in range(4)] + [s.approved(category) for _ in range(6)]
    assert propose_contact(SETTINGS, s.inmate(), existing, category) == ALLOW


def test_r2_the_limit_is_a_facility_setting() -> None:
    existing = [s.approved(), s.approved()]
    two = FacilitySettings(contact_limit=2)
    assert refused_for(propose_contact(two, s.inmate(), existing, Category.PERSONAL)) is (
        Reason.CONTACT_LIMIT_REACHED
    )
    six = FacilitySettings(contact_limit=6)
    existing = [s.approved() for _ in range(5)]
    assert propose_contact(six, s.inmate(), existing, Category.PERSONAL) == ALLOW


def test_r1_an_inactive_inmate_proposes_no_contacts() -> None:
    verdict = propose_contact(SETTINGS, s.inmate(active=False), [], Category.OFFICIAL)
    assert refused_for(verdict) is Reason.INMATE_INACTIVE


@given(s.categories, st.lists(st.sampled_from(list(ContactStatus)), max_size=10))
def test_r2_proposal_is_refused_exactly_when_the_personal_count_is_at_the_limit(
    category: Category, statuses: list[ContactStatus]
) -> None:
    existing = [s.contact(status=st_) for st_ in statuses]
    in_use = sum(1 for st_ in statuses if st_ is not ContactStatus.REFUSED)
    verdict = propose_contact(SETTINGS, s.inmate(), existing, category)
    expect_refused = category is Category.PERSONAL and in_use >= SETTINGS.contact_limit
    assert (not verdict) == expect_refused


# --- R3 / R4: the way to an assessment ----------------------------------------------


def test_r3_a_visitor_cleared_for_visits_only_confirms_by_email() -> None:
    assert initial_status(cleared_for_visits=True) is ContactStatus.AWAITING_CONFIRMATION
    c = s.contact(status=ContactStatus.AWAITING_CONFIRMATION, cleared_for_visits=True)
    assert confirm_email(c) == replace(
        c, status=ContactStatus.AWAITING_ASSESSMENT, email_confirmed=True
    )


def test_r3_confirmation_is_refused_when_not_awaited() -> None:
    for status in ContactStatus:
        if status is ContactStatus.AWAITING_CONFIRMATION:
            continue
        assert refused_for(confirm_email(s.contact(status=status))) is Reason.CONTACT_NOT_PENDING


def test_r4_a_visitor_not_cleared_applies_first() -> None:
    assert initial_status(cleared_for_visits=False) is ContactStatus.AWAITING_APPLICATION
    c = s.contact(status=ContactStatus.AWAITING_APPLICATION)
    assert receive_application(c) == replace(
        c, status=ContactStatus.AWAITING_ASSESSMENT, application_received=True
    )


def test_r4_an_application_is_refused_when_not_awaited() -> None:
    for status in ContactStatus:
        if status is ContactStatus.AWAITING_APPLICATION:
            continue
        verdict = receive_application(s.contact(status=status))
        assert refused_for(verdict) is Reason.CONTACT_NOT_PENDING


def _decision(
    c: Contact,
    outcome: Outcome = Outcome.APPROVE,
    control: ControlLevel = ControlLevel.NONE,
    grounds: tuple[Ground, ...] = (),
) -> Decision:
    return replace(s.decision(c.id, outcome, control, grounds), decided_at=s.MONDAY)


def _decide(
    c: Contact | None = None,
    outcome: Outcome = Outcome.APPROVE,
    control: ControlLevel = ControlLevel.NONE,
    grounds: tuple[Ground, ...] = (),
    settings: FacilitySettings = SETTINGS,
    existing: tuple[Contact, ...] = (),
    **kw: Any,
) -> Contact | Deny:
    contact = c if c is not None else s.contact()
    decision = _decision(contact, outcome, control, grounds)
    return decide_contact(contact, decision, settings, existing, **kw)


def test_r4_an_assessed_contact_can_be_approved() -> None:
    assert allowed(_decide(s.contact(status=ContactStatus.AWAITING_ASSESSMENT)))


@pytest.mark.parametrize("outcome", list(Outcome), ids=str)
def test_r8_a_decision_comes_back_in_force_on_the_contact(outcome: Outcome) -> None:
    c = s.contact(status=ContactStatus.AWAITING_ASSESSMENT)
    decision = _decision(c, outcome)
    decided = decide_contact(c, decision, SETTINGS, ())
    status = ContactStatus.APPROVED if outcome is Outcome.APPROVE else ContactStatus.REFUSED
    assert decided == replace(c, status=status, decision=decision)


def test_a_decision_about_another_contact_is_refused() -> None:
    c = s.contact()
    verdict = decide_contact(c, _decision(s.contact()), SETTINGS, ())
    assert refused_for(verdict) is Reason.INVALID_REQUEST


def test_r3_approval_before_email_confirmation_is_refused() -> None:
    c = s.contact(status=ContactStatus.AWAITING_CONFIRMATION)
    assert refused_for(_decide(c)) is Reason.EMAIL_NOT_CONFIRMED


def test_r4_approval_before_the_application_is_refused() -> None:
    c = s.contact(status=ContactStatus.AWAITING_APPLICATION)
    assert refused_for(_decide(c)) is Reason.APPLICATION_MISSING


@pytest.mark.parametrize(
    "status",
    [
        ContactStatus.AWAITING_CONFIRMATION,
        ContactStatus.AWAITING_APPLICATION,
        ContactStatus.AWAITING_ASSESSMENT,
    ],
    ids=str,
)
def test_r4_refusal_is_possible_from_any_awaiting_state(status: ContactStatus) -> None:
    assert allowed(_decide(s.contact(status=status), Outcome.REFUSE))


def test_r4_a_refusal_records_no_control_level() -> None:
    verdict = _decide(s.contact(), Outcome.REFUSE, ControlLevel.SIGHT, (Ground.THREATS,))
    assert refused_for(verdict) is Reason.INVALID_REQUEST


# --- R6 / R7 / R13: the control level of a decision ---------------------------------


@pytest.mark.parametrize("category", [Category.PERSONAL, Category.OFFICIAL], ids=str)
@pytest.mark.parametrize("control", list(ControlLevel), ids=str)
def test_r6_personal_and_official_contacts_may_be_controlled(
    category: Category, control: ControlLevel
) -> None:
    c = s.contact(category=category)
    assert allowed(_decide(c, control=control, grounds=(Ground.DRUGS,)))


def test_r7_a_controlled_approval_states_its_grounds() -> None:
    verdict = _decide(s.contact(), control=ControlLevel.HEARING, grounds=())
    assert refused_for(verdict) is Reason.GROUNDS_REQUIRED
    assert allowed(_decide(s.contact(), control=ControlLevel.HEARING, grounds=(Ground.THREATS,)))


def test_r7_an_uncontrolled_approval_needs_no_grounds() -> None:
    assert allowed(_decide(s.contact(), control=ControlLevel.NONE, grounds=()))


@pytest.mark.parametrize("category", [Category.DEFENCE_COUNSEL, Category.POLICE], ids=str)
@pytest.mark.parametrize(
    "control", [c for c in ControlLevel if c is not ControlLevel.NONE], ids=str
)
def test_r13_privileged_contacts_can_never_be_controlled(
    category: Category, control: ControlLevel
) -> None:
    c = s.contact(category=category)
    for outcome in Outcome:
        verdict = _decide(c, outcome, control, grounds=(Ground.WITNESS_TAMPERING,))
        assert refused_for(verdict) is Reason.PRIVILEGED_NO_CONTROL


@pytest.mark.parametrize("category", [Category.DEFENCE_COUNSEL, Category.POLICE], ids=str)
def test_r13_privileged_contacts_are_approved_uncontrolled(category: Category) -> None:
    assert allowed(_decide(s.contact(category=category), control=ControlLevel.NONE))


def test_r5_court_calls_are_not_controlled() -> None:
    c = s.contact(category=Category.COURT)
    verdict = _decide(c, control=ControlLevel.SIGHT, grounds=(Ground.OTHER,))
    assert refused_for(verdict) is Reason.CATEGORY_NOT_CONTROLLABLE
    assert allowed(_decide(c, control=ControlLevel.NONE))


@given(s.categories, s.control_levels, s.grounds)
def test_r13_no_approval_ever_leaves_a_privileged_contact_controlled(
    category: Category, control: ControlLevel, grounds: tuple[Ground, ...]
) -> None:
    verdict = _decide(s.contact(category=category), control=control, grounds=grounds)
    if allowed(verdict):
        assert not (category.privileged and control.controlled)
        assert not (control.controlled and not category.may_be_controlled)
        assert not (control.controlled and not grounds)


# --- R2 at approval -----------------------------------------------------------------


def test_r2_approval_rechecks_a_lowered_limit() -> None:
    target = s.contact()
    others = (s.approved(), s.approved(), s.approved())
    assert allowed(_decide(target, existing=(target, *others)))
    lowered = FacilitySettings(contact_limit=3)
    verdict = _decide(target, settings=lowered, existing=(target, *others))
    assert refused_for(verdict) is Reason.CONTACT_LIMIT_REACHED


def test_r2_approving_an_official_contact_ignores_the_limit() -> None:
    target = s.contact(category=Category.OFFICIAL)
    others = tuple(s.approved() for _ in range(5))
    assert allowed(_decide(target, existing=(target, *others)))


# --- R8: appeals and the decision in force --------------------------------------------


def test_r8_a_decision_in_force_is_not_simply_replaced() -> None:
    for c in (s.approved(), s.refused()):
        for outcome in Outcome:
            assert refused_for(_decide(c, outcome)) is Reason.CONTACT_NOT_PENDING


def _file(c: Contact, pending: tuple[Appeal, ...] = ()) -> Appeal | Deny:
    return file_appeal(
        c, pending, appeal_id="appeal-1", by=AppealBy.CONTACT, text="why", now=s.MONDAY
    )


def test_r8_a_decision_may_be_appealed() -> None:
    for c in (s.approved(control=ControlLevel.SIGHT), s.refused()):
        assert c.decision is not None
        assert _file(c) == Appeal(
            id="appeal-1",
            contact_id=c.id,
            decision_id=c.decision.id,  # the decision in force
            by=AppealBy.CONTACT,
            filed_at=s.MONDAY,
            text="why",
            state=AppealState.PENDING,
        )


def test_r8_a_contact_without_a_decision_has_nothing_to_appeal() -> None:
    assert refused_for(_file(s.contact())) is Reason.CONTACT_NOT_PENDING


def test_r8_one_appeal_at_a_time() -> None:
    c = s.approved()
    verdict = _file(c, pending=(s.appeal(c),))
    assert refused_for(verdict) is Reason.CONFLICT
    assert allowed(_file(c, pending=(s.appeal(c, state=AppealState.UPHELD),)))


def test_r8_an_appeal_is_decided_once() -> None:
    c = s.approved()
    pending = s.appeal(c)
    assert decide_appeal(pending, None, s.MONDAY) == replace(
        pending, state=AppealState.UPHELD, decided_at=s.MONDAY
    )
    new = _decision(c, control=ControlLevel.SIGHT, grounds=(Ground.DRUGS,))
    assert decide_appeal(pending, new, s.MONDAY) == replace(
        pending, state=AppealState.CHANGED, result_decision_id=new.id, decided_at=s.MONDAY
    )
    for state in (AppealState.UPHELD, AppealState.CHANGED):
        verdict = decide_appeal(s.appeal(c, state=state), None, s.MONDAY)
        assert refused_for(verdict) is Reason.APPEAL_NOT_PENDING


def test_r8_a_changed_appeal_replaces_the_decision() -> None:
    """The inmate appeals a controlled approval; the visit office lifts the control."""
    c = s.approved(control=ControlLevel.SIGHT_AND_HEARING)
    assert allowed(_decide(c, appeal=s.appeal(c)))
    # ...and a refusal appealed can turn into an approval.
    r = s.refused()
    assert allowed(_decide(r, appeal=s.appeal(r)))


def test_r8_a_new_decision_needs_a_pending_appeal_against_the_decision_in_force() -> None:
    c = s.approved()
    done = s.appeal(c, state=AppealState.UPHELD)
    assert refused_for(_decide(c, appeal=done)) is Reason.APPEAL_NOT_PENDING
    stale = s.appeal(c, decision_id="decision-old")
    assert refused_for(_decide(c, appeal=stale)) is Reason.INVALID_REQUEST
    other = s.appeal(c, contact_id="contact-other")
    assert refused_for(_decide(c, appeal=other)) is Reason.INVALID_REQUEST


def test_r8_r13_an_appeal_cannot_bring_control_onto_a_privileged_contact() -> None:
    c = s.approved(Category.DEFENCE_COUNSEL)
    verdict = _decide(
        c, control=ControlLevel.HEARING, grounds=(Ground.THREATS,), appeal=s.appeal(c)
    )
    assert refused_for(verdict) is Reason.PRIVILEGED_NO_CONTROL


def test_r8_r2_an_appeal_approving_a_refused_contact_respects_the_limit() -> None:
    r = s.refused()
    others = tuple(s.approved() for _ in range(4))
    verdict = _decide(r, existing=(r, *others), appeal=s.appeal(r))
    assert refused_for(verdict) is Reason.CONTACT_LIMIT_REACHED
