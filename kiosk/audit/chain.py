"""The audit chain: append-only, hash-chained entries, and what may go into one.

Every decision, call event, refusal, monitor attachment and staff action is
one entry (ARCHITECTURE.md principle 6). Entry ``n`` carries the hash of
entry ``n-1``, so changing, removing, reordering or inserting an entry breaks
the chain where it happened (``kiosk.audit.verify`` names the first bad entry).
Every ``checkpoint_every`` entries, when a privileged call ends, every
``checkpoint_seconds`` and at shutdown, the server signs (Ed25519,
``<pki_dir>/audit.key``) the sequence number and hash of the newest entry,
and a checkpoint of the Merkle tree over all entries (``kiosk.audit.merkle``,
``kiosk.audit.note``); ``audit.pub`` verifies both.

An entry's canonical body (``Entry.body``) is what its hash and its Merkle
leaf are made of: sequence number, time, actor, action, subjects, details and
the previous hash, as compact JSON with sorted keys.

Entries name people by id only. ``subjects`` maps a kind to an id
(``{"call": id, "inmate": id, "contact": id}``) and ids must look like ids
(letters, digits, ``. _ : -``, no spaces or ``@``); ``details`` must not carry
names, e-mail addresses, phone numbers or secrets (keys such as ``name`` or
``email`` are refused). Personal data lives in ordinary tables with a
retention period, so erasing it leaves the chain verifiable.

The database itself refuses UPDATE and DELETE on the audit tables (triggers
made by the migrations); ``kiosk.audit.verify`` is for someone who can drop them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.audit.merkle import leaf_hash

GENESIS = "0" * 64
CHECKPOINT_CONTEXT = "kiosk.audit.checkpoint.v1"  # domain separation for the signature
AUDIT_KEY_FILE = "audit.key"
AUDIT_PUBLIC_KEY_FILE = "audit.pub"
MAX_DETAILS_BYTES = 16 * 1024
AUDIT_LOCK_KEY = 0x61756469_74  # PostgreSQL advisory lock serialising appenders ("audit")
LOCK_WAIT_S = 30

_ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}"
ID_RE = re.compile(_ID)
SUBJECT_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
ACTOR_RE = re.compile(rf"system|[a-z][a-z_]{{0,31}}:{_ID}")
ACTION_RE = re.compile(r"[a-z][a-z0-9_.]{0,99}")
# Keys that would put personal data or secrets into the permanent record.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {"name", "email", "e_mail", "phone", "address", "password", "token", "secret", "credential"}
)


# --- canonical encoding -------------------------------------------------------


def rfc3339(at: datetime) -> str:
    """UTC, always six fraction digits, 'Z': one spelling per instant."""
    if at.tzinfo is None:
        raise ValueError("naive datetime in the audit chain; use UTC-aware datetimes")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any, path: str = "$") -> Any:
    """``value`` as JSON data: datetimes become RFC 3339 text; anything else odd is refused."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: non-finite number")
        return value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: key {k!r} is not text")
            out[k] = _plain(v, f"{path}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{path}: {type(value).__name__} cannot go into the audit chain")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, datetimes as RFC 3339 UTC with 'Z'."""
    return json.dumps(
        _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_body(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subjects: Mapping[str, str],
    details: Mapping[str, Any],
    prev_hash: str,
) -> bytes:
    """What an entry's hash and its Merkle leaf are made of."""
    return canonical_json([seq, at, actor, action, subjects, details, prev_hash])


def entry_hash(body: bytes) -> str:
    """An entry's hash in the chain: SHA-256 of its canonical body, in hex."""
    return hashlib.sha256(body).hexdigest()


