"""Every reason the system gives for a refusal or for the end of a call.

This module is the one place these codes live (ARCHITECTURE.md principle 5):
the API, the device and visitor protocols, the tablet, the logs, the metrics
and the OpenAPI document all import them from here.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why something was refused. The value is the wire code (API.md)."""

    # The codes API.md fixes.
    CONTACT_NOT_APPROVED = "contact_not_approved"
    CONTACT_LIMIT_REACHED = "contact_limit_reached"
    OUTSIDE_WINDOW = "outside_window"
    BOOKING_NOT_FOUND = "booking_not_found"
    DEVICE_NOT_ASSIGNED = "device_not_assigned"
    DEVICE_REVOKED = "device_revoked"
    POLICE_CLEARANCE_MISSING = "police_clearance_missing"
    FACILITY_CLOSED = "facility_closed"
    FACILITY_RESTRICTED = "facility_restricted"
    PRIVILEGED_NO_MONITOR = "privileged_no_monitor"
    NOT_CONTROLLED = "not_controlled"
    QUOTA_EXHAUSTED = "quota_exhausted"
    CALL_ALREADY_LIVE = "call_already_live"
    FORBIDDEN_ROLE = "forbidden_role"
    INVALID_REQUEST = "invalid_request"
    # The project's own additions.
    NOT_AUTHENTICATED = "not_authenticated"
    CSRF_FAILED = "csrf_failed"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    LOGIN_DELAYED = "login_delayed"  # this client failed for this account: wait (issue 12)
    LOGIN_BUDGET_EXHAUSTED = "login_budget_exhausted"  # this client failed for many accounts
    PRIVILEGED_NO_CONTROL = "privileged_no_control"
    CATEGORY_NOT_CONTROLLABLE = "category_not_controllable"
    GROUNDS_REQUIRED = "grounds_required"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    APPLICATION_MISSING = "application_missing"
    CONTACT_NOT_PENDING = "contact_not_pending"
    APPEAL_NOT_PENDING = "appeal_not_pending"
    INMATE_INACTIVE = "inmate_inactive"
    CAPACITY_TABLETS = "capacity_tablets"
    CAPACITY_ROOM = "capacity_room"
    CAPACITY_MONITORING = "capacity_monitoring"
    ORDER_DEADLINE_PASSED = "order_deadline_passed"
    WINDOW_INVALID = "window_invalid"
    BOOKING_NOT_ACTIVE = "booking_not_active"
    BOOKING_USED = "booking_used"  # a visitor's invite for a call that took place
    BOOKING_CANCELLED = "booking_cancelled"
    NO_VALID_INVITE = "no_valid_invite"  # nothing to send again: make a new link (issue 16)
    NO_EMAIL = "no_email"  # the contact has no e-mail address to send the invite to
    MEDIA_KIND_FORBIDDEN = "media_kind_forbidden"
    CALL_NOT_LIVE = "call_not_live"
    MONITOR_LIMIT_REACHED = "monitor_limit_reached"
    DEVICE_NOT_CONNECTED = "device_not_connected"
    GRANT_INVALID = "grant_invalid"
    NOT_LOOPBACK = "not_loopback"  # the tablet agent's page API is for this machine only
    INVALID_TRANSITION = "invalid_transition"
    BRIDGE_UNAVAILABLE = "bridge_unavailable"
    INTERNAL_ERROR = "internal_error"  # a bug on the server, never bad input
    # The transparency log (kiosk/audit/, issue 18).
    BEYOND_LOG = "beyond_log"
    WITNESS_UNKNOWN = "witness_unknown"
    COSIGNATURE_INVALID = "cosignature_invalid"
    # Enrolment over USB (provisioning/, kiosk/enrolment/tablet.py).
    SERIAL_NOT_IN_INVENTORY = "serial_not_in_inventory"
    SERIAL_MISMATCH = "serial_mismatch"
    CSR_SUBJECT_MISMATCH = "csr_subject_mismatch"
    BAD_CSR_SIGNATURE = "bad_csr_signature"
    BAD_NONCE_SIGNATURE = "bad_nonce_signature"
    REPLAYED_NONCE = "replayed_nonce"
    BAD_BUNDLE_SIGNATURE = "bad_bundle_signature"
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    ALREADY_PROVISIONED = "already_provisioned"
    OPERATOR_REJECTED = "operator_rejected"
    ENROLMENT_TIMEOUT = "enrolment_timeout"
    UNSUPPORTED_VERSION = "unsupported_version"
    REGISTRATION_FAILED = "registration_failed"
    # Staff set their own passwords by one-time link (issue 16). Codes, not secrets.
    PASSWORD_LINK_UNKNOWN = "password_link_unknown"  # noqa: S105
    PASSWORD_LINK_USED = "password_link_used"  # noqa: S105
    PASSWORD_LINK_EXPIRED = "password_link_expired"  # noqa: S105
    PASSWORD_LINK_REPLACED = "password_link_replaced"  # noqa: S105
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (the current one, when changing it)
    PASSWORD_TOO_SHORT = "password_too_short"  # noqa: S105


