"""The domain's types: plain, immutable values with no I/O.

Norwegian terms appear here once, in docstrings (DOMAIN.md glossary); the
code speaks English. Times are timezone-aware ``datetime`` in UTC; ids are
strings (UUID text) so that the same values travel through the API, the
store, grants and the audit chain unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from kiosk.domain.reasons import EndReason


class Category(StrEnum):
    """Contact categories (R5). The one list of them: everything imports it."""

    PERSONAL = "personal"
    DEFENCE_COUNSEL = "defence_counsel"
    POLICE = "police"
    COURT = "court"
    OFFICIAL = "official"

    @property
    def counts_toward_limit(self) -> bool:
        # R2: only personal contacts count against the facility's limit.
        return self is Category.PERSONAL

    @property
    def privileged(self) -> bool:
        # R13: defence counsel and police calls are never overheard or watched.
        return self in (Category.DEFENCE_COUNSEL, Category.POLICE)

    @property
    def may_be_controlled(self) -> bool:
        # R5 table: only personal and official contacts may be controlled.
        return self in (Category.PERSONAL, Category.OFFICIAL)

    @property
    def counts_toward_quota(self) -> bool:
        # R17 with R2/004: no quota for lawyers, police, courts or officials.
        return self is Category.PERSONAL


class ControlLevel(StrEnum):
    """Control of a call (R6): nobody, staff's sight (video), hearing (audio) or both.

    Norwegian: påsyn = sight, påhør = hearing, kontrollert besøk = controlled call.
    """

    NONE = "none"
    SIGHT = "sight"
    HEARING = "hearing"
    SIGHT_AND_HEARING = "sight_and_hearing"

    @property
    def controlled(self) -> bool:
        return self is not ControlLevel.NONE

    @property
    def media_kinds(self) -> frozenset[MediaKind]:
        """The media a staff monitor may receive at this level (R6)."""
        return _LEVEL_KINDS[self]


class MediaKind(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


_LEVEL_KINDS: dict[ControlLevel, frozenset[MediaKind]] = {
    ControlLevel.NONE: frozenset(),
    ControlLevel.SIGHT: frozenset({MediaKind.VIDEO}),
    ControlLevel.HEARING: frozenset({MediaKind.AUDIO}),
    ControlLevel.SIGHT_AND_HEARING: frozenset({MediaKind.VIDEO, MediaKind.AUDIO}),
}


class Route(StrEnum):
    """Where a call's media flows (ARCHITECTURE.md principles 2 and 3)."""

    P2P = "p2p"
    BRIDGE = "bridge"


class Relation(StrEnum):
    """The contact's relation to the inmate. ``child`` drives R17's parent quota."""

    CHILD = "child"
    PARENT = "parent"
    PARTNER = "partner"
    SIBLING = "sibling"
    OTHER_FAMILY = "other_family"
    FRIEND = "friend"
    PROFESSIONAL = "professional"


class ContactStatus(StrEnum):
    """Where a contact stands on the way to an approving decision (R1, R3, R4)."""

    AWAITING_CONFIRMATION = "awaiting_confirmation"  # R3: cleared, e-mail not yet confirmed
    AWAITING_APPLICATION = "awaiting_application"  # R4: not cleared, no application yet
    AWAITING_ASSESSMENT = "awaiting_assessment"  # ready for the visit office's decision
    APPROVED = "approved"
    REFUSED = "refused"


class Outcome(StrEnum):
    APPROVE = "approve"
    REFUSE = "refuse"


class Ground(StrEnum):
    """Typical grounds for control (R7)."""

    SEXUAL_OFFENCE = "sexual_offence"
    ABUSE_IN_HOME = "abuse_in_home"
    WITNESS_TAMPERING = "witness_tampering"
    DOMESTIC_VIOLENCE = "domestic_violence"
    THREATS = "threats"
    DRUGS = "drugs"
    ESCAPE_RISK = "escape_risk"
    OTHER = "other"


class AppealState(StrEnum):
    PENDING = "pending"
    UPHELD = "upheld"  # the decision stands
    CHANGED = "changed"  # a new decision replaces it


class AppealBy(StrEnum):
    INMATE = "inmate"
    CONTACT = "contact"


class Initiation(StrEnum):
    """Who asked for a booking (R9: wishes are weighed, capacity weighs most)."""

    STAFF = "staff"
    INMATE = "inmate"


class LocationKind(StrEnum):
    CELL = "cell"
    ROOM = "room"


class BookingState(StrEnum):
    BOOKED = "booked"
    HELD = "held"  # R16: held by a restriction, may be released
    CANCELLED = "cancelled"
    USED = "used"


class RestrictionKind(StrEnum):
    SUSPEND = "suspend"  # R16: no calls at all
    LIMIT = "limit"  # R16: calls no longer than limit_minutes


