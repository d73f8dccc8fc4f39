"""Request and response bodies of the staff API: the one definition.

The same models validate every request and generate the OpenAPI document
(kiosk/signalling/openapi.py), so the document cannot drift from what the
server accepts. Requests are strict: unknown fields, wrong JSON types and
oversize strings are refused with ``invalid_request`` naming the field.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from kiosk.domain.model import (
    AppealBy,
    AppealState,
    BookingState,
    Category,
    ContactStatus,
    ControlLevel,
    Ground,
    Initiation,
    LocationKind,
    Outcome,
    Relation,
    RestrictionKind,
    Role,
    Route,
)
from kiosk.domain.reasons import Reason

# Far enough either way for any booking or record, and far from datetime's
# limits, so that week and day arithmetic on a value can never overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    try:
        at = value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-12:00
        raise ValueError("date-time out of range") from exc
    if not EARLIEST <= at < LATEST:
        raise ValueError("date-time out of range (1970 to 9000)")
    return at


def _known_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
]
Note = Annotated[str, StringConstraints(max_length=500)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Location = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Zone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_known_zone)]
SmallCount = Annotated[int, Field(ge=0, le=1000)]
Minutes = Annotated[int, Field(ge=1, le=10080)]


class Request(BaseModel):
    """A request body: strict JSON types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters arrive as text, so they are parsed (not strict) but still closed."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """A response body: built from the store's typed records by attribute (``model_validate``)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


# Errors ---------------------------------------------------------------------


class ErrorBody(Response):
    code: Reason
    message: str


class ErrorResponse(Response):
    error: ErrorBody


# Login ----------------------------------------------------------------------


class LoginRequest(Request):
    username: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class StaffOut(Response):
    id: str
    username: str
    display_name: str
    role: Role


Username = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^\S+$")]
Password = Annotated[str, StringConstraints(min_length=12, max_length=1000)]


class StaffCreate(Request):
    username: Username
    display_name: Name
    role: Role
    password: Password


class StaffUpdate(Request):
    display_name: Name | None = None
    role: Role | None = None
    active: bool | None = None
    password: Password | None = None


class StaffAccount(Response):
    id: str
    username: str
    display_name: str
    role: Role
    active: bool


class StaffList(Response):
    items: list[StaffAccount]


class LoginResponse(Response):
    csrf_token: str
    expires_at: datetime
    staff: StaffOut


class MeResponse(Response):
    staff: StaffOut
    via: Literal["session", "token"]
    # What this role may do (kiosk.domain.access), so a client offers nothing else.
    actions: list[str] = Field(default_factory=list)


class Empty(Response):
    pass


# Inmates --------------------------------------------------------------------


class InmateCreate(Request):
    name: Name
    remand: bool = False
    minor: bool = False


class InmateUpdate(Request):
    name: Name | None = None
    remand: bool | None = None
    minor: bool | None = None
    active: bool | None = None


class InmateOut(Response):
    id: str
    name: str
    remand: bool
    minor: bool
    active: bool


class InmateList(Response):
    items: list[InmateOut]


class InmateListQuery(Query):
    active: bool | None = None


# Contacts, decisions, appeals -----------------------------------------------


class ContactPropose(Request):
    name: Name
    email: Email
    category: Category
    relation: Relation
    cleared_for_visits: bool = False  # R3 / R4


class ContactUpdate(Request):
    """Category is not updatable: a changed category is a new contact (R2, R5)."""

    name: Name | None = None
    email: Email | None = None
    relation: Relation | None = None


class DecisionRequest(Request):
    outcome: Outcome
    control: ControlLevel = ControlLevel.NONE
    grounds: Annotated[list[Ground], Field(max_length=8)] = Field(default_factory=list)
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class DecisionOut(Response):
    id: str
    outcome: Outcome
    control: ControlLevel
    grounds: list[Ground]
    decided_by: str
    decided_at: datetime
    note: str


class BreachOut(Response):
    """R14: a breach recorded against contact and inmate, shown at later assessments."""

    id: str
    call_id: str
    recorded_by: str
    recorded_at: datetime
    note: str


class ContactOut(Response):
    id: str
    inmate_id: str
    name: str
    email: str
    category: Category
    relation: Relation
    status: ContactStatus
    cleared_for_visits: bool
    email_confirmed: bool
    application_received: bool
    control: ControlLevel
    decision: DecisionOut | None
    breaches: int
    breach_records: list[BreachOut]


class ContactList(Response):
    items: list[ContactOut]


class AppealCreate(Request):
    by: AppealBy
    text: Text


class AppealDecisionRequest(Request):
    """R8: the decision is upheld, or changed to the new decision given."""

    result: Literal["upheld", "changed"]
    decision: DecisionRequest | None = None


class AppealOut(Response):
    id: str
    contact_id: str
    decision_id: str
    by: AppealBy
    filed_at: datetime
    text: str
    state: AppealState
    result_decision_id: str | None
    decided_at: datetime | None


class AppealList(Response):
    items: list[AppealOut]


# Bookings -------------------------------------------------------------------


