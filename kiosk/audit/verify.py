"""Verifying the audit chain as a stream: the first bad entry, named, in bounded memory.

``ChainVerifier`` takes the entries one at a time in stored order and keeps
only the tail (the last ``WINDOW`` good entries, for naming a problem), the
Merkle frontier (at most 64 hashes) and what the signed checkpoints need: so
``kiosk admin audit verify`` reads a table of any length in constant memory
besides the checkpoints. Every checkpoint is checked twice: the chain
checkpoint against the hash of its entry, and the tree head (a C2SP
checkpoint) against the Merkle root of the entries up to its size.

What verification detects, and what it cannot:

- A changed entry (any field), a removed entry in the middle, entries
  renumbered to hide a removal or an insertion, two entries swapped, an entry
  inserted between others: the first bad sequence number, named, always.
- An entry rewritten together with a recomputed hash: the next entry's link
  breaks, and the checkpoints covering it no longer match.
- Removing the newest entries (truncation) leaves a valid shorter chain. It
  is detected when a checkpoint signed a sequence number beyond the new end:
  so entries up to the last checkpoint are safe, and after a clean shutdown
  (which signs the newest entry) all of them are. Entries of a running server
  after its last checkpoint are not protected against truncation.
- Forged entries appended after the last checkpoint, with correct hashes and
  links, cannot be told from genuine ones without the key; ``verify`` reports
  how many entries are not yet covered by a checkpoint (``unsigned_tail``).
- A whole chain rewritten from some entry on (every hash recomputed) is
  detected by the first checkpoint after that entry; it is named as the range
  between the last intact checkpoint and that one. A rewrite re-signed with
  the key itself is what the tree's consistency proofs and outside witnesses
  catch (``kiosk.audit.witness``, receipts).
- Checkpoints themselves: a changed or forged checkpoint fails its signature;
  a deleted checkpoint is not detected by itself (it only widens the ranges
  above). Key rotation is not supported: every checkpoint must be signed by
  the one audit key.
- The stored Merkle tree (``audit_tree``) is compared with the tree the
  entries give, so proofs served from it are proofs of these entries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.audit.chain import (
    GENESIS,
    Checkpoint,
    Entry,
    checkpoint_verifies,
    entry_hash,
    key_id,
)
from kiosk.audit.diagnose import WINDOW, Finding, Window, diagnose, span
from kiosk.audit.merkle import Frontier, leaf_hash
from kiosk.audit.note import (
    ED25519,
    NoteError,
    TreeHead,
    Verifier,
    parse_note,
    parse_tree_head,
    raw_public,
)
from kiosk.audit.note import key_id as note_key_id


@dataclass(frozen=True)
class StoredHead:
    """A tree head as the log stores it: the size it was made at and the signed note."""

    size: int
    note: str


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
    tree_heads: int = 0

    def summary(self) -> str:
        if not self.ok:
            return f"audit chain broken at seq {self.first_bad_seq}: {self.problem}"
        if self.entries == 0:
            return "audit chain intact: no entries yet"
        return (
            f"audit chain intact: {self.entries} entries (seq 1-{self.last_seq}), "
            f"{self.checkpoints} signed checkpoints (last at seq {self.last_checkpoint_seq}), "
            f"{self.tree_heads} signed tree heads matching the Merkle tree, "
            f"{self.unsigned_tail} newest entries not yet checkpointed"
        )


def open_head(stored: StoredHead, public_key: Ed25519PublicKey) -> TreeHead | str:
    """The tree head if ``public_key`` signed it (under the name of its origin), else why not."""
    raw = raw_public(public_key)
    try:
        note = parse_note(stored.note)
    except NoteError:
        return "has a bad signature (forged or changed)"
    mine = [s for s in note.signatures if s.key_id == note_key_id(s.name, ED25519, raw)]
    if not mine:
        return "is signed by another key"
    verifier = Verifier(mine[0].name, ED25519, raw)
    try:
        head = parse_tree_head(note.text)
    except NoteError:
        return "has a bad signature (forged or changed)"
    if not verifier.verify(note) or head.origin != verifier.name or head.size != stored.size:
        return "has a bad signature (forged or changed)"
    return head


class ChainVerifier:
    """Feed entries in stored order (``feed``) until ``done``; then ``result()``."""

    def __init__(
        self,
        checkpoints: Sequence[Checkpoint],
        heads: Sequence[StoredHead],
        public_key: Ed25519PublicKey,
        window: int = WINDOW,
        stored_rows: int = 0,
    ) -> None:
        """``stored_rows``: how many entries the stored Merkle tree holds (rows 1..n)."""
        self._checkpoints = sorted(checkpoints, key=lambda c: c.seq)
        self._heads = sorted(heads, key=lambda h: h.size)
        self._key = public_key
        self._window = window
        self._wanted = {c.seq for c in checkpoints} | {h.size for h in heads}
        self._hash_at: dict[int, str] = {}
        self._root_at: dict[int, bytes] = {}
        self._recent: deque[Entry] = deque(maxlen=window)
        self._base: tuple[int, str] = (0, GENESIS)
        self._expected, self._prev = 1, GENESIS
        self._frontier = Frontier()
        self._count = 0
        self._last_seq = 0
        self._ahead: list[Entry] = []  # the first bad entry and those after it
        self._tree_finding: Finding | None = None
        self._stored_rows = stored_rows

    @property
    def done(self) -> bool:
        return len(self._ahead) > self._window

    def feed(self, entry: Entry, stored_tree: bytes | None = None) -> None:
        """One more entry; ``stored_tree``: its row of the stored Merkle tree, if any."""
        self._count += 1
        self._last_seq = entry.seq
        if self._ahead:
            if not self.done:
                self._ahead.append(entry)
            return
        e = entry
        try:
            body = e.body()  # what the entry's hash and its leaf are made of: encoded once
        except ValueError:
            body = b""  # a stored value with no canonical form: it matches no hash
        if (
            e.seq != self._expected
            or entry_hash(body) != e.hash
            or not body
            or e.prev_hash != self._prev
        ):
            self._ahead.append(e)
            return
        if len(self._recent) == self._window:
            oldest = self._recent[0]
            self._base = (oldest.seq, oldest.hash)
        self._recent.append(e)
        self._prev = e.hash
        self._expected += 1
        stored = self._frontier.append(leaf_hash(body))
        if self._tree_finding is None:
            if stored_tree is None and e.seq <= self._stored_rows:
                self._tree_finding = (
                    e.seq,
                    f"the stored Merkle tree has no row for entry {e.seq}: it was removed, "
                    "and proofs that need it cannot be made",
                )
            elif stored_tree is not None and stored_tree != b"".join(stored):
                self._tree_finding = (
                    e.seq,
                    f"the stored Merkle tree at seq {e.seq} does not match entry {e.seq}: "
                    "its row was changed, and proofs made from it fail",
                )
        if e.seq in self._wanted:
            self._hash_at[e.seq] = e.hash
            self._root_at[e.seq] = self._frontier.root()

    def _chain_finding(self) -> Finding | None:
        if not self._ahead:
            return None
        window = Window([*self._recent, *self._ahead], *self._base)
        return diagnose(window, len(self._recent), self._expected)

    def _signed_finding(self, chain_bad: int | None) -> tuple[Finding | None, int]:
        """The first checkpoint or tree head problem, and the seq of the last intact one."""
        kid = key_id(self._key)
        good_end = self._expected - 1  # the chain up to chain_bad is 1..good_end
        last_good = 0
        points: list[tuple[int, int, Checkpoint | StoredHead]] = [
            *((c.seq, 0, c) for c in self._checkpoints),
            *((h.size, 1, h) for h in self._heads),
        ]
        for seq, _, point in sorted(points, key=lambda p: (p[0], p[1])):
            if isinstance(point, Checkpoint):
                what = f"checkpoint at seq {seq}"
                if point.key_id != kid:
                    return (seq, f"{what} is signed by another key"), last_good
                if not checkpoint_verifies(point, self._key):
                    return (seq, f"{what} has a bad signature (forged or changed)"), last_good
                matches = self._hash_at.get(seq) == point.hash
                lost = "signs a hash that is not in the chain"
            else:
                what = f"tree head at size {seq}"
                head = open_head(point, self._key)
                if isinstance(head, str):
                    return (seq, f"{what} {head}"), last_good
                matches = self._root_at.get(seq) == head.root
                lost = "signs a Merkle root that the entries do not give"
            if chain_bad is not None and seq >= chain_bad:
                continue  # the chain is already broken before it
            if seq > good_end:
                removed = f"{span(good_end + 1, seq)} removed: the {what} "
                return (
                    (good_end + 1, f"{removed}signed them but the chain ends at seq {good_end}"),
                    last_good,
                )
            if not matches:
                return (
                    (last_good + 1, f"{span(last_good + 1, seq)} rewritten: the {what} {lost}"),
                    last_good,
                )
            last_good = seq
        return None, last_good

    def result(self) -> VerifyResult:
        chain = self._chain_finding()
        signed, last_good = self._signed_finding(chain[0] if chain else None)
        findings = [f for f in (chain, signed, self._tree_finding) if f is not None]
        counts = (len(self._checkpoints), self._last_seq, last_good)
        if findings:
            seq, problem = min(findings, key=lambda f: f[0])  # stable: the chain's own wins ties
            return VerifyResult(
                False, self._count, seq, problem, *counts, tree_heads=len(self._heads)
            )
        return VerifyResult(
            True, self._count, None, "", *counts, self._last_seq - last_good, len(self._heads)
        )


def verify_chain(
    entries: Iterable[Entry],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
    heads: Sequence[StoredHead] = (),
) -> VerifyResult:
    """Check ``entries`` (in stored order), ``checkpoints`` and tree ``heads``."""
    verifier = ChainVerifier(checkpoints, heads, public_key)
    for entry in entries:
        verifier.feed(entry)
    return verifier.result()
