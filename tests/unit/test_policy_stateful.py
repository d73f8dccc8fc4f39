"""Random staff actions, clock steps, dials and monitor attempts, driven through the policy.

The machine keeps its own small world (settings, contacts, appeals, bookings,
devices, calls) and changes it only when the policy allows the action, the
way the server does. After every step it checks the promises the rules make:

* never a call to a contact without an approving decision (R1, R4, R8);
* never a call outside its booked window (R10), never connected after it;
* never a monitor on a call with defence counsel or police (R13), whatever
  control level a record claims;
* never more personal contacts than the facility allows at the time of the
  proposal or approval (R2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from kiosk.domain.callstate import (
    Answer,
    CallMachine,
    Dial,
    Hangup,
    InvalidTransition,
    LegLost,
    Reconnect,
    Restrict,
    Revoke,
    SetUp,
    StaffEnd,
)
from kiosk.domain.model import (
    Appeal,
    AppealBy,
    AppealState,
    Booking,
    BookingState,
    CallState,
    Category,
    Closure,
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
    Restriction,
    RestrictionKind,
)
from kiosk.domain.policy import (
    BookingContext,
    BookingRequest,
    CallContext,
    CallFacts,
    Deny,
    attach_monitor,
    call_deadline,
    confirm_email,
    create_booking,
    decide_appeal,
    decide_contact,
    file_appeal,
    initial_status,
    place_call,
    propose_contact,
    receive_application,
)
from kiosk.domain.weeks import LIVE_BOOKING_STATES, same_week

from .strategies import MINUTE, MONDAY

INMATES = (
    Inmate(id="inmate-a", facility_id="f", name="A"),
    Inmate(id="inmate-r", facility_id="f", name="R", remand=True),
)
LOCATIONS = (
    (LocationKind.CELL, "cell-1"),
    (LocationKind.ROOM, "visit-room-1"),
    (LocationKind.ROOM, "visit-room-2"),
    (LocationKind.ROOM, "no-such-room"),
)

T = TypeVar("T")

ALL_KIND_SETS = [
    frozenset(k) for k in ((), (MediaKind.VIDEO,), (MediaKind.AUDIO,), tuple(MediaKind))
]

indices = st.integers(min_value=0, max_value=1000)
controls = st.sampled_from(list(ControlLevel))
ground_sets = st.lists(st.sampled_from(list(Ground)), max_size=2).map(tuple)


@dataclass
class Call:
    booking: Booking
    contact: Contact
    device_id: str
    machine: CallMachine
    monitors: list[frozenset[MediaKind]] = field(default_factory=list)


def pick(items: list[T], i: int) -> T:
    return items[i % len(items)]


class PolicyWorld(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = MONDAY - timedelta(hours=1)
        self.settings = FacilitySettings(
            weekly_quota_minutes=120, parent_weekly_quota_minutes=240, tablets=8
        )
        self.contacts: dict[str, Contact] = {}
        self.appeals: dict[str, Appeal] = {}
        self.bookings: dict[str, Booking] = {}
        self.devices: dict[str, Device] = {
            f"device-{i.id}": Device(id=f"device-{i.id}", serial=i.id, inmate_id=i.id)
            for i in INMATES
        }
        # The tablet each inmate holds now; ``devices`` keeps every tablet ever issued.
        self.tablets: dict[str, Device] = {i.id: self.devices[f"device-{i.id}"] for i in INMATES}
        self.calls: list[Call] = []
        self.seq = 0
        self.largest_limit = self.settings.contact_limit

    # --- helpers ----------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"

    def contacts_of(self, inmate_id: str) -> list[Contact]:
        return [c for c in self.contacts.values() if c.inmate_id == inmate_id]

    def personal_in_use(self, inmate_id: str) -> int:
        return sum(
            1
            for c in self.contacts_of(inmate_id)
            if c.category is Category.PERSONAL and c.status is not ContactStatus.REFUSED
        )

    def inmate(self, inmate_id: str) -> Inmate:
        return next(i for i in INMATES if i.id == inmate_id)

    def categories(self) -> dict[str, Category]:
        return {c.id: c.category for c in self.contacts.values()}

    def live_calls(self) -> list[Call]:
        return [c for c in self.calls if c.machine.state is not CallState.ENDED]

    def decision(
        self, contact: Contact, outcome: Outcome, control: ControlLevel, grounds: tuple[Ground, ...]
    ) -> Decision:
        return Decision(
            id=self.new_id("decision"),
            contact_id=contact.id,
            outcome=outcome,
            control=control,
            grounds=grounds,
            decided_by="staff-1",
            decided_at=self.now,
        )

    def decide(
        self,
        contact: Contact,
        outcome: Outcome,
        control: ControlLevel,
        grounds: tuple[Ground, ...],
        appeal: Appeal | None = None,
    ) -> Contact | None:
        """The policy's decision put in force, as the API does; None when it is refused."""
        decision = self.decision(contact, outcome, control, grounds)
        existing = self.contacts_of(contact.inmate_id)
        decided = decide_contact(contact, decision, self.settings, existing, appeal)
        if isinstance(decided, Deny):
            return None
        assert decided.decision == decision  # R8: the new decision is in force
        self.contacts[contact.id] = decided
        return decided

    # --- a world to start from, built through the policy ---------------------------------------

    @initialize()
    def seed(self) -> None:
        """Each inmate gets contacts walked through R3/R4 to a decision, and bookings.

        The starting world holds the cases the invariants are about, so that short runs
        reach them: windows open now with defence counsel and with a personal contact
        whose approval an appeal has since turned into a refusal (R8); a pending personal
        contact; and a contact limit lowered below what the inmate already has (R2).
        """
        # (category, relation, control, cleared for visits, booking start in minutes, fate)
        plan = [
            (Category.PERSONAL, Relation.SIBLING, ControlLevel.NONE, True, 0, "refused on appeal"),
            (Category.DEFENCE_COUNSEL, Relation.PROFESSIONAL, ControlLevel.NONE, False, 0, ""),
            (Category.PERSONAL, Relation.PARTNER, ControlLevel.NONE, True, 15, ""),
            (Category.PERSONAL, Relation.CHILD, ControlLevel.SIGHT, False, 45, ""),
            (
                Category.OFFICIAL,
                Relation.PROFESSIONAL,
                ControlLevel.SIGHT_AND_HEARING,
                True,
                90,
                "",
            ),
            (Category.POLICE, Relation.PROFESSIONAL, ControlLevel.NONE, True, 135, ""),
            (Category.PERSONAL, Relation.PARENT, ControlLevel.HEARING, False, None, ""),
            (Category.PERSONAL, Relation.FRIEND, ControlLevel.NONE, True, None, "pending"),
        ]
        for inmate in INMATES:
            for category, relation, control, cleared, start, fate in plan:
                c = self.seed_contact(inmate, category, relation, cleared)
                if fate == "pending":
                    continue
                grounds = (Ground.THREATS,) if control.controlled else ()
                approved = self.decide(c, Outcome.APPROVE, control, grounds)
                assert approved is not None
                c = approved
                if start is not None:
                    assert self.try_book(
                        c,
                        self.now + start * MINUTE,
                        30,
                        (LocationKind.CELL, "cell-1"),
                        Initiation.STAFF,
                        override=False,
                        cleared=inmate.remand,
                    )
                if fate == "refused on appeal":
                    a = file_appeal(
                        c,
                        (),
                        appeal_id="seed-appeal-" + c.id,
                        by=AppealBy.CONTACT,
                        text="",
                        now=self.now,
                    )
                    assert isinstance(a, Appeal)
                    refusal = self.decide(c, Outcome.REFUSE, ControlLevel.NONE, (), appeal=a)
                    assert refusal is not None and refusal.decision is not None
                    closed = decide_appeal(a, refusal.decision, self.now)
                    assert isinstance(closed, Appeal)
                    self.appeals[a.id] = closed
        # The facility lowers the limit below what the inmates already have (R2).
        self.settings = replace(self.settings, contact_limit=3)

    def seed_contact(
        self, inmate: Inmate, category: Category, relation: Relation, cleared: bool
    ) -> Contact:
        assert propose_contact(self.settings, inmate, self.contacts_of(inmate.id), category)
        cid = self.new_id("contact")
        c = Contact(
            cid, inmate.id, "n", "e@example.org", category, relation, initial_status(cleared)
        )
        assessed = confirm_email(c) if cleared else receive_application(c)  # R3 / R4
        assert isinstance(assessed, Contact)
        assert assessed.status is ContactStatus.AWAITING_ASSESSMENT
        self.contacts[cid] = assessed
        return assessed

    # --- contacts (R1-R8, R13) --------------------------------------------------------

    @rule(
        who=indices,
        category=st.sampled_from(list(Category)),
        relation=st.sampled_from(list(Relation)),
        cleared=st.booleans(),
    )
    def propose(self, who: int, category: Category, relation: Relation, cleared: bool) -> None:
        inmate = pick(list(INMATES), who)
        verdict = propose_contact(self.settings, inmate, self.contacts_of(inmate.id), category)
        if not verdict:
            return
        cid = self.new_id("contact")
        self.contacts[cid] = Contact(
            id=cid,
            inmate_id=inmate.id,
            name="n",
            email="e@example.org",
            category=category,
            relation=relation,
            status=initial_status(cleared),
            cleared_for_visits=cleared,
        )
        # R2: a personal contact is allowed only within the limit in force.
        if category.counts_toward_limit:
            assert self.personal_in_use(inmate.id) <= self.settings.contact_limit

    @precondition(lambda self: bool(self.contacts))
    @rule(i=indices)
    def confirm(self, i: int) -> None:
        c = pick(list(self.contacts.values()), i)
        confirmed = confirm_email(c)
        if isinstance(confirmed, Contact):
            assert c.status is ContactStatus.AWAITING_CONFIRMATION  # R3
            assert confirmed.status is ContactStatus.AWAITING_ASSESSMENT
            self.contacts[c.id] = confirmed

    @precondition(lambda self: bool(self.contacts))
    @rule(i=indices)
    def apply(self, i: int) -> None:
        c = pick(list(self.contacts.values()), i)
        received = receive_application(c)
        if isinstance(received, Contact):
            assert c.status is ContactStatus.AWAITING_APPLICATION  # R4
            assert received.status is ContactStatus.AWAITING_ASSESSMENT
            self.contacts[c.id] = received

    @precondition(lambda self: bool(self.contacts))
    @rule(i=indices, outcome=st.sampled_from(list(Outcome)), control=controls, grounds=ground_sets)
    def decide_contact(
        self, i: int, outcome: Outcome, control: ControlLevel, grounds: tuple[Ground, ...]
    ) -> None:
        c = pick(list(self.contacts.values()), i)
        if self.decide(c, outcome, control, grounds) is None:
            return
        if outcome is Outcome.APPROVE:
            assert c.status is ContactStatus.AWAITING_ASSESSMENT  # R3 / R4
        assert not (c.category.privileged and control.controlled)  # R13
        if outcome is Outcome.APPROVE and c.category.counts_toward_limit:
            assert self.personal_in_use(c.inmate_id) <= self.settings.contact_limit  # R2

    @precondition(lambda self: bool(self.contacts))
    @rule(i=indices, by=st.sampled_from(list(AppealBy)))
    def appeal(self, i: int, by: AppealBy) -> None:
        c = pick(list(self.contacts.values()), i)
        pending = list(self.appeals.values())
        aid = self.new_id("appeal")
        filed = file_appeal(c, pending, appeal_id=aid, by=by, text="", now=self.now)
        if isinstance(filed, Deny):
            return
        assert c.decision is not None and filed.decision_id == c.decision.id  # R8
        self.appeals[aid] = filed

    @precondition(lambda self: bool(self.appeals))
    @rule(
        i=indices,
        change=st.booleans(),
        outcome=st.sampled_from(list(Outcome)),
        control=controls,
        grounds=ground_sets,
    )
    def decide_appeal(
        self,
        i: int,
        change: bool,
        outcome: Outcome,
        control: ControlLevel,
        grounds: tuple[Ground, ...],
    ) -> None:
        a = pick(list(self.appeals.values()), i)
        upheld = decide_appeal(a, None, self.now)
        if isinstance(upheld, Deny):
            assert a.state is not AppealState.PENDING
            return
        c = self.contacts[a.contact_id]
        if not change:
            self.appeals[a.id] = upheld
            return
        decided = self.decide(c, outcome, control, grounds, appeal=a)
        if decided is not None:
            assert not (c.category.privileged and control.controlled)  # R13
            changed = decide_appeal(a, decided.decision, self.now)
            assert isinstance(changed, Appeal) and changed.state is AppealState.CHANGED
            self.appeals[a.id] = changed
            if outcome is Outcome.APPROVE and c.category.counts_toward_limit:
                assert self.personal_in_use(c.inmate_id) <= self.settings.contact_limit  # R2

    # --- facility settings (R2, R9, R15, R16, R17) ------------------------------------------

    @rule(limit=st.integers(min_value=0, max_value=6))
    def set_contact_limit(self, limit: int) -> None:
        self.settings = replace(self.settings, contact_limit=limit)
        self.largest_limit = max(self.largest_limit, limit)

    @rule(
        quota=st.integers(min_value=0, max_value=240),
        tablets=st.integers(min_value=0, max_value=4),
        staff=st.integers(min_value=0, max_value=3),
    )
    def set_capacity(self, quota: int, tablets: int, staff: int) -> None:
        self.settings = replace(
            self.settings, weekly_quota_minutes=quota, tablets=tablets, monitoring_staff=staff
        )

    @rule(
        start=st.integers(min_value=-2 * 60, max_value=3 * 24 * 60),
        hours=st.integers(min_value=1, max_value=48),
        deadline_before=st.one_of(st.none(), st.integers(min_value=0, max_value=3 * 24 * 60)),
    )
    def add_closure(self, start: int, hours: int, deadline_before: int | None) -> None:
        begin = self.now + start * MINUTE
        deadline = None if deadline_before is None else begin - deadline_before * MINUTE
        closure = Closure(self.new_id("closure"), begin, begin + timedelta(hours=hours), deadline)
        self.settings = replace(self.settings, closures=(*self.settings.closures, closure))

    @rule(
        start=st.integers(min_value=-2 * 60, max_value=3 * 24 * 60),
        hours=st.integers(min_value=1, max_value=48),
        limit=st.one_of(st.none(), st.integers(min_value=10, max_value=60)),
    )
    def add_restriction(self, start: int, hours: int, limit: int | None) -> None:
        begin = self.now + start * MINUTE
        kind = RestrictionKind.SUSPEND if limit is None else RestrictionKind.LIMIT
        r = Restriction(
            self.new_id("restriction"), begin, begin + timedelta(hours=hours), kind, limit
        )
        self.settings = replace(self.settings, restrictions=(*self.settings.restrictions, r))
        # R16: a suspension ends the calls that are live inside it.
        if kind is RestrictionKind.SUSPEND and begin <= self.now:
            for call in self.live_calls():
                call.machine.handle(Restrict(), self.now)

    @rule()
    def lift_calendar(self) -> None:
        self.settings = replace(self.settings, closures=(), restrictions=())

    # --- bookings (R9-R12, R15-R17) --------------------------------------------------------

    @precondition(lambda self: bool(self.contacts))
    @rule(
        i=indices,
        start=st.integers(min_value=-4, max_value=4 * 24 * 4).map(lambda q: q * 15),
        minutes=st.sampled_from([0, 15, 30, 45, 60, 90, 120, 150]),
        where=st.sampled_from(LOCATIONS),
        initiation=st.sampled_from(list(Initiation)),
        override=st.booleans(),
        cleared=st.booleans(),
        approved_only=st.booleans(),
    )
    def book(
        self,
        i: int,
        start: int,
        minutes: int,
        where: tuple[LocationKind, str],
        initiation: Initiation,
        override: bool,
        cleared: bool,
        approved_only: bool,
    ) -> None:
        candidates = [c for c in self.contacts.values() if c.approved or not approved_only]
        c = pick(candidates or list(self.contacts.values()), i)
        self.try_book(c, self.now + start * MINUTE, minutes, where, initiation, override, cleared)

    def try_book(
        self,
        c: Contact,
        begin: datetime,
        minutes: int,
        where: tuple[LocationKind, str],
        initiation: Initiation,
        override: bool,
        cleared: bool,
    ) -> bool:
        inmate = self.inmate(c.inmate_id)
        end = begin + minutes * MINUTE
        clearance = PoliceClearance("police", self.now) if cleared else None
        req = BookingRequest(
            inmate, c, begin, end, where[0], where[1], initiation, clearance, override
        )
        live = [b for b in self.bookings.values() if b.state in LIVE_BOOKING_STATES]
        ctx = BookingContext(
            settings=self.settings,
            overlapping=[b for b in live if b.overlaps(begin, end)],
            week_bookings=[
                b for b in live if b.inmate_id == inmate.id and same_week(b.start, begin)
            ],
            categories=self.categories(),
        )
        verdict = create_booking(req, ctx, self.now)
        event(f"book: {verdict.reason.value if isinstance(verdict, Deny) else 'allowed'}")
        if not verdict:
            return False
        assert c.approved and begin >= self.now and end > begin  # R1, R10
        bid = self.new_id("booking")
        self.bookings[bid] = Booking(
            id=bid,
            inmate_id=inmate.id,
            contact_id=c.id,
            start=begin,
            end=end,
            location_kind=where[0],
            location=where[1],
            initiation=initiation,
            police_clearance=clearance,
            control=c.control,
        )
        return True

    @precondition(lambda self: bool(self.bookings))
    @rule(i=indices)
    def cancel(self, i: int) -> None:
        b = pick(list(self.bookings.values()), i)
        if b.state is BookingState.BOOKED:
            self.bookings[b.id] = replace(b, state=BookingState.CANCELLED)

    @precondition(lambda self: bool(self.bookings))
    @rule(i=indices)
    def clear_with_police(self, i: int) -> None:
        b = pick(list(self.bookings.values()), i)
        self.bookings[b.id] = replace(b, police_clearance=PoliceClearance("police", self.now))

    # --- the clock ------------------------------------------------------------------------

    @rule(minutes=st.integers(min_value=1, max_value=6 * 60))
    def advance(self, minutes: int) -> None:
        self.now += minutes * MINUTE
        for call in self.calls:
            call.machine.tick(self.now)

    @precondition(lambda self: any(b.start > self.now for b in self.bookings.values()))
    @rule(i=indices, into=st.integers(min_value=0, max_value=130))
    def advance_into_a_booking(self, i: int, into: int) -> None:
        future = [b for b in self.bookings.values() if b.start > self.now]
        self.now = pick(future, i).start + into * MINUTE
        for call in self.calls:
            call.machine.tick(self.now)

    # --- dialling and calls -------------------------------------------------------------------

    def try_dial(
        self, booking: Booking | None, contact: Contact, inmate: Inmate, device: Device
    ) -> None:
        live = self.live_calls()
        week = [
            b
            for b in self.bookings.values()
            if b.inmate_id == inmate.id
            and booking is not None
            and same_week(b.start, booking.start)
        ]
        if booking is None:
            return  # no such booking: the facts loader says booking_not_found, not the policy
        facts = CallFacts(device, booking, inmate, contact, self.settings, week, self.categories())
        ctx = CallContext(
            facts,
            inmate_has_live_call=any(c.booking.inmate_id == inmate.id for c in live),
            device_has_live_call=any(c.device_id == device.id for c in live),
        )
        verdict = place_call(ctx, self.now)
        event(f"dial: {verdict.reason.value if isinstance(verdict, Deny) else 'allowed'}")
        if not verdict:
            return
        assert booking is not None
        # The promises: an approved contact, inside the window, the inmate's own tablet.
        assert contact.approved
        assert booking.start <= self.now < booking.end
        assert booking.contact_id == contact.id and booking.inmate_id == inmate.id
        assert device.inmate_id == inmate.id and not device.revoked
        if inmate.remand:
            assert booking.police_clearance is not None  # R11
        self.bookings[booking.id] = replace(booking, state=BookingState.USED)
        deadline = call_deadline(booking, self.settings, self.now)  # R16
        assert self.now < deadline <= booking.end
        machine = CallMachine(booking.start, deadline)
        machine.handle(SetUp(), self.now)
        machine.handle(Dial(), self.now)
        call = Call(booking, contact, device.id, machine)
        self.calls.append(call)
        # Staff try every monitor on the new call, also with levels a tampered record might
        # claim (R13: the category decides, whatever the level says).
        for level in (None, *ControlLevel):
            for kinds in ALL_KIND_SETS:
                self.attempt_monitor(call, kinds, level)

    @precondition(lambda self: bool(self.bookings))
    @rule(i=indices)
    def dial_booking(self, i: int) -> None:
        """The tablet of the booking's inmate dials the booking's contact."""
        self.dial_booking_of(pick(list(self.bookings.values()), i))

    def dial_booking_of(self, b: Booking) -> None:
        inmate = self.inmate(b.inmate_id)
        self.try_dial(b, self.contacts[b.contact_id], inmate, self.tablets[inmate.id])

    @precondition(lambda self: any(b.start <= self.now < b.end for b in self.bookings.values()))
    @rule(i=indices)
    def dial_due(self, i: int) -> None:
        """The tablet dials a booking whose window is open now: the common case."""
        due = [b for b in self.bookings.values() if b.start <= self.now < b.end]
        self.dial_booking_of(pick(due, i))

    @precondition(lambda self: bool(self.contacts))
    @rule(i=indices, j=indices, k=indices, d=indices, with_booking=st.booleans())
    def dial_anything(self, i: int, j: int, k: int, d: int, with_booking: bool) -> None:
        """Any tablet, any inmate, any contact, any booking: a confused or hostile client."""
        contact = pick(list(self.contacts.values()), i)
        inmate = pick(list(INMATES), j)
        booking = pick(list(self.bookings.values()), k) if with_booking and self.bookings else None
        device = pick(list(self.devices.values()), d)
        self.try_dial(booking, contact, inmate, device)

    @precondition(lambda self: bool(self.live_calls()))
    @rule(
        i=indices,
        happening=st.sampled_from(
            [Answer(), LegLost(), Reconnect(), Hangup(), StaffEnd("s", False), StaffEnd("s", True)]
        ),
    )
    def call_event(self, i: int, happening: object) -> None:
        call = pick(self.live_calls(), i)
        try:
            call.machine.handle(happening, self.now)  # type: ignore[arg-type]
        except InvalidTransition:
            pass

    @rule(i=indices)
    def revoke_and_replace_tablet(self, i: int) -> None:
        """R18: a tablet is revoked (its calls end) and the inmate is issued a new one."""
        inmate = pick(list(INMATES), i)
        old = self.tablets[inmate.id]
        self.devices[old.id] = replace(old, revoked=True)
        for call in self.live_calls():
            if call.device_id == old.id:
                call.machine.handle(Revoke(), self.now)
        new = Device(id=self.new_id("device"), serial=inmate.id, inmate_id=inmate.id)
        self.devices[new.id] = new
        self.tablets[inmate.id] = new

    @precondition(lambda self: bool(self.calls))
    @rule(
        i=indices,
        kinds=st.frozensets(st.sampled_from(list(MediaKind))),
        claimed=st.one_of(st.none(), controls),
    )
    def monitor(self, i: int, kinds: frozenset[MediaKind], claimed: ControlLevel | None) -> None:
        """A staff monitor asks to attach; ``claimed`` is a level a tampered record might show."""
        call = pick(self.calls, i)
        if call.machine.state is not CallState.ENDED:
            self.attempt_monitor(call, kinds, claimed)

    def attempt_monitor(
        self, call: Call, kinds: frozenset[MediaKind], claimed: ControlLevel | None
    ) -> None:
        level = call.booking.control if claimed is None else claimed
        verdict = attach_monitor(call.contact.category, level, kinds)
        event(f"monitor: {verdict.reason.value if isinstance(verdict, Deny) else 'allowed'}")
        if verdict:
            call.monitors.append(kinds)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_monitor_on_a_privileged_call(self) -> None:
        for call in self.calls:
            if call.contact.category.privileged:
                assert not call.monitors  # R13

    @invariant()
    def calls_only_inside_their_window(self) -> None:
        for call in self.calls:
            if call.machine.state in (CallState.RINGING, CallState.CONNECTED):
                assert call.booking.start <= self.now < call.booking.end  # R10

    @invariant()
    def calls_only_with_contacts_approved_when_dialled(self) -> None:
        for call in self.calls:
            assert call.contact.approved

    @invariant()
    def personal_contacts_within_the_largest_limit_ever_allowed(self) -> None:
        # R2: lowering the limit removes no contact, so the count may stand above the limit in
        # force; it can never pass the largest limit the facility ever set.
        for inmate in INMATES:
            assert self.personal_in_use(inmate.id) <= self.largest_limit


TestPolicyWorld = PolicyWorld.TestCase
TestPolicyWorld.settings = settings(stateful_step_count=40)
