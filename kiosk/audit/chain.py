"""The audit chain: append-only, hash-chained entries with signed checkpoints.

Every decision, call event, refusal, monitor attachment and staff action is
one entry (ARCHITECTURE.md principle 6). Entry ``n`` carries the hash of
entry ``n-1``, so changing, removing, reordering or inserting an entry breaks
the chain where it happened; ``verify_chain`` names the first bad entry and
what is wrong with it. Every ``checkpoint_every`` entries, and at shutdown,
the server signs (Ed25519, ``<pki_dir>/audit.key``) the sequence number and
hash of the newest entry; ``audit.pub`` verifies.

Entries name people by id only. ``subjects`` maps a kind to an id
(``{"call": id, "inmate": id, "contact": id}``) and ids must look like ids
(letters, digits, ``. _ : -``, no spaces or ``@``); ``details`` must not carry
names, e-mail addresses, phone numbers or secrets (keys such as ``name`` or
``email`` are refused). Personal data lives in ordinary tables with a
retention period, so erasing it leaves the chain verifiable.

The database itself refuses UPDATE and DELETE on the audit tables (triggers
made by the first migration); what follows is for someone who can drop them.

What verification detects, and what it cannot:

- A changed entry (any field), a removed entry in the middle, entries
  renumbered to hide a removal or an insertion, two entries swapped, an entry
  inserted between others: the first bad sequence number, named, always.
- An entry rewritten together with a recomputed hash: the next entry's link
  breaks, and the checkpoint covering it no longer matches.
- Removing the newest entries (truncation) leaves a valid shorter chain. It
  is detected when a checkpoint signed a sequence number beyond the new end:
  so entries up to the last checkpoint are safe, and after a clean shutdown
  (which signs the newest entry) all of them are. Up to ``checkpoint_every - 1``
  newest entries of a running server are not protected against truncation.
- Forged entries appended after the last checkpoint, with correct hashes and
  links, cannot be told from genuine ones without the key; ``verify`` reports
  how many entries are not yet covered by a checkpoint (``unsigned_tail``).
- A whole chain rewritten from some entry on (every hash recomputed) is
  detected by the first checkpoint after that entry; it is named as the range
  between the last intact checkpoint and that one.
- Checkpoints themselves: a changed or forged checkpoint fails its signature;
  a deleted checkpoint is not detected by itself (it only widens the ranges
  above). Key rotation is not supported: every checkpoint must be signed by
  the one audit key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

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


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subjects: Mapping[str, str],
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = canonical_json([seq, at, actor, action, subjects, details, prev_hash])
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
        """The hash this entry's content would have at ``seq``."""
        return entry_hash(
            seq, self.at, self.actor, self.action, self.subjects, self.details, self.prev_hash
        )

    def computed_hash(self) -> str:
        return self.hash_as(self.seq)

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
    h = entry_hash(seq, at, actor, action, plain_subjects, plain_details, prev_hash)
    return Entry(seq, at, actor, action, plain_subjects, plain_details, prev_hash, h)


def sign_checkpoint(entry: Entry, at: datetime, key: Ed25519PrivateKey) -> Checkpoint:
    at = at.astimezone(UTC)
    signature = key.sign(checkpoint_message(entry.seq, entry.hash, at))
    return Checkpoint(entry.seq, entry.hash, at, key_id(key.public_key()), signature)


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


# --- verification (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""
    checkpoints: int = 0
    last_seq: int = 0
    last_checkpoint_seq: int = 0
    unsigned_tail: int = 0  # newest entries not yet covered by a checkpoint

    def summary(self) -> str:
        if not self.ok:
            return f"audit chain broken at seq {self.first_bad_seq}: {self.problem}"
        if self.entries == 0:
            return "audit chain intact: no entries yet"
        return (
            f"audit chain intact: {self.entries} entries (seq 1-{self.last_seq}), "
            f"{self.checkpoints} signed checkpoints (last at seq {self.last_checkpoint_seq}), "
            f"{self.unsigned_tail} newest entries not yet checkpointed"
        )


_Finding = tuple[int, str]


def _search_original_seq(entry: Entry, at_seq: int, limit: int) -> int | None:
    """The seq under which ``entry`` was written, if it was renumbered (nearest first)."""
    for d in range(1, limit + 1):
        for s in (at_seq - d, at_seq + d):
            if s >= 1 and entry.hash_as(s) == entry.hash:
                return s
    return None


def _position_of_hash(entries: Sequence[Entry], h: str) -> int | None:
    if h == GENESIS:
        return -1
    for i, e in enumerate(entries):
        if e.hash == h:
            return i
    return None


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seqs {first}-{last}"


