"""The streaming verifier: tree heads checked against the Merkle tree of the entries, the
stored tree against the entries, and the first bad entry named from a bounded window."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kiosk.audit import merkle as m
from kiosk.audit import note as n
from kiosk.audit.chain import GENESIS, Entry, make_entry, sign_checkpoint
from kiosk.audit.verify import ChainVerifier, StoredHead, verify_chain

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ORIGIN = "kiosk.example.org/audit"
T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def chain(n_entries: int) -> list[Entry]:
    out: list[Entry] = []
    prev = GENESIS
    for seq in range(1, n_entries + 1):
        e = make_entry(seq, T0 + timedelta(seconds=seq), "system", "call.warned",
                       {"call": f"c{seq}"}, {"minutes": seq}, prev)
        out.append(e)
        prev = e.hash
    return out


def head(entries: list[Entry], size: int, key: Ed25519PrivateKey = KEY,
         root: bytes | None = None) -> StoredHead:
    r = m.root_of([e.leaf() for e in entries[:size]]) if root is None else root
    return StoredHead(size, n.sign_note(n.TreeHead(ORIGIN, size, r).text(), ORIGIN, key).render())


def rows(entries: list[Entry]) -> list[bytes]:
    f = m.Frontier()
    return [b"".join(f.append(e.leaf())) for e in entries]


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=9))
def test_tree_heads_match_the_entries(size: int, every: int) -> None:
    entries = chain(size)
    heads = [head(entries, s) for s in range(every, size + 1, every)]
    cps = [sign_checkpoint(entries[s - 1], T0, KEY) for s in range(every, size + 1, every)]
    result = verify_chain(entries, cps, KEY.public_key(), heads)
    assert result.ok, result.problem
    assert result.tree_heads == len(heads)
    assert f"{len(heads)} signed tree heads matching the Merkle tree" in result.summary()


@given(st.integers(min_value=2, max_value=40), st.data())
def test_a_tree_head_the_entries_do_not_give_is_named(size: int, data: st.DataObject) -> None:
    entries = chain(size)
    s = data.draw(st.integers(min_value=1, max_value=size))
    forged_root = m.root_of([e.leaf() for e in chain(s + 1)[1:]])
    result = verify_chain(entries, [], KEY.public_key(), [head(entries, s, root=forged_root)])
    assert not result.ok and result.first_bad_seq == 1
    assert "rewritten: the tree head at size" in result.problem


@given(st.integers(min_value=2, max_value=40), st.data())
def test_truncation_below_a_tree_head_is_named(size: int, data: st.DataObject) -> None:
    entries = chain(size)
    keep = data.draw(st.integers(min_value=0, max_value=size - 1))
    result = verify_chain(entries[:keep], [], KEY.public_key(), [head(entries, size)])
    assert not result.ok and result.first_bad_seq == keep + 1
    assert "removed" in result.problem


def test_a_tree_head_from_another_key_or_changed_is_named() -> None:
    entries = chain(6)
    result = verify_chain(entries, [], KEY.public_key(), [head(entries, 4, key=OTHER)])
    assert (result.first_bad_seq, "another key" in result.problem) == (4, True)
    good = head(entries, 4)
    changed = StoredHead(4, good.note.replace("\n4\n", "\n5\n"))
    result = verify_chain(entries, [], KEY.public_key(), [changed])
    assert (result.first_bad_seq, "bad signature" in result.problem) == (4, True)
    # A head stored under another size than it signs is as bad as a changed one.
    result = verify_chain(entries, [], KEY.public_key(), [StoredHead(5, good.note)])
    assert "bad signature" in result.problem


@given(st.integers(min_value=1, max_value=40), st.data())
def test_a_changed_row_of_the_stored_tree_is_named(size: int, data: st.DataObject) -> None:
    entries = chain(size)
    stored = rows(entries)
    k = data.draw(st.integers(min_value=0, max_value=size - 1))
    raw = bytearray(stored[k])
    raw[data.draw(st.integers(min_value=0, max_value=len(raw) - 1))] ^= 1
    stored[k] = bytes(raw)
    verifier = ChainVerifier([], [], KEY.public_key())
    for e, row in zip(entries, stored, strict=True):
        verifier.feed(e, row)
    result = verifier.result()
    assert not result.ok and result.first_bad_seq == k + 1
    assert "stored Merkle tree" in result.problem


TAMPERINGS = ["change", "remove", "renumber", "swap", "insert"]


@given(st.integers(min_value=12, max_value=80), st.sampled_from(TAMPERINGS), st.data())
def test_a_small_window_names_the_same_first_bad_entry(size: int, how: str,
                                                       data: st.DataObject) -> None:
    """Bounded memory: a 4-entry window finds the same entry as reading everything."""
    entries = chain(size)
    i = data.draw(st.integers(min_value=2, max_value=size - 2))
    if how == "change":
        entries[i] = dataclasses.replace(entries[i], actor="staff:intruder")
    elif how == "remove":
        del entries[i]
    elif how == "renumber":
        del entries[i]
        entries[i:] = [dataclasses.replace(e, seq=e.seq - 1) for e in entries[i:]]
    elif how == "swap":
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    else:
        forged = make_entry(i + 1, T0, "staff:s9", "x", {}, {}, entries[i - 1].hash)
        entries[i:] = [forged, *(dataclasses.replace(e, seq=e.seq + 1) for e in entries[i:])]
    full = verify_chain(entries, [], KEY.public_key())
    small = ChainVerifier([], [], KEY.public_key(), window=4)
    fed = 0
    for e in entries:
        if small.done:
            break
        small.feed(e)
        fed += 1
    result = small.result()
    assert not result.ok and result.first_bad_seq == full.first_bad_seq == i + 1
    assert fed <= i + 1 + 5  # it stopped reading soon after the problem
