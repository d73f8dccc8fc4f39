"""The receipt of a privileged call, and checking one offline (R13, issue 18).

A receipt is a JSON file a defence lawyer (or police) can keep: the call's
audit entries that matter — granted (route and control), every refused
monitor attempt, ended — each as the exact canonical text that is its leaf
in the audit log's Merkle tree, with its inclusion proof, and the log's
signed checkpoint (a C2SP signed note, with any witnesses' cosignatures).
It names people by id only, as the entries do.

``verify_receipt`` needs nothing but the file and the prison's public key:
the checkpoint's signature, each entry's inclusion proof, then what the
entries say. It proves what the prison's own system recorded and committed
to; that nobody sat in the middle is what the verification code on screen
proves (ARCHITECTURE.md principle 2). Given a later checkpoint and a
consistency proof, it also proves that the log was not rewritten since.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.audit.chain import Entry, rfc3339
from kiosk.audit.merkle import HASH_SIZE, leaf_hash, verify_consistency, verify_inclusion
from kiosk.audit.note import (
    ED25519,
    NoteError,
    TreeHead,
    Verifier,
    b64,
    b64decode,
    cosignature_time,
    open_checkpoint,
    parse_note,
    verifier_for,
)

FORMAT = "kiosk-call-receipt/v1"
PRIVILEGED = ("defence_counsel", "police")
GRANTED = ("call.granted", "call.granted_again")
REFUSED = "monitor.refused"
ATTACHED = "monitor.attached"
ENDED = ("call.ended", "call.closed_out")
MATTERS = frozenset((*GRANTED, REFUSED, ATTACHED, *ENDED))
MAX_ENTRIES = 500


def matters(entry: Entry, call_id: str) -> bool:
    return entry.action in MATTERS and entry.subjects.get("call") == call_id


def _text(entry: Entry) -> str:
    try:
        return entry.body().decode("utf-8")
    except ValueError:
        return ""  # a stored value with no canonical form: the proof of it fails, named


def build_receipt(
    call_id: str,
    entries: Sequence[Entry],
    proofs: Mapping[int, Sequence[bytes]],
    checkpoint: str,
    issued_at: datetime,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "call": call_id,
        "issued_at": rfc3339(issued_at),
        "entries": [
            {"seq": e.seq, "entry": _text(e), "proof": [b64(h) for h in proofs[e.seq]]}
            for e in entries
        ],
        "checkpoint": checkpoint,
    }


# --- checking a receipt -----------------------------------------------------------------------


@dataclass
class ReceiptVerdict:
    problems: list[str] = field(default_factory=list)
    call: str = ""
    category: str = ""
    route: str = ""
    control: str = ""
    refused: int = 0
    granted_at: str = ""
    ended_at: str = ""
    end_reason: str = ""
    origin: str = ""
    size: int = 0
    witnesses: list[str] = field(default_factory=list)
    consistent_to: int | None = None
    proven: bool = True  # the checkpoint's signature and every inclusion proof hold

    @property
    def ok(self) -> bool:
        return not self.problems

    def unproven(self, problem: str) -> None:
        self.problems.append(problem)
        self.proven = False

    def summary(self) -> str:
        if not self.ok:
            return "NOT VERIFIED: " + "; ".join(self.problems)
        attempts = "1 attempt was" if self.refused == 1 else f"{self.refused} attempts were"
        lines = [
            "Verified. This call was peer to peer; nobody was attached; "
            f"{attempts} refused; the prison's log holds this.",
            f"Call {self.call} ({self.category}), granted {self.granted_at}, "
            f"ended {self.ended_at} ({self.end_reason}).",
            f"In the log {self.origin} at size {self.size}.",
        ]
        if self.witnesses:
            lines.append("Cosigned by: " + ", ".join(self.witnesses) + ".")
        if self.consistent_to is not None:
            lines.append(f"The log has only grown since, to size {self.consistent_to}.")
        return "\n".join(lines)


def _log_verifier(key: Verifier | Ed25519PublicKey, note_text: str) -> Verifier:
    if isinstance(key, Verifier):
        return key
    return verifier_for(note_text.split("\n", 1)[0] or "-", ED25519, key)


def _checkpoint(
    data: str, key: Verifier | Ed25519PublicKey, what: str
) -> tuple[str, TreeHead] | str:
    try:
        note = parse_note(data)
        text, head = note.text, open_checkpoint(data, _log_verifier(key, note.text))[1]
    except NoteError as exc:
        return f"the {what} does not verify with the prison's key: {exc}"
    return text, head


def _hashes(value: Any) -> list[bytes] | None:
    if not isinstance(value, list) or len(value) > 64:
        return None
    out = []
    for item in value:
        try:
            raw = b64decode(item, "hash") if isinstance(item, str) else b""
        except NoteError:
            return None
        if len(raw) != HASH_SIZE:
            return None
        out.append(raw)
    return out


def _entry(item: Any, head: TreeHead, v: ReceiptVerdict) -> Entry | None:
    """The entry if its inclusion proof holds, else None with the problem recorded."""
    if not isinstance(item, dict):
        v.unproven("an entry is malformed")
        return None
    seq, text, proof = item.get("seq"), item.get("entry"), _hashes(item.get("proof"))
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        v.unproven("an entry has no sequence number")
        return None
    if not isinstance(text, str) or proof is None:
        v.unproven(f"entry {seq} is malformed")
        return None
    if seq > head.size:
        v.unproven(f"entry {seq} is beyond the checkpoint (size {head.size})")
        return None
    if not verify_inclusion(seq - 1, head.size, leaf_hash(text.encode()), proof, head.root):
        v.unproven(
            f"entry {seq} is not in the log the checkpoint signed: it was changed, "
            "or its proof is wrong"
        )
        return None
    try:
        fields = json.loads(text)
        n, at, actor, action, subjects, details, prev = fields
        at_time = datetime.fromisoformat(at)
        if at_time.tzinfo is None:
            raise ValueError("a time without its zone")
    except (ValueError, TypeError):
        v.unproven(f"entry {seq} cannot be read")
        return None
    if n != seq or not isinstance(subjects, dict) or not isinstance(details, dict):
        v.unproven(f"entry {seq} says it is entry {n}")
        return None
    return Entry(seq, at_time, str(actor), str(action), subjects, details, str(prev), "")


def _judge(entries: list[Entry], v: ReceiptVerdict) -> None:
    """What the entries say about the call (R13), each failure named by its entry."""
    granted = [e for e in entries if e.action in GRANTED]
    ended = [e for e in entries if e.action in ENDED]
    for e in entries:
        if e.subjects.get("call") != v.call:
            v.problems.append(f"entry {e.seq} is about another call")
        elif e.action == ATTACHED:
            v.problems.append(f"entry {e.seq}: a monitor was attached")
    for e in granted:
        route, control = e.details.get("route"), e.details.get("control")
        category = e.details.get("category")
        if category not in PRIVILEGED:
            v.problems.append(f"entry {e.seq}: the call is {category}, not a privileged call")
        if route != "p2p" or control != "none":
            v.problems.append(
                f"entry {e.seq}: the call was granted with route {route} and control {control}"
            )
    if not granted:
        v.problems.append("the receipt holds no grant of the call")
    if not ended:
        v.problems.append("the receipt holds no end of the call")
    elif granted and max(e.seq for e in ended) < max(e.seq for e in granted):
        v.problems.append("the call was granted again after it ended")
    v.refused = sum(1 for e in entries if e.action == REFUSED)
    if granted:
        first = granted[0]
        v.route, v.control = str(first.details.get("route")), str(first.details.get("control"))
        v.category, v.granted_at = str(first.details.get("category")), rfc3339(first.at)
    if ended:
        v.ended_at, v.end_reason = rfc3339(ended[-1].at), str(ended[-1].details.get("reason"))


def verify_receipt(
    data: Any,
    log_key: Verifier | Ed25519PublicKey,
    witnesses: Sequence[Verifier] = (),
    later: tuple[str, Sequence[bytes]] | None = None,
) -> ReceiptVerdict:
    """Check a receipt (parsed JSON) offline; ``later``: a newer checkpoint and the
    consistency proof from the receipt's, to show the log was not rewritten since."""
    v = ReceiptVerdict()
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        v.unproven("this file is not a call receipt")
        return v
    call, items, checkpoint = data.get("call"), data.get("entries"), data.get("checkpoint")
    if not isinstance(call, str) or not isinstance(items, list) or not isinstance(checkpoint, str):
        v.unproven("the receipt is missing its call, entries or checkpoint")
        return v
    v.call = call
    opened = _checkpoint(checkpoint, log_key, "checkpoint")
    if isinstance(opened, str):
        v.unproven(opened)
        return v
    text, head = opened
    v.origin, v.size = head.origin, head.size
    note = parse_note(checkpoint)
    for w in witnesses:
        times = [cosignature_time(text, s, w) for s in note.signatures if w.matches(s)]
        if not times:
            v.problems.append(f"the checkpoint is not cosigned by the witness {w.name}")
        elif None in times:
            v.problems.append(f"the cosignature of the witness {w.name} does not verify")
        else:
            v.witnesses.append(w.name)
    if not items or len(items) > MAX_ENTRIES:
        v.unproven("the receipt holds no entries, or too many")
        return v
    entries = [e for e in (_entry(item, head, v) for item in items) if e is not None]
    if len({e.seq for e in entries}) != len(entries):
        v.problems.append("the receipt holds an entry twice")
    _judge(entries, v)
    if later is not None:
        _check_later(later, log_key, head, v)
    return v


def _check_later(
    later: tuple[str, Sequence[bytes]], key: Verifier | Ed25519PublicKey, head: TreeHead,
    v: ReceiptVerdict,
) -> None:
    opened = _checkpoint(later[0], key, "newer checkpoint")
    if isinstance(opened, str):
        v.problems.append(opened)
        return
    newer = opened[1]
    if newer.origin != head.origin or newer.size < head.size or not verify_consistency(
        head.size, newer.size, head.root, newer.root, later[1]
    ):
        v.problems.append(
            f"the log was rewritten after this receipt: its checkpoint at size {newer.size} "
            f"is not consistent with the receipt's at size {head.size}"
        )
        return
    v.consistent_to = newer.size