def _diagnose_seq(entries: Sequence[Entry], pos: int, expected: int) -> _Finding:
    found = entries[pos].seq
    if found < expected:
        return found, f"seq {found} appears twice: an entry was inserted or duplicated"
    if any(e.seq == expected for e in entries[pos + 1 :]):
        return expected, (
            f"seq {expected} is out of order: seq {found} stands in its place (reordered)"
        )
    return expected, f"{_span(expected, found - 1)} missing: entries removed"


def _diagnose_content(entries: Sequence[Entry], pos: int) -> _Finding:
    e = entries[pos]
    k = e.seq
    s = _search_original_seq(e, k, max(len(entries), entries[-1].seq) + 1)
    if s is None:
        return k, f"entry {k} was changed: its content does not match its hash"
    if s > k:
        if any(o.hash_as(k) == o.hash for o in entries if o is not e):
            return k, (
                f"entry {k} is out of order: it holds the entry written as seq {s} (reordered)"
            )
        return k, (
            f"{_span(k, s - 1)} removed and later entries renumbered "
            f"(seq {k} holds the entry written as seq {s})"
        )
    p = _position_of_hash(entries, e.prev_hash)
    if p is not None and p < pos - 1:
        first = entries[p + 1].seq
        return first, (
            f"{_span(first, k - 1)} inserted: seq {k} holds the entry written as seq {s}, "
            f"which followed seq {entries[p].seq if p >= 0 else 0}"
        )
    return k, f"entry {k} is out of order: it holds the entry written as seq {s} (reordered)"


def _diagnose_link(entries: Sequence[Entry], pos: int) -> _Finding:
    e = entries[pos]
    k = e.seq
    p = _position_of_hash(entries, e.prev_hash)
    if p is None:
        return k, (
            f"entry {k} does not link to entry {k - 1}: entry {k - 1} was rewritten, "
            f"or entry {k} was forged or inserted"
        )
    if p >= pos:
        return k, f"entry {k} links to seq {entries[p].seq}, which comes after it (reordered)"
    first = entries[p + 1].seq
    return first, (
        f"{_span(first, k - 1)} inserted: entry {k} links to seq "
        f"{entries[p].seq if p >= 0 else 0}"
    )


def _check_entries(entries: Sequence[Entry]) -> _Finding | None:
    expected, prev = 1, GENESIS
    for pos, e in enumerate(entries):
        if e.seq != expected:
            return _diagnose_seq(entries, pos, expected)
        if e.computed_hash() != e.hash:
            return _diagnose_content(entries, pos)
        if e.prev_hash != prev:
            return _diagnose_link(entries, pos)
        prev = e.hash
        expected += 1
    return None


def _check_checkpoints(
    entries: Sequence[Entry],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
    chain_bad: int | None,
) -> tuple[_Finding | None, int]:
    """The first checkpoint problem, and the seq of the last intact checkpoint."""
    kid = key_id(public_key)
    by_seq = {e.seq: e for e in entries}
    last_seq = len(entries)  # the chain up to chain_bad is 1..n without gaps
    last_good = 0
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if cp.key_id != kid:
            return (cp.seq, f"checkpoint at seq {cp.seq} is signed by another key"), last_good
        try:
            public_key.verify(cp.signature, checkpoint_message(cp.seq, cp.hash, cp.at))
        except InvalidSignature:
            return (
                (cp.seq, f"checkpoint at seq {cp.seq} has a bad signature (forged or changed)"),
                last_good,
            )
        if chain_bad is not None and cp.seq >= chain_bad:
            continue  # the chain is already broken before it
        if cp.seq > last_seq:
            return (
                (
                    last_seq + 1,
                    f"{_span(last_seq + 1, cp.seq)} removed: the checkpoint at seq {cp.seq} "
                    f"signed them but the chain ends at seq {last_seq}",
                ),
                last_good,
            )
        entry = by_seq.get(cp.seq)
        if entry is None or entry.hash != cp.hash:
            return (
                (
                    last_good + 1,
                    f"{_span(last_good + 1, cp.seq)} rewritten: the checkpoint at seq {cp.seq} "
                    "signs a hash that is not in the chain",
                ),
                last_good,
            )
        last_good = cp.seq
    return None, last_good


def verify_chain(
    entries: Sequence[Entry], checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
) -> VerifyResult:
    """Check ``entries`` (in stored order) and ``checkpoints``: the first problem, named."""
    chain = _check_entries(entries)
    cps, last_good = _check_checkpoints(
        entries, checkpoints, public_key, chain[0] if chain else None
    )
    findings = [f for f in (chain, cps) if f is not None]
    last_seq = entries[-1].seq if entries else 0
    if findings:
        seq, problem = min(findings, key=lambda f: f[0])  # stable: the chain's own wins ties
        return VerifyResult(
            False, len(entries), seq, problem, len(checkpoints), last_seq, last_good
        )
    return VerifyResult(
        True, len(entries), None, "", len(checkpoints), last_seq, last_good, last_seq - last_good
    )
