"""The one database schema, for SQLite (embedded) and PostgreSQL (production).

SQLAlchemy Core tables; Alembic migrations in ``kiosk/store/migrations`` are
generated from these. Times are stored as timezone-aware UTC. Enumerated
values are stored as their string codes from ``kiosk.domain.model``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from kiosk.store.columns import ID, _ts
from kiosk.store.columns import UTCDateTime as UTCDateTime
from kiosk.store.columns import metadata as metadata

facilities = Table(
    "facilities",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False, server_default="Europe/Oslo"),
    Column("contact_limit", Integer, nullable=False, server_default="4"),
    Column("weekly_quota_minutes", Integer, nullable=False, server_default="60"),
    Column("parent_weekly_quota_minutes", Integer, nullable=False, server_default="120"),
    Column("tablets", Integer, nullable=False, server_default="4"),
    Column("rooms", JSON, nullable=False),
    Column("monitoring_staff", Integer, nullable=False, server_default="2"),
    Column("max_call_minutes", Integer, nullable=False, server_default="120"),
    # Issue 16: where a visitor whose call cannot take place turns to.
    Column("visitor_phone", String(40), nullable=False, server_default=""),
    Column("visitor_email", String(254), nullable=False, server_default=""),
    Column("visitor_hours", String(200), nullable=False, server_default=""),
)

closures = Table(
    "closures",
    metadata,
    Column("id", ID, primary_key=True),
    Column("facility_id", ID, ForeignKey("facilities.id"), nullable=False),
    _ts("start"),
    _ts("end"),
    _ts("order_deadline", nullable=True),
    Column("note", String(500), nullable=False, server_default=""),
)

restrictions = Table(
    "restrictions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("facility_id", ID, ForeignKey("facilities.id"), nullable=False),
    _ts("start"),
    _ts("end"),
    Column("kind", String(16), nullable=False),
    Column("limit_minutes", Integer, nullable=True),
    Column("note", String(500), nullable=False, server_default=""),
)

inmates = Table(
    "inmates",
    metadata,
    Column("id", ID, primary_key=True),
    Column("facility_id", ID, ForeignKey("facilities.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("remand", Boolean, nullable=False, server_default="0"),
    Column("minor", Boolean, nullable=False, server_default="0"),
    Column("active", Boolean, nullable=False, server_default="1"),
    _ts("created_at"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("inmate_id", ID, ForeignKey("inmates.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("category", String(32), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("cleared_for_visits", Boolean, nullable=False, server_default="0"),
    Column("email_confirmed", Boolean, nullable=False, server_default="0"),
    Column("application_received", Boolean, nullable=False, server_default="0"),
    Column("decision_id", ID, nullable=True),  # the decision in force (R8)
    Column("breaches", Integer, nullable=False, server_default="0"),  # R14
    _ts("created_at"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("control", String(32), nullable=False),
    Column("grounds", JSON, nullable=False),
    Column("decided_by", ID, nullable=False),
    _ts("decided_at"),
    Column("note", Text, nullable=False, server_default=""),
)

appeals = Table(
    "appeals",
    metadata,
    Column("id", ID, primary_key=True),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False, index=True),
    Column("decision_id", ID, ForeignKey("decisions.id"), nullable=False),
    Column("by", String(16), nullable=False),
    _ts("filed_at"),
    Column("text", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("result_decision_id", ID, nullable=True),
    _ts("decided_at", nullable=True),
)

breaches = Table(
    "breaches",
    metadata,
    Column("id", ID, primary_key=True),
    Column("inmate_id", ID, ForeignKey("inmates.id"), nullable=False, index=True),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False, index=True),
    Column("call_id", ID, nullable=False),
    Column("recorded_by", ID, nullable=False),
    _ts("recorded_at"),
    Column("note", Text, nullable=False, server_default=""),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", ID, primary_key=True),
    Column("inmate_id", ID, ForeignKey("inmates.id"), nullable=False, index=True),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False),
    _ts("start"),
    _ts("end"),
    Column("location_kind", String(16), nullable=False),
    Column("location", String(100), nullable=False),
    Column("initiation", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("control", String(32), nullable=False),
    Column("police_cleared_by", String(200), nullable=True),  # R11
    _ts("police_cleared_at", nullable=True),
    Column("created_by", ID, nullable=False),
    _ts("created_at"),
    Index("ix_bookings_start_end", "start", "end"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", ID, primary_key=True),
    Column("serial", String(100), nullable=False, unique=True),
    Column("model", String(100), nullable=False, server_default=""),
    Column("inmate_id", ID, ForeignKey("inmates.id"), nullable=True),
    Column("revoked", Boolean, nullable=False, server_default="0"),
    Column("certificate_serial", String(64), nullable=True, unique=True),
    _ts("registered_at"),
    _ts("last_seen_at", nullable=True),
)

tamper_events = Table(
    "tamper_events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("device_id", ID, ForeignKey("devices.id"), nullable=False, index=True),
    _ts("at"),
    Column("kind", String(64), nullable=False),
    Column("details", JSON, nullable=False),
)

revoked_certificates = Table(
    "revoked_certificates",
    metadata,
    Column("serial", String(64), primary_key=True),
    _ts("revoked_at"),
)

calls = Table(
    "calls",
    metadata,
    Column("id", ID, primary_key=True),
    Column("booking_id", ID, ForeignKey("bookings.id"), nullable=False, index=True),
    Column("device_id", ID, ForeignKey("devices.id"), nullable=False),
    Column("inmate_id", ID, ForeignKey("inmates.id"), nullable=False),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False),
    Column("category", String(32), nullable=False),
    Column("route", String(16), nullable=False),
    Column("control", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    _ts("not_before"),
    _ts("not_after"),
    _ts("created_at"),
    _ts("connected_at", nullable=True),
    _ts("ended_at", nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("connected_seconds", Integer, nullable=False, server_default="0"),  # R17 use
    # Issue 14: the node that owns the live call and its lease epoch (only that epoch
    # may change the call); a single process leaves them as they are.
    Column("owner_node", String(200), nullable=True),
    Column("lease_epoch", BigInteger, nullable=False, server_default="0"),
)

# Issue 14: the lease over the live calls of a cluster (kiosk/store/cluster.py).
cluster_leases = Table(
    "cluster_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("node", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    _ts("expires_at"),
)

invites = Table(
    "invites",
    metadata,
    Column("id", ID, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex
    Column("booking_id", ID, ForeignKey("bookings.id"), nullable=False, index=True),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False),
    _ts("valid_from"),
    _ts("valid_until"),
    _ts("created_at"),
    # The token is derived from it (issue 16: sent again, the same link); null before 0008.
    Column("nonce", String(64), nullable=True),
)

email_confirmations = Table(
    "email_confirmations",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("contact_id", ID, ForeignKey("contacts.id"), nullable=False),
    _ts("expires_at"),
    _ts("used_at", nullable=True),
)

# Mails to contacts (R3, R4, invites, R16), written in the transaction of the change
# that caused them and drained by one worker (kiosk/signalling/mail/outbox.py). A row
# is ``pending`` until sent (its message then cleared: it held links that are
# credentials) or ``dead`` after its last attempt. ``next_attempt_at`` is also the
# lease of a sender that has claimed it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(8), nullable=False),
    Column("message", LargeBinary, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _ts("created_at"),
    _ts("next_attempt_at"),
    _ts("sent_at", nullable=True),
    Column("last_error", String(200), nullable=True),
    Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
)

staff = Table(
    "staff",
    metadata,
    Column("id", ID, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    _ts("created_at"),
    # Where the account's set-password link is mailed; empty: the admin is shown it.
    Column("email", String(254), nullable=False, server_default=""),
)

# One-time set-password links (issue 16): the token only as its SHA-256. A link is
# dead once used, replaced by a newer one for the same account, or expired.
staff_password_links = Table(
    "staff_password_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", ID, ForeignKey("staff.id"), nullable=False, index=True),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("used_at", nullable=True),
    _ts("replaced_at", nullable=True),
)

staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", ID, ForeignKey("staff.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    _ts("created_at"),
    _ts("expires_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", ID, ForeignKey("staff.id"), nullable=False),
    Column("label", String(200), nullable=False, server_default=""),
    _ts("created_at"),
    _ts("expires_at", nullable=True),
    Column("revoked", Boolean, nullable=False, server_default="0"),
)

# The audit chain (kiosk/audit/). Append-only: the application never updates
# or deletes rows; `kiosk admin audit verify` proves that nobody else did.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    _ts("at"),
    Column("actor", String(100), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subjects", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("hash", String(64), nullable=False),
    _ts("at"),
    Column("key_id", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    UniqueConstraint("seq", "hash", name="uq_audit_checkpoints_seq_hash"),
)

# The Merkle tree over the audit entries (kiosk/audit/merkle.py), append-only
# like the chain. Row ``seq`` holds the leaf hash of entry ``seq`` followed by
# the hash of every perfect subtree that entry completes (32 bytes each):
# enough to serve any inclusion or consistency proof without recomputing.
audit_tree = Table(
    "audit_tree",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("hashes", LargeBinary, nullable=False),
)

# Signed tree heads: C2SP checkpoints (signed notes) of the tree at ``size``.
audit_tree_heads = Table(
    "audit_tree_heads",
    metadata,
    Column("size", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    _ts("at"),
    Column("note", Text, nullable=False),
)

# Witnesses' cosignatures (C2SP tlog-cosignature) of a tree head, one line each.
audit_cosignatures = Table(
    "audit_cosignatures",
    metadata,
    Column("size", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("witness", String(200), nullable=False),
    Column("key_id", String(8), nullable=False),
    _ts("at"),
    Column("line", Text, nullable=False),
    PrimaryKeyConstraint("size", "witness", "key_id"),
)

# Receipts and the privilege report read a call's entries by time.
Index("ix_audit_entries_at", audit_entries.c.at)

