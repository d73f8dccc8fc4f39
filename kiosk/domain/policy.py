"""The rules (DOMAIN.md R1-R17) as pure functions: facts and ``now`` in, a verdict out.

Every function returns ``ALLOW`` or ``Deny(reason)`` with a code from
:mod:`kiosk.domain.reasons`; nothing here reads a clock, a file or a database.
The caller gathers the facts (the contacts of an inmate, the bookings that
overlap a window, ...) and acts on the verdict.

Choices made where the rules leave room (the one place they are written down):

Contacts
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
    ``decide_appeal`` says whether an appeal may still be decided; when it is
    changed, the caller makes the new decision with ``decide_contact``. An
    appeal needs a decision in force (``contact_not_pending``), and a contact
    has one pending appeal at a time (``conflict``).
  * R13 / R5 / R7: a privileged contact (defence counsel, police) with any
    control level other than ``none`` is refused ``privileged_no_control``; a
    court contact with control ``category_not_controllable``; a controlled
    approval needs at least one ground (``grounds_required``). A refusal
    carries no control level (``invalid_request`` otherwise).

Bookings (checked in this order)
  inmate active, contact belongs to the inmate, contact approved (R1/R4);
  R10 window (aware times, 0 < duration <= max_call_minutes, start not in the
  past); location (R12: a room must be one of the facility's rooms); R15
  closures (overlap -> ``facility_closed`` unless ``override_closure``; an
  inmate-initiated booking made at/after a closure's order deadline for a
  window starting before that closure's end -> ``order_deadline_passed``,
  staff-initiated bookings and overrides are exempt); R16 restrictions (overlap
  with SUSPEND, or LIMIT with a longer call -> ``facility_restricted``, no
  override); R9 capacity (tablets, the room, monitoring staff for controlled
  calls); R17 weekly quota for personal contacts (the inmate's live personal
  bookings starting in the ISO week (UTC) of the new start, plus the new one,
  within ``weekly_quota_minutes``, or ``parent_weekly_quota_minutes`` when the
  contact is the inmate's child). Live bookings are those not cancelled.
  R11 police clearance is checked when dialling, not booking: the clearance
  may be added to the booking later.

Dialling (checked in this order: who is asking, then what they ask for, then
whether now is the moment; each step reveals no more than the one before)
  device revoked, device assigned to the inmate, inmate active, the booking
  exists for this inmate and contact (``booking_not_found``, also for somebody
  else's booking), booking held by a restriction (R16, ``facility_restricted``),
  booking still ``booked``, contact approved, now inside
  [start, end), R11 police clearance for remand, R16 facility not suspended
  and, under a LIMIT restriction, the limited time not yet spent (the call's
  end is then brought forward: ``call_deadline``), R17 quota, no other live
  call of the inmate or on the device. Closures (R15) govern booking, not
  dialling: a booking that exists was made open or with an override.

Monitoring (R13): privileged first, whatever the level; then court or
uncontrolled -> ``not_controlled``; then the kinds asked for must be a
non-empty subset of what the level allows (``media_kind_forbidden``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.domain.model import (
    Appeal,
    AppealState,
    Booking,
    BookingState,
    Category,
    Closure,
    Contact,
    ContactStatus,
    ControlLevel,
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
    Restriction,
    RestrictionKind,
    Route,
)
from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.domain.weeks import LIVE_BOOKING_STATES, week_usage


@dataclass(frozen=True, slots=True)
class Allow:
    """The rules allow it. Truthy, so ``if verdict:`` reads naturally."""

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Deny:
    """The rules refuse it, for ``reason`` (the wire code); ``detail`` is for people."""

    reason: Reason
    detail: str = ""

    def __bool__(self) -> bool:
        return False

    @property
    def message(self) -> str:
        return self.detail or MESSAGES[self.reason]


Verdict = Allow | Deny
ALLOW = Allow()

# The states in which a contact is still waiting for a first decision.
AWAITING = frozenset(
    {
        ContactStatus.AWAITING_CONFIRMATION,
        ContactStatus.AWAITING_APPLICATION,
        ContactStatus.AWAITING_ASSESSMENT,
    }
)
DECIDED = frozenset({ContactStatus.APPROVED, ContactStatus.REFUSED})


def deny(reason: Reason, detail: str = "") -> Deny:
    return Deny(reason, detail)


def _aware(*times: datetime) -> bool:
    return all(t.tzinfo is not None and t.utcoffset() is not None for t in times)


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


def confirm_email(contact: Contact) -> Verdict:
    """R3: the cleared visitor confirms the wish to call and the address.

    Allowed, the contact moves to ``AWAITING_ASSESSMENT``.
    """
    if contact.status is not ContactStatus.AWAITING_CONFIRMATION:
        return deny(Reason.CONTACT_NOT_PENDING, f"contact is {contact.status.value}")
    return ALLOW


def receive_application(contact: Contact) -> Verdict:
    """R4: the visit application (video call, e-mail address) arrives.

    Allowed, the contact moves to ``AWAITING_ASSESSMENT``.
    """
    if contact.status is not ContactStatus.AWAITING_APPLICATION:
        return deny(Reason.CONTACT_NOT_PENDING, f"contact is {contact.status.value}")
    return ALLOW


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
    outcome: Outcome,
    control: ControlLevel,
    grounds: Sequence[Ground],
    settings: FacilitySettings,
    existing: Sequence[Contact],
    appeal: Appeal | None = None,
) -> Verdict:
    """May the visit office make this decision on ``contact``? (R4, R6-R8, R13, R2)

    ``existing`` are the inmate's contacts (the contact itself may be among
    them; it is left out when counting). ``appeal`` is required to replace a
    decision already in force (R8).
    """
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


def file_appeal(contact: Contact, pending: Sequence[Appeal] = ()) -> Verdict:
    """R8: inmate or visitor appeal the decision in force (approval with its control, or refusal).

    ``pending`` are appeals of this contact not yet decided: one at a time.
    """
    if contact.status not in DECIDED or contact.decision is None:
        return deny(Reason.CONTACT_NOT_PENDING, "there is no decision to appeal")
    if any(a.contact_id == contact.id and a.state is AppealState.PENDING for a in pending):
        return deny(Reason.CONFLICT, "an appeal is already pending")
    return ALLOW


def decide_appeal(appeal: Appeal) -> Verdict:
    """R8: an appeal is decided once (upheld, or changed by a new decision)."""
    if appeal.state is not AppealState.PENDING:
        return deny(Reason.APPEAL_NOT_PENDING)
    return ALLOW


# --- Facility calendar (R15, R16) -------------------------------------------


def closed_at(settings: FacilitySettings, at: datetime) -> Closure | None:
    """The closure (R15) in force at ``at``, if any."""
    for closure in settings.closures:
        if closure.start <= at < closure.end:
            return closure
    return None


def restricted_at(settings: FacilitySettings, at: datetime) -> Restriction | None:
    """The restriction (R16) in force at ``at``; a suspension wins over a limit."""
    found: Restriction | None = None
    for restriction in settings.restrictions:
        if restriction.start <= at < restriction.end:
            if restriction.kind is RestrictionKind.SUSPEND:
                return restriction
            if found is None or _limit(restriction) < _limit(found):
                found = restriction
    return found


def call_deadline(booking: Booking, settings: FacilitySettings, now: datetime) -> datetime:
    """When a call on ``booking`` placed at ``now`` must end (R10, R16).

    The window's end, brought forward by the restrictions that overlap the rest
    of it: a suspension ends the call where it begins; a limit lets the call run
    ``limit_minutes`` from the later of the window's start and the limit's start.
    At or before ``now`` means no call at all (``dial`` refuses it).
    """
    deadline = booking.end
    for r in settings.restrictions:
        if not _overlaps(now, booking.end, r.start, r.end):
            continue
        if r.kind is RestrictionKind.SUSPEND:
            deadline = min(deadline, max(r.start, now))
        else:
            since = max(booking.start, r.start)
            deadline = min(deadline, since + timedelta(minutes=_limit(r)))
    return deadline


def _limit(restriction: Restriction) -> int:
    # A LIMIT without minutes limits to nothing: deny by default.
    return restriction.limit_minutes if restriction.limit_minutes is not None else 0


def _overlaps(start: datetime, end: datetime, other_start: datetime, other_end: datetime) -> bool:
    return start < other_end and other_start < end


def _restriction_refuses(
    settings: FacilitySettings, start: datetime, end: datetime, duration: timedelta
) -> Deny | None:
    # R16: suspended periods take no calls; limited periods take only short ones.
    for r in settings.restrictions:
        if not _overlaps(start, end, r.start, r.end):
            continue
        if r.kind is RestrictionKind.SUSPEND:
            return deny(Reason.FACILITY_RESTRICTED, f"calls are suspended ({r.note or r.id})")
        if duration > timedelta(minutes=_limit(r)):
            return deny(
                Reason.FACILITY_RESTRICTED, f"calls are limited to {_limit(r)} minutes then"
            )
    return None


# --- Quota (R17) ------------------------------------------------------------


def quota_minutes(settings: FacilitySettings, contact: Contact) -> int | None:
    """The weekly quota that applies to calls with ``contact``; None: no quota (R17, R2)."""
    if not contact.category.counts_toward_quota:
        return None
    if contact.relation is Relation.CHILD:
        return settings.parent_weekly_quota_minutes  # R17: parents get more
    return settings.weekly_quota_minutes


def _quota_refuses(
    settings: FacilitySettings,
    inmate: Inmate,
    contact: Contact,
    start: datetime,
    duration: timedelta,
    week_bookings: Sequence[Booking],
    categories: Mapping[str, Category],
    exclude_id: str | None = None,
) -> Deny | None:
    quota = quota_minutes(settings, contact)
    if quota is None:
        return None

    def personal(b: Booking) -> bool:
        # A booking whose contact's category is unknown counts: deny by default.
        category = categories.get(b.contact_id, Category.PERSONAL)
        return category.counts_toward_quota

    used = week_usage(inmate.id, start, week_bookings, personal, exclude_id=exclude_id)
    if used + duration > timedelta(minutes=quota):
        left = max(timedelta(), timedelta(minutes=quota) - used)
        return deny(
            Reason.QUOTA_EXHAUSTED,
            f"{int(left.total_seconds() // 60)} of {quota} minutes left that week",
        )
    return None


# --- Bookings (R9, R10, R12, R15-R17) ---------------------------------------


@dataclass(frozen=True, slots=True)
class BookingRequest:
    inmate: Inmate
    contact: Contact
    start: datetime
    end: datetime
    location_kind: LocationKind
    location: str
    initiation: Initiation
    police_clearance: PoliceClearance | None = None
    override_closure: bool = False


@dataclass(frozen=True, slots=True)
class BookingContext:
    """The facts a booking is checked against.

    ``overlapping``: the facility's live bookings overlapping the window (more
    is harmless: they are filtered again). ``week_bookings``: the inmate's
    live bookings in the ISO week of the start. ``categories``: contact id ->
    category for those bookings.
    """

    settings: FacilitySettings
    overlapping: Sequence[Booking]
    week_bookings: Sequence[Booking]
    categories: Mapping[str, Category]


def check_window(
    settings: FacilitySettings, start: datetime, end: datetime, now: datetime
) -> Verdict:
    """R10: the prison sets a duration within its maximum, for a time still to come."""
    if not _aware(start, end):
        return deny(Reason.INVALID_REQUEST, "times must carry a time zone")
    if end <= start:
        return deny(Reason.WINDOW_INVALID)
    if end - start > timedelta(minutes=settings.max_call_minutes):
        return deny(
            Reason.WINDOW_INVALID, f"calls last at most {settings.max_call_minutes} minutes"
        )
    if start < now:
        return deny(Reason.OUTSIDE_WINDOW, "the window starts in the past")
    return ALLOW


def create_booking(req: BookingRequest, ctx: BookingContext, now: datetime) -> Verdict:
    """May the prison book this window? (R1, R9, R10, R12, R15, R16, R17; order in module doc)"""
    settings = ctx.settings
    inmate, contact = req.inmate, req.contact
    if not inmate.active:
        return deny(Reason.INMATE_INACTIVE)
    if contact.inmate_id != inmate.id:
        return deny(Reason.INVALID_REQUEST, "the contact belongs to another inmate")
    # R1 / R4: no approving decision, no call, and so no booking.
    if not contact.approved:
        return deny(Reason.CONTACT_NOT_APPROVED)

    verdict = check_window(settings, req.start, req.end, now)  # R10
    if not verdict:
        return verdict
    start, end, duration = req.start, req.end, req.end - req.start

    # R12: the booking records where the call takes place.
    if not req.location.strip():
        return deny(Reason.INVALID_REQUEST, "the booking needs a location")
    if req.location_kind is LocationKind.ROOM and req.location not in settings.rooms:
        return deny(Reason.INVALID_REQUEST, "no such room")

    # R15: closed periods and their order deadlines.
    if not req.override_closure:
        for closure in settings.closures:
            if _overlaps(start, end, closure.start, closure.end):
                return deny(Reason.FACILITY_CLOSED, closure.note)
        if req.initiation is Initiation.INMATE:
            for closure in settings.closures:
                deadline = closure.order_deadline
                if deadline is not None and now >= deadline and start < closure.end:
                    return deny(Reason.ORDER_DEADLINE_PASSED, closure.note)

    refused = _restriction_refuses(settings, start, end, duration)  # R16
    if refused is not None:
        return refused

    # R9: the prison's capacity weighs most.
    live = [b for b in ctx.overlapping if b.state in LIVE_BOOKING_STATES and b.overlaps(start, end)]
    if len(live) >= settings.tablets:
        return deny(Reason.CAPACITY_TABLETS)
    if req.location_kind is LocationKind.ROOM and any(
        b.location_kind is LocationKind.ROOM and b.location == req.location for b in live
    ):
        return deny(Reason.CAPACITY_ROOM)
    if contact.control.controlled:
        monitored = sum(1 for b in live if b.control.controlled)
        if monitored >= settings.monitoring_staff:
            return deny(Reason.CAPACITY_MONITORING)

    refused = _quota_refuses(
        settings, inmate, contact, start, duration, ctx.week_bookings, ctx.categories
    )  # R17
    if refused is not None:
        return refused
    return ALLOW


# --- Dialling -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialContext:
    inmate: Inmate
    contact: Contact
    booking: Booking | None
    device: Device
    settings: FacilitySettings
    inmate_has_live_call: bool
    device_has_live_call: bool
    week_bookings: Sequence[Booking]
    categories: Mapping[str, Category]


def dial(ctx: DialContext, now: datetime) -> Verdict:
    """May the tablet place this call now? (order in the module doc)"""
    inmate, contact, booking, device = ctx.inmate, ctx.contact, ctx.booking, ctx.device
    # R18: only issued, unrevoked equipment, handed to this inmate.
    if device.revoked:
        return deny(Reason.DEVICE_REVOKED)
    if device.inmate_id is None or device.inmate_id != inmate.id:
        return deny(Reason.DEVICE_NOT_ASSIGNED)
    if not inmate.active:
        return deny(Reason.INMATE_INACTIVE)
    # Somebody else's booking is "not found": it reveals nothing about it.
    if booking is None or booking.inmate_id != inmate.id or booking.contact_id != contact.id:
        return deny(Reason.BOOKING_NOT_FOUND)
    # R16: a held booking is held by a restriction; say so, not merely "inactive".
    if booking.state is BookingState.HELD:
        return deny(Reason.FACILITY_RESTRICTED, "the booking is held by a facility restriction")
    if booking.state is not BookingState.BOOKED:
        return deny(Reason.BOOKING_NOT_ACTIVE, f"booking is {booking.state.value}")
    # R1 / R4 / R8: the decision in force must approve the contact.
    if contact.inmate_id != inmate.id or not contact.approved:
        return deny(Reason.CONTACT_NOT_APPROVED)
    # R10: only inside the window the prison set.
    if not (booking.start <= now < booking.end):
        return deny(Reason.OUTSIDE_WINDOW)
    # R11: remand calls are cleared with the police beforehand.
    if inmate.remand:
        clearance = booking.police_clearance
        if clearance is None or clearance.cleared_at > now:
            return deny(Reason.POLICE_CLEARANCE_MISSING)
    # R16: a restriction declared after booking still holds: no call while suspended, and
    # under a limit only while the limited time is not yet spent.
    if call_deadline(booking, ctx.settings, now) <= now:
        restriction = restricted_at(ctx.settings, now)
        note = restriction.note if restriction is not None else ""
        return deny(Reason.FACILITY_RESTRICTED, note)
    # R17: the quota may have been lowered since booking.
    refused = _quota_refuses(
        ctx.settings,
        inmate,
        contact,
        booking.start,
        booking.duration,
        ctx.week_bookings,
        ctx.categories,
        exclude_id=booking.id,
    )
    if refused is not None:
        return refused
    if ctx.inmate_has_live_call or ctx.device_has_live_call:
        return deny(Reason.CALL_ALREADY_LIVE)
    return ALLOW


# --- Monitoring and routing (R6, R13) ---------------------------------------


def attach_monitor(
    category: Category, control: ControlLevel, kinds: frozenset[MediaKind]
) -> Verdict:
    """May a staff monitor receive ``kinds`` of this call? (R6, R13)"""
    # R13: first and whatever the recorded level says: never on a privileged call.
    if category.privileged:
        return deny(Reason.PRIVILEGED_NO_MONITOR)
    if not category.may_be_controlled or not control.controlled:
        return deny(Reason.NOT_CONTROLLED)
    if not kinds or not kinds <= control.media_kinds:
        return deny(Reason.MEDIA_KIND_FORBIDDEN)
    return ALLOW


def route_for(category: Category, control: ControlLevel) -> Route:
    """Where the media flows: only controlled calls pass the bridge (R13, ARCHITECTURE.md)."""
    if category.privileged or not category.may_be_controlled or not control.controlled:
        return Route.P2P
    return Route.BRIDGE
