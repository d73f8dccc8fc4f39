"""Contacts, decisions and appeals (R1-R8, R13) as pure functions.

Choices made where the rules leave room:

  * R2 counts an inmate's personal contacts that are not refused: pending ones
    (any awaiting state) and approved ones. Proposing a personal contact when
    that count has reached ``contact_limit`` is refused with
    ``contact_limit_reached``; approving one re-checks the limit against the
    inmate's *other* contacts, so a limit lowered in the meantime holds.
  * R3 / R4: a contact already cleared for visits starts
    ``AWAITING_CONFIRMATION`` and moves to ``AWAITING_ASSESSMENT`` when they
    confirm by e-mail; one not cleared starts ``AWAITING_APPLICATION`` and moves
    to ``AWAITING_ASSESSMENT`` when the application is received. Approval is
    only possible from ``AWAITING_ASSESSMENT`` (else ``email_not_confirmed`` /
    ``application_missing`` / ``contact_not_pending``); refusal from any
    awaiting state.
  * R8: once a contact is approved or refused, a new decision is made only
    through an appeal: ``decide_contact(..., appeal=...)`` with a pending appeal
    against the decision in force. The decision in force applies meanwhile.
    ``decide_appeal`` closes an appeal, upheld or changed; when it is changed,
    the new decision is checked and put in force with ``decide_contact``. An
    appeal needs a decision in force (``contact_not_pending``), and a contact
    has one pending appeal at a time (``conflict``).
  * R13 / R5 / R7: a privileged contact (defence counsel, police) with any
    control level other than ``none`` is refused ``privileged_no_control``; a
    court contact with control ``category_not_controllable``; a controlled
    approval needs at least one ground (``grounds_required``). A refusal
    carries no control level (``invalid_request`` otherwise).

What is allowed comes back as the new value (the contact confirmed, the
contact with its decision in force, the appeal filed or decided), so that
every caller moves a contact the same way; what is refused is a ``Deny``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

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
    Inmate,
    Outcome,
)
from kiosk.domain.policy.verdicts import ALLOW, Deny, Verdict, deny
from kiosk.domain.reasons import Reason

# The states in which a contact is still waiting for a first decision.
AWAITING = frozenset(
    {
        ContactStatus.AWAITING_CONFIRMATION,
        ContactStatus.AWAITING_APPLICATION,
        ContactStatus.AWAITING_ASSESSMENT,
    }
)
DECIDED = frozenset({ContactStatus.APPROVED, ContactStatus.REFUSED})


# --- Contacts (R1-R5) --------------------------------------------------------


def counts_toward_limit(contact: Contact) -> bool:
    """R2: a personal contact that is pending or approved (not refused)."""
    return contact.category.counts_toward_limit and contact.status is not ContactStatus.REFUSED


def personal_contacts_in_use(
    inmate_id: str, existing: Sequence[Contact], exclude_id: str | None = None
) -> int:
    return sum(
        1
        for c in existing
        if c.inmate_id == inmate_id and c.id != exclude_id and counts_toward_limit(c)
    )


def propose_contact(
    settings: FacilitySettings, inmate: Inmate, existing: Sequence[Contact], category: Category
) -> Verdict:
    """May this inmate put forward a new contact of ``category``? (R2, R5)"""
    if not inmate.active:
        return deny(Reason.INMATE_INACTIVE)
    # R2: only personal contacts count; official and privileged ones never do.
    if category.counts_toward_limit:
        in_use = personal_contacts_in_use(inmate.id, existing)
        if in_use >= settings.contact_limit:
            return deny(
                Reason.CONTACT_LIMIT_REACHED,
                f"{in_use} of {settings.contact_limit} personal contacts already in use",
            )
    return ALLOW


def initial_status(cleared_for_visits: bool) -> ContactStatus:
    """R3: cleared visitors only confirm by e-mail; R4: others apply first."""
    if cleared_for_visits:
        return ContactStatus.AWAITING_CONFIRMATION
    return ContactStatus.AWAITING_APPLICATION


def confirm_email(contact: Contact) -> Contact | Deny:
    """R3: the cleared visitor confirms the wish to call and the address.

    Allowed: the contact, confirmed and ``AWAITING_ASSESSMENT``.
    """
    if contact.status is not ContactStatus.AWAITING_CONFIRMATION:
        return deny(Reason.CONTACT_NOT_PENDING, f"contact is {contact.status.value}")
    return replace(contact, email_confirmed=True, status=ContactStatus.AWAITING_ASSESSMENT)


def receive_application(contact: Contact) -> Contact | Deny:
    """R4: the visit application (video call, e-mail address) arrives.

    Allowed: the contact, its application received and ``AWAITING_ASSESSMENT``.
    """
    if contact.status is not ContactStatus.AWAITING_APPLICATION:
        return deny(Reason.CONTACT_NOT_PENDING, f"contact is {contact.status.value}")
    return replace(contact, application_received=True, status=ContactStatus.AWAITING_ASSESSMENT)


def check_control(category: Category, control: ControlLevel, grounds: Sequence[Ground]) -> Verdict:
    """Is ``control`` a lawful control level for an approval in ``category``? (R6, R7, R13)"""
    if control.controlled:
        # R13: defence counsel and police are never overheard or watched.
        if category.privileged:
            return deny(Reason.PRIVILEGED_NO_CONTROL)
        # R5: courts (and any other category the table marks) are not controlled.
        if not category.may_be_controlled:
            return deny(Reason.CATEGORY_NOT_CONTROLLABLE)
        # R7: the decision records why control is needed.
        if not grounds:
            return deny(Reason.GROUNDS_REQUIRED)
    return ALLOW


def decide_contact(
    contact: Contact,
    decision: Decision,
    settings: FacilitySettings,
    existing: Sequence[Contact],
    appeal: Appeal | None = None,
) -> Contact | Deny:
    """May the visit office make ``decision`` on ``contact``? (R4, R6-R8, R13, R2)

    ``existing`` are the inmate's contacts (the contact itself may be among
    them; it is left out when counting). ``appeal`` is required to replace a
    decision already in force (R8). Allowed: the contact with ``decision`` in
    force, approved or refused.
    """
    if decision.contact_id != contact.id:
        return deny(Reason.INVALID_REQUEST, "the decision is about another contact")
    verdict = _may_decide(contact, decision, settings, existing, appeal)
    if isinstance(verdict, Deny):
        return verdict
    approved = decision.outcome is Outcome.APPROVE
    status = ContactStatus.APPROVED if approved else ContactStatus.REFUSED
    return replace(contact, status=status, decision=decision)


def _may_decide(
    contact: Contact,
    decision: Decision,
    settings: FacilitySettings,
    existing: Sequence[Contact],
    appeal: Appeal | None,
) -> Verdict:
    outcome, control, grounds = decision.outcome, decision.control, decision.grounds
    if contact.status in DECIDED:
        # R8: a decision in force changes only through an appeal against it.
        if appeal is None:
            return deny(Reason.CONTACT_NOT_PENDING, "a decision is in force; appeal it")
        verdict = _appeal_matches(contact, appeal)
        if not verdict:
            return verdict
    elif outcome is Outcome.APPROVE:
        # R3 / R4: only an assessed contact can be approved.
        if contact.status is ContactStatus.AWAITING_CONFIRMATION:
            return deny(Reason.EMAIL_NOT_CONFIRMED)
        if contact.status is ContactStatus.AWAITING_APPLICATION:
            return deny(Reason.APPLICATION_MISSING)
        if contact.status is not ContactStatus.AWAITING_ASSESSMENT:
            return deny(Reason.CONTACT_NOT_PENDING)

    if outcome is Outcome.REFUSE:
        # R13 still speaks first: a refusal never records control of a privileged call.
        if control.controlled and contact.category.privileged:
            return deny(Reason.PRIVILEGED_NO_CONTROL)
        if control.controlled:
            return deny(Reason.INVALID_REQUEST, "a refusal carries no control level")
        return ALLOW

    verdict = check_control(contact.category, control, grounds)  # R6, R7, R13
    if not verdict:
        return verdict
    # R2: the limit holds at approval too (it may have been lowered since the proposal).
    if contact.category.counts_toward_limit:
        others = personal_contacts_in_use(contact.inmate_id, existing, exclude_id=contact.id)
        if others >= settings.contact_limit:
            return deny(
                Reason.CONTACT_LIMIT_REACHED,
                f"{others} of {settings.contact_limit} personal contacts already in use",
            )
    return ALLOW


def _appeal_matches(contact: Contact, appeal: Appeal) -> Verdict:
    if appeal.state is not AppealState.PENDING:
        return deny(Reason.APPEAL_NOT_PENDING)
    if (
        appeal.contact_id != contact.id
        or contact.decision is None
        or appeal.decision_id != contact.decision.id
    ):
        return deny(Reason.INVALID_REQUEST, "the appeal is not against the decision in force")
    return ALLOW


def file_appeal(
    contact: Contact,
    pending: Sequence[Appeal],
    *,
    appeal_id: str,
    by: AppealBy,
    text: str,
    now: datetime,
) -> Appeal | Deny:
    """R8: inmate or visitor appeal the decision in force (approval with its control, or refusal).

    ``pending`` are appeals of this contact not yet decided: one at a time.
    Allowed: the appeal, pending, against the decision in force.
    """
    if contact.status not in DECIDED or contact.decision is None:
        return deny(Reason.CONTACT_NOT_PENDING, "there is no decision to appeal")
    if any(a.contact_id == contact.id and a.state is AppealState.PENDING for a in pending):
        return deny(Reason.CONFLICT, "an appeal is already pending")
    return Appeal(
        id=appeal_id,
        contact_id=contact.id,
        decision_id=contact.decision.id,
        by=by,
        filed_at=now,
        text=text,
    )


def decide_appeal(appeal: Appeal, decision: Decision | None, now: datetime) -> Appeal | Deny:
    """R8: an appeal is decided once: upheld (``decision`` None), or changed to ``decision``.

    Allowed: the appeal, closed. A changed decision is checked and put in force
    by ``decide_contact(..., appeal=appeal)`` with the appeal as it was filed.
    """
    if appeal.state is not AppealState.PENDING:
        return deny(Reason.APPEAL_NOT_PENDING)
    if decision is None:
        return replace(appeal, state=AppealState.UPHELD, decided_at=now)
    return replace(
        appeal, state=AppealState.CHANGED, result_decision_id=decision.id, decided_at=now
    )
