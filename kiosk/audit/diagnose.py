"""Naming what is wrong at the first bad entry of the chain, from the entries around it.

The streaming verifier (``kiosk.audit.verify``) stops at the first entry
whose sequence number, hash or link is wrong and hands over a window: up to
``WINDOW`` good entries before it and as many after. Each diagnosis looks
only inside that window, so verification keeps bounded memory whatever the
length of the chain: a removal, renumbering, reordering or insertion that
reaches further than the window is still caught at the same entry, with a
plainer message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kiosk.audit.chain import Entry

WINDOW = 1024

Finding = tuple[int, str]  # the first bad sequence number, and what is wrong there


@dataclass(frozen=True)
class Window:
    entries: Sequence[Entry]  # in stored order; entries[pos] is the first bad one
    base_seq: int  # the good entry just before entries[0] (0: the chain starts here)
    base_hash: str  # its hash (GENESIS at the start of the chain)

    def position_of_hash(self, h: str) -> int | None:
        if h == self.base_hash:
            return -1
        for i, e in enumerate(self.entries):
            if e.hash == h:
                return i
        return None

    def seq_at(self, position: int) -> int:
        return self.entries[position].seq if position >= 0 else self.base_seq


def span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seqs {first}-{last}"


def _search_original_seq(entry: Entry, at_seq: int, limit: int) -> int | None:
    """The seq under which ``entry`` was written, if it was renumbered (nearest first)."""
    for d in range(1, limit + 1):
        for s in (at_seq - d, at_seq + d):
            if s >= 1 and entry.hash_as(s) == entry.hash:
                return s
    return None


def diagnose_seq(w: Window, pos: int, expected: int) -> Finding:
    found = w.entries[pos].seq
    if found < expected:
        return found, f"seq {found} appears twice: an entry was inserted or duplicated"
    if any(e.seq == expected for e in w.entries[pos + 1 :]):
        return expected, (
            f"seq {expected} is out of order: seq {found} stands in its place (reordered)"
        )
    return expected, f"{span(expected, found - 1)} missing: entries removed"


def diagnose_content(w: Window, pos: int) -> Finding:
    entries = w.entries
    e = entries[pos]
    k = e.seq
    s = _search_original_seq(e, k, max(len(entries), entries[-1].seq - w.base_seq) + 1)
    if s is None:
        return k, f"entry {k} was changed: its content does not match its hash"
    if s > k:
        if any(o.hash_as(k) == o.hash for o in entries if o is not e):
            return k, (
                f"entry {k} is out of order: it holds the entry written as seq {s} (reordered)"
            )
        return k, (
            f"{span(k, s - 1)} removed and later entries renumbered "
            f"(seq {k} holds the entry written as seq {s})"
        )
    p = w.position_of_hash(e.prev_hash)
    if p is not None and p < pos - 1:
        first = entries[p + 1].seq
        return first, (
            f"{span(first, k - 1)} inserted: seq {k} holds the entry written as seq {s}, "
            f"which followed seq {w.seq_at(p)}"
        )
    return k, f"entry {k} is out of order: it holds the entry written as seq {s} (reordered)"


def diagnose_link(w: Window, pos: int) -> Finding:
    entries = w.entries
    e = entries[pos]
    k = e.seq
    p = w.position_of_hash(e.prev_hash)
    if p is None:
        return k, (
            f"entry {k} does not link to entry {k - 1}: entry {k - 1} was rewritten, "
            f"or entry {k} was forged or inserted"
        )
    if p >= pos:
        return k, f"entry {k} links to seq {entries[p].seq}, which comes after it (reordered)"
    first = entries[p + 1].seq
    return first, f"{span(first, k - 1)} inserted: entry {k} links to seq {w.seq_at(p)}"


def diagnose(w: Window, pos: int, expected: int) -> Finding:
    """What is wrong with ``w.entries[pos]``, which should be entry ``expected``."""
    e = w.entries[pos]
    if e.seq != expected:
        return diagnose_seq(w, pos, expected)
    if e.computed_hash() != e.hash:
        return diagnose_content(w, pos)
    return diagnose_link(w, pos)