MESSAGES: dict[Reason, str] = {
    Reason.CONTACT_NOT_APPROVED: "This contact has no approving decision in force.",
    Reason.CONTACT_LIMIT_REACHED: "The inmate already has the most personal contacts allowed.",
    Reason.OUTSIDE_WINDOW: "This is outside the booked time window.",
    Reason.BOOKING_NOT_FOUND: "There is no such booking.",
    Reason.DEVICE_NOT_ASSIGNED: "This tablet is not assigned to the inmate.",
    Reason.DEVICE_REVOKED: "This tablet has been revoked.",
    Reason.POLICE_CLEARANCE_MISSING: "Calls for inmates on remand need police clearance first.",
    Reason.FACILITY_CLOSED: "The visit office is closed for that period.",
    Reason.FACILITY_RESTRICTED: "Calls are suspended or limited by a facility restriction.",
    Reason.PRIVILEGED_NO_MONITOR: "Calls with defence counsel or police are never monitored.",
    Reason.NOT_CONTROLLED: "This call is not under control; there is nothing to monitor.",
    Reason.QUOTA_EXHAUSTED: "The weekly call quota is used up.",
    Reason.CALL_ALREADY_LIVE: "A call is already live.",
    Reason.FORBIDDEN_ROLE: "Your role may not do this.",
    Reason.INVALID_REQUEST: "The request is not valid.",
    Reason.NOT_AUTHENTICATED: "Log in first.",
    Reason.CSRF_FAILED: "The request lacks a valid CSRF token.",
    Reason.NOT_FOUND: "There is no such thing.",
    Reason.CONFLICT: "This conflicts with the current state.",
    Reason.PAYLOAD_TOO_LARGE: "The request body is too large.",
    Reason.RATE_LIMITED: "Too many requests; slow down.",
    Reason.LOGIN_DELAYED: "Too many wrong passwords from here for this user; try again shortly.",
    Reason.LOGIN_BUDGET_EXHAUSTED: "Too many wrong passwords from here; try again later.",
    Reason.PRIVILEGED_NO_CONTROL: "Calls with defence counsel or police can never be controlled.",
    Reason.CATEGORY_NOT_CONTROLLABLE: "Calls in this category cannot be controlled.",
    Reason.GROUNDS_REQUIRED: "A controlled decision must state its grounds.",
    Reason.EMAIL_NOT_CONFIRMED: "The contact has not confirmed the wish to call and the address.",
    Reason.APPLICATION_MISSING: "No visit application has been received for this contact.",
    Reason.CONTACT_NOT_PENDING: "The contact is not awaiting this step.",
    Reason.APPEAL_NOT_PENDING: "The appeal has already been decided.",
    Reason.INMATE_INACTIVE: "The inmate is not active.",
    Reason.CAPACITY_TABLETS: "No tablet is free in that slot.",
    Reason.CAPACITY_ROOM: "The room is taken in that slot.",
    Reason.CAPACITY_MONITORING: "No staff are free to monitor a controlled call in that slot.",
    Reason.ORDER_DEADLINE_PASSED: "The order deadline for that period has passed.",
    Reason.WINDOW_INVALID: "The window must end after it starts.",
    Reason.BOOKING_NOT_ACTIVE: "The booking is cancelled, held or already used.",
    Reason.BOOKING_USED: "This call has already taken place.",
    Reason.BOOKING_CANCELLED: "This call was cancelled by the prison.",
    Reason.NO_VALID_INVITE: "The booking has no invite link that still works; make a new one.",
    Reason.NO_EMAIL: "The contact has no e-mail address to send the invite to.",
    Reason.MEDIA_KIND_FORBIDDEN: "The decision does not allow monitoring that kind of media.",
    Reason.CALL_NOT_LIVE: "The call is not live.",
    Reason.MONITOR_LIMIT_REACHED: "This call already has as many monitors as allowed.",
    Reason.DEVICE_NOT_CONNECTED: "The tablet is not connected.",
    Reason.GRANT_INVALID: "The call grant is not valid.",
    Reason.NOT_LOOPBACK: "Only this tablet's own page may use the agent.",
    Reason.INVALID_TRANSITION: "The call cannot do that in its current state.",
    Reason.BRIDGE_UNAVAILABLE: "Controlled calls need the bridge, which is not available.",
    Reason.INTERNAL_ERROR: "Something went wrong on the server; it has been logged.",
    Reason.BEYOND_LOG: "The audit log's tree is not that large yet (it grows at checkpoints).",
    Reason.WITNESS_UNKNOWN: "This key is not one of the log's witnesses ([audit] witnesses).",
    Reason.COSIGNATURE_INVALID: "The cosignature does not verify for that checkpoint.",
    Reason.SERIAL_NOT_IN_INVENTORY: "This tablet's serial is not in the station's inventory.",
    Reason.SERIAL_MISMATCH: "The serial the tablet signed differs from its USB serial.",
    Reason.CSR_SUBJECT_MISMATCH: "The certificate request does not name the tablet's serial.",
    Reason.BAD_CSR_SIGNATURE: "The certificate request's signature is not valid.",
    Reason.BAD_NONCE_SIGNATURE: "The tablet's signature over the station's nonce is not valid.",
    Reason.REPLAYED_NONCE: "The message answers another session's nonce (a replay).",
    Reason.BAD_BUNDLE_SIGNATURE: "The provisioning bundle is not signed by the pinned station key.",
    Reason.CERTIFICATE_MISMATCH: "The issued certificate does not match the tablet's key or CA.",
    Reason.ALREADY_PROVISIONED: "The tablet is already provisioned; ask for re-provisioning.",
    Reason.OPERATOR_REJECTED: "The operator did not confirm the serial printed on the case.",
    Reason.ENROLMENT_TIMEOUT: "The other side did not answer in time.",
    Reason.UNSUPPORTED_VERSION: "The other side speaks an enrolment protocol version we do not.",
    Reason.REGISTRATION_FAILED: "The server did not accept the tablet's registration.",
    Reason.PASSWORD_LINK_UNKNOWN: "This set-password link is not valid.",
    Reason.PASSWORD_LINK_USED: "This set-password link has been used already.",
    Reason.PASSWORD_LINK_EXPIRED: "This set-password link has expired.",
    Reason.PASSWORD_LINK_REPLACED: "A newer set-password link was issued; this one is void.",
    Reason.WRONG_PASSWORD: "The current password is wrong.",
    Reason.PASSWORD_TOO_SHORT: "The password must be at least 12 characters.",
}


