"""Who may do what: the staff roles of the API (ARCHITECTURE.md, Trust), as data.

Deny by default: an action not listed for a role is refused with
``forbidden_role``. The roles (issue 2):

- ``officer``: reads everything the casework needs; sets up, ends and monitors calls.
- ``visit_office``: contacts, decisions, appeals, bookings, inmates; reads the rest.
- ``admin``: devices, staff, facility settings and the audit chain. An admin may
  also do the visit office's work (small prisons run both from one desk; every
  act is in the audit chain under the admin's own id) and set up and end calls,
  but never watches or listens to one: monitoring people is an officer's job,
  and an account that controls devices and staff should not also be a
  listening post.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from kiosk.domain.model import Role
from kiosk.domain.policy import ALLOW, Deny, Verdict
from kiosk.domain.reasons import Reason


class Action(StrEnum):
    INMATE_READ = "inmate.read"
    INMATE_WRITE = "inmate.write"
    CONTACT_READ = "contact.read"
    CONTACT_WRITE = "contact.write"  # propose, update, confirm e-mail, record application
    CONTACT_DECIDE = "contact.decide"  # R4, R6-R8
    APPEAL_READ = "appeal.read"
    APPEAL_FILE = "appeal.file"  # R8
    APPEAL_DECIDE = "appeal.decide"  # R8
    BOOKING_READ = "booking.read"
    BOOKING_WRITE = "booking.write"  # create, cancel, police clearance (R9-R11, R15-R17)
    CALL_READ = "call.read"
    CALL_SET_UP = "call.set_up"  # R12
    CALL_END = "call.end"  # R14
    CALL_MONITOR = "call.monitor"  # R6, R13
    DEVICE_READ = "device.read"
    DEVICE_WRITE = "device.write"  # register, assign, revoke
    FACILITY_READ = "facility.read"
    FACILITY_WRITE = "facility.write"  # settings, closures (R15), restrictions (R16)
    STAFF_READ = "staff.read"
    STAFF_WRITE = "staff.write"  # add accounts, change role, deactivate, set a password
    AUDIT_READ = "audit.read"
    SELF = "self"  # who am I, log out


_READ = frozenset(
    {
        Action.SELF,
        Action.INMATE_READ,
        Action.CONTACT_READ,
        Action.APPEAL_READ,
        Action.BOOKING_READ,
        Action.CALL_READ,
        Action.DEVICE_READ,
        Action.FACILITY_READ,
    }
)

_VISIT_OFFICE_WORK = frozenset(
    {
        Action.INMATE_WRITE,
        Action.CONTACT_WRITE,
        Action.CONTACT_DECIDE,
        Action.APPEAL_FILE,
        Action.APPEAL_DECIDE,
        Action.BOOKING_WRITE,
    }
)

_CALL_HANDLING = frozenset({Action.CALL_SET_UP, Action.CALL_END})

PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.OFFICER: _READ | _CALL_HANDLING | {Action.CALL_MONITOR},
    Role.VISIT_OFFICE: _READ | _VISIT_OFFICE_WORK,
    Role.ADMIN: _READ
    | _VISIT_OFFICE_WORK
    | _CALL_HANDLING
    | {
        Action.DEVICE_WRITE,
        Action.FACILITY_WRITE,
        Action.STAFF_READ,
        Action.STAFF_WRITE,
        Action.AUDIT_READ,
    },
}


def authorize(role: Role, action: Action) -> Verdict:
    """Allow ``action`` for ``role`` or refuse it with ``forbidden_role``."""
    if action in PERMISSIONS.get(role, frozenset()):
        return ALLOW
    return Deny(Reason.FORBIDDEN_ROLE, f"{role.value} may not {action.value}")