class PoliceClearanceIn(Request):
    """R11: who at the police cleared the call, and when."""

    cleared_by: Name
    cleared_at: UtcDatetime


class PoliceClearanceOut(Response):
    cleared_by: str
    cleared_at: datetime


class BookingCreate(Request):
    inmate_id: Id
    contact_id: Id
    start: UtcDatetime
    end: UtcDatetime
    location_kind: LocationKind
    location: Location
    initiation: Initiation
    police_clearance: PoliceClearanceIn | None = None
    override_closure: bool = False  # R15


class BookingOut(Response):
    id: str
    inmate_id: str
    contact_id: str
    start: datetime
    end: datetime
    location_kind: LocationKind
    location: str
    initiation: Initiation
    state: BookingState
    control: ControlLevel
    police_clearance: PoliceClearanceOut | None


class BookingList(Response):
    items: list[BookingOut]


class BookingListQuery(Query):
    day: date | None = None  # in the facility's time zone
    inmate_id: Id | None = None
    state: BookingState | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 200


class BookingCancel(Request):
    note: Note = ""


# Calls ----------------------------------------------------------------------


# A call as stored: validated from kiosk.store.calls.CallRecord.
class CallOut(Response):
    id: str
    booking_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: Category
    route: Route
    control: ControlLevel
    state: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    connected_seconds: int


class CallList(Response):
    items: list[CallOut]


class CallListQuery(Query):
    live: bool | None = None
    inmate_id: Id | None = None
    day: date | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 200


# Devices --------------------------------------------------------------------


def _certificate_serial(value: str) -> str:
    # RFC 5280: a positive integer of at most 20 octets (159 bits as a positive
    # DER integer); anything else is no certificate the CA could have issued.
    if not 0 < int(value, 16) < 2**159:
        raise ValueError("a certificate serial is a positive number of at most 159 bits")
    return value.lower()


CertificateSerial = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F]+$"),
    AfterValidator(_certificate_serial),
]


class DeviceRegister(Request):
    serial: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    model: Annotated[str, StringConstraints(max_length=100)] = ""
    certificate_serial: CertificateSerial | None = None


class DeviceCertificate(Request):
    """Re-provisioning: the tablet's new certificate; the old one is revoked."""

    certificate_serial: CertificateSerial


class DeviceAssign(Request):
    inmate_id: Id | None


class DeviceOut(Response):
    id: str
    serial: str
    model: str
    inmate_id: str | None
    revoked: bool
    certificate_serial: str | None
    registered_at: datetime
    last_seen_at: datetime | None


class DeviceList(Response):
    items: list[DeviceOut]


class TamperEventOut(Response):
    """A tablet's report of tampering (R18, USB guard)."""

    id: str
    device_id: str
    at: datetime
    kind: str
    details: dict[str, str]


class TamperEventList(Response):
    items: list[TamperEventOut]


# Facility -------------------------------------------------------------------


class ClosureCreate(Request):
    start: UtcDatetime
    end: UtcDatetime
    order_deadline: UtcDatetime | None = None
    note: Note = ""


class ClosureOut(Response):
    id: str
    start: datetime
    end: datetime
    order_deadline: datetime | None
    note: str


class RestrictionCreate(Request):
    start: UtcDatetime
    end: UtcDatetime
    kind: RestrictionKind
    limit_minutes: Minutes | None = None
    note: Note = ""


class RestrictionOut(Response):
    id: str
    start: datetime
    end: datetime
    kind: RestrictionKind
    limit_minutes: int | None
    note: str


class RestrictionCreated(Response):
    """R16: the restriction, and the bookings it put on hold."""

    restriction: RestrictionOut
    held_bookings: list[str]


class RestrictionRemoved(Response):
    """Bookings held only by the removed restriction are booked again."""

    released_bookings: list[str]


class FacilityUpdate(Request):
    name: Name | None = None
    timezone: Zone | None = None
    contact_limit: SmallCount | None = None  # R2
    weekly_quota_minutes: Annotated[int, Field(ge=0, le=10080)] | None = None  # R17
    parent_weekly_quota_minutes: Annotated[int, Field(ge=0, le=10080)] | None = None  # R17
    tablets: SmallCount | None = None  # R9
    rooms: Annotated[list[Location], Field(max_length=100)] | None = None  # R9
    monitoring_staff: SmallCount | None = None  # R9
    max_call_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None  # R10


class FacilityOut(Response):
    id: str
    name: str
    timezone: str
    contact_limit: int
    weekly_quota_minutes: int
    parent_weekly_quota_minutes: int
    tablets: int
    rooms: list[str]
    monitoring_staff: int
    max_call_minutes: int
    closures: list[ClosureOut]
    restrictions: list[RestrictionOut]


# Audit ----------------------------------------------------------------------


class AuditQuery(Query):
    after_seq: Annotated[int, Field(ge=0, le=2**62)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AuditEntryOut(Response):
    seq: int
    at: datetime
    actor: str
    action: str
    subjects: dict[str, str]
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditList(Response):
    items: list[AuditEntryOut]


class AuditVerifyOut(Response):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str