class GrantRefusal(StrEnum):
    """Why the tablet refused a grant: the finer reason under ``grant_invalid``.

    The tablet shows it as the refusal's ``detail`` and reports it to the
    server (``grant_refused``), which records it (principle 1: both ends enforce).
    """

    BAD_SIGNATURE = "bad_signature"
    WRONG_DEVICE = "wrong_device"
    MALFORMED = "malformed"
    BAD_WINDOW = "bad_window"
    REPLAYED = "replayed"
    EXPIRED = "expired"  # its end has passed, by the grant or by the server's own clock
    NOT_YET_OPEN = "not_yet_open"
    UNSOLICITED = "unsolicited"  # this tablet is not dialling
    CALL_ALREADY_LIVE = "call_already_live"  # another call is live on this tablet
    NOT_MY_DIAL = "not_my_dial"  # it answers no dial this tablet has outstanding
    PRIVILEGED_MONITORED = "privileged_monitored"  # R13: bridged or controlled
    NO_SERVER_TIME = "no_server_time"  # the server's clock is not known yet


class EndReason(StrEnum):
    """Why a call ended, as shown to both ends and kept in the record."""

    TIME_UP = "time_up"
    ENDED_BY_STAFF = "ended_by_staff"
    BREACH = "breach"
    HANGUP = "hangup"
    CONNECTION_LOST = "connection_lost"
    DEVICE_REVOKED = "device_revoked"
    FACILITY_RESTRICTED = "facility_restricted"
    BRIDGE_FAILED = "bridge_failed"
    SERVER_RESTARTED = "server_restarted"
    CANCELLED = "cancelled"