def checkpoint_message(seq: int, hash_: str, at: datetime) -> bytes:
    return canonical_json([CHECKPOINT_CONTEXT, seq, hash_, at])


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    at: datetime
    actor: str
    action: str
    subjects: Mapping[str, str]
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def hash_as(self, seq: int) -> str:
        """The hash this entry's content would have at ``seq`` ("" if it has no canonical form:
        a stored value that cannot be encoded matches no hash)."""
        try:
            return entry_hash(entry_body(
                seq, self.at, self.actor, self.action, self.subjects, self.details, self.prev_hash
            ))
        except ValueError:
            return ""

    def computed_hash(self) -> str:
        return self.hash_as(self.seq)

    def body(self) -> bytes:
        """The canonical body as stored; ValueError if a stored value cannot be encoded."""
        return entry_body(
            self.seq, self.at, self.actor, self.action, self.subjects, self.details,
            self.prev_hash,
        )

    def leaf(self) -> bytes:
        """This entry's leaf hash in the Merkle tree (RFC 9162)."""
        return leaf_hash(self.body())

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": rfc3339(self.at),
            "actor": self.actor,
            "action": self.action,
            "subjects": dict(self.subjects),
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": rfc3339(self.at),
            "key_id": self.key_id,
            "signature": base64.urlsafe_b64encode(self.signature).decode().rstrip("="),
        }


def make_entry(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subjects: Mapping[str, str],
    details: Mapping[str, Any],
    prev_hash: str,
) -> Entry:
    """A new entry; details are stored exactly as they are hashed (plain JSON)."""
    at = at.astimezone(UTC)
    plain_subjects = dict(subjects)
    plain_details: dict[str, Any] = json.loads(canonical_json(details))
    h = entry_hash(entry_body(seq, at, actor, action, plain_subjects, plain_details, prev_hash))
    return Entry(seq, at, actor, action, plain_subjects, plain_details, prev_hash, h)


def sign_checkpoint(entry: Entry, at: datetime, key: Ed25519PrivateKey) -> Checkpoint:
    at = at.astimezone(UTC)
    signature = key.sign(checkpoint_message(entry.seq, entry.hash, at))
    return Checkpoint(entry.seq, entry.hash, at, key_id(key.public_key()), signature)


def checkpoint_verifies(cp: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(cp.signature, checkpoint_message(cp.seq, cp.hash, cp.at))
    except InvalidSignature:
        return False
    return True


# --- what may go into an entry ---------------------------------------------------


def _forbidden_keys(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        found = [k for k in value if isinstance(k, str) and k.lower() in FORBIDDEN_DETAIL_KEYS]
        for v in value.values():
            found += _forbidden_keys(v)
        return found
    if isinstance(value, list | tuple):
        return [k for v in value for k in _forbidden_keys(v)]
    return []


def check_entry_input(
    actor: str, action: str, subjects: Mapping[str, str], details: Mapping[str, Any]
) -> None:
    """Raise ValueError unless the entry names people by id only."""
    if not isinstance(actor, str) or len(actor) > 100 or not ACTOR_RE.fullmatch(actor):
        raise ValueError(f"audit actor {actor!r} is not 'system' or '<kind>:<id>'")
    if not isinstance(action, str) or not ACTION_RE.fullmatch(action):
        raise ValueError(f"audit action {action!r} is not a lower-case dotted name")
    if not isinstance(subjects, Mapping) or not isinstance(details, Mapping):
        raise ValueError("audit subjects and details must be mappings")
    for kind, value in subjects.items():
        if not isinstance(kind, str) or not SUBJECT_KIND_RE.fullmatch(kind):
            raise ValueError(f"audit subject kind {kind!r} is not a lower-case name")
        if not isinstance(value, str) or not ID_RE.fullmatch(value):
            # Ids only: a name or an e-mail address would stay in the chain forever.
            raise ValueError(f"audit subject {kind!r} must be an id, not {type(value).__name__}")
    bad = _forbidden_keys(details)
    if bad:
        raise ValueError(f"audit details must not carry personal data or secrets: {sorted(bad)}")
    if len(canonical_json(details)) > MAX_DETAILS_BYTES:
        raise ValueError(f"audit details larger than {MAX_DETAILS_BYTES} bytes")