class Role(StrEnum):
    OFFICER = "officer"
    VISIT_OFFICE = "visit_office"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Closure:
    """R15: the visit office is closed in [start, end); orders close at order_deadline."""

    id: str
    start: datetime
    end: datetime
    order_deadline: datetime | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Restriction:
    """R16: calls suspended or limited in [start, end), e.g. during an outbreak."""

    id: str
    start: datetime
    end: datetime
    kind: RestrictionKind
    limit_minutes: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class FacilitySettings:
    """A facility's local choices (DOMAIN.md: settings with defaults)."""

    contact_limit: int = 4  # R2
    weekly_quota_minutes: int = 60  # R17
    parent_weekly_quota_minutes: int = 120  # R17: larger for calls with one's children
    tablets: int = 4  # R9
    rooms: tuple[str, ...] = ("visit-room-1", "visit-room-2")  # R9
    monitoring_staff: int = 2  # R9: controlled calls staff can monitor at once
    max_call_minutes: int = 120  # R10: physical visits are normally 2 h
    # Issue 16: the visit office's contact details, given to a visitor whose call cannot
    # take place (window closed, booking cancelled or held).
    visitor_phone: str = ""
    visitor_email: str = ""
    visitor_hours: str = ""
    closures: tuple[Closure, ...] = ()
    restrictions: tuple[Restriction, ...] = ()


@dataclass(frozen=True, slots=True)
class Facility:
    """One prison or department (e.g. Romerike prison, Kroksrud ward)."""

    id: str
    name: str
    timezone: str = "Europe/Oslo"
    settings: FacilitySettings = field(default_factory=FacilitySettings)


@dataclass(frozen=True, slots=True)
class Inmate:
    """A person serving a sentence or held on remand (innsatt, varetekt)."""

    id: str
    facility_id: str
    name: str
    remand: bool = False
    minor: bool = False
    active: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """The written decision on a contact (vedtak), with its control measure (R6-R8)."""

    id: str
    contact_id: str
    outcome: Outcome
    control: ControlLevel
    grounds: tuple[Ground, ...]
    decided_by: str
    decided_at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    """A person or body outside whom an inmate may call, once approved (R1)."""

    id: str
    inmate_id: str
    name: str
    email: str
    category: Category
    relation: Relation
    status: ContactStatus
    cleared_for_visits: bool = False  # klarering (R3)
    email_confirmed: bool = False  # R3
    application_received: bool = False  # R4
    decision: Decision | None = None  # the decision in force (R8)
    breaches: int = 0  # R14

    @property
    def approved(self) -> bool:
        return (
            self.status is ContactStatus.APPROVED
            and self.decision is not None
            and self.decision.outcome is Outcome.APPROVE
        )

    @property
    def control(self) -> ControlLevel:
        """The control level in force; privileged contacts are never controlled (R13)."""
        if self.category.privileged or self.decision is None:
            return ControlLevel.NONE
        return self.decision.control


@dataclass(frozen=True, slots=True)
class Appeal:
    """An appeal (klage) against a decision; the decision stands meanwhile (R8)."""

    id: str
    contact_id: str
    decision_id: str
    by: AppealBy
    filed_at: datetime
    text: str
    state: AppealState = AppealState.PENDING
    result_decision_id: str | None = None  # the new decision when the appeal changed it
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PoliceClearance:
    """R11: who at the police cleared a remand inmate's call, and when."""

    cleared_by: str
    cleared_at: datetime


@dataclass(frozen=True, slots=True)
class Booking:
    """A window the prison set for one call (R9, R10, R12)."""

    id: str
    inmate_id: str
    contact_id: str
    start: datetime
    end: datetime
    location_kind: LocationKind
    location: str  # the cell or room (R12)
    initiation: Initiation
    state: BookingState = BookingState.BOOKED
    police_clearance: PoliceClearance | None = None  # R11
    control: ControlLevel = ControlLevel.NONE  # copied from the decision when booked

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


@dataclass(frozen=True, slots=True)
class Device:
    """A tablet, known by its certificate (ARCHITECTURE.md, Trust)."""

    id: str
    serial: str
    inmate_id: str | None = None
    revoked: bool = False
    certificate_serial: str | None = None


class CallState(StrEnum):
    BOOKED = "booked"
    READY = "ready"  # staff set it up on the tablet (R12)
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call, live or past: who, where the media flows, the window and how it went.

    The one record of a call: the switchboard keeps it, the store writes it as a
    row of ``calls``, the staff API shows it (``CallOut`` is validated from it).
    """

    id: str
    booking_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: Category
    route: Route
    control: ControlLevel
    state: CallState
    not_before: datetime
    not_after: datetime
    created_at: datetime
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    connected_seconds: int = 0  # R17: what the call used of the week's quota

    @property
    def live(self) -> bool:
        return self.ended_at is None
