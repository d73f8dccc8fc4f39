"""The Merkle tree against RFC 9162 §2.1: its definitions, its published vectors, and every
alteration of a proof failing.

The reference here is written from the RFC's recursive definitions over the
list of leaves (MTH, PATH, PROOF/SUBPROOF), independently of the module's
stored-subtree machinery, so the two are checked against each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.audit import merkle as m

# The Certificate Transparency reference inputs and roots for sizes 0..8.
CT_DATA = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


# --- the RFC's definitions, over a list of leaf hashes ------------------------------------


def mth(d: Sequence[bytes]) -> bytes:
    return m.root_of(d)


def ref_path(i: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = m.split(len(d))
    if i < k:
        return [*ref_path(i, d[:k]), mth(d[k:])]
    return [*ref_path(i - k, d[k:]), mth(d[:k])]


def ref_subproof(old: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
    if old == len(d):
        return [] if whole else [mth(d)]
    k = m.split(len(d))
    if old <= k:
        return [*ref_subproof(old, d[:k], whole), mth(d[k:])]
    return [*ref_subproof(old - k, d[k:], False), mth(d[:k])]


def ref_proof(old: int, d: Sequence[bytes]) -> list[bytes]:
    return [] if old in (0, len(d)) else ref_subproof(old, d, True)


def leaves(n: int) -> list[bytes]:
    return [m.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def stored(n: int) -> tuple[m.Frontier, dict[m.Node, bytes]]:
    """A tree of ``n`` leaves built as the appender builds it, and its stored subtrees."""
    frontier = m.Frontier()
    nodes: dict[m.Node, bytes] = {}
    for leaf in leaves(n):
        row = frontier.append(leaf)
        assert len(row) == m.completed_levels(frontier.size)
        for level, h in enumerate(row):
            nodes[(level, (frontier.size >> level) - 1)] = h
    return frontier, nodes


def flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


sizes = st.integers(min_value=1, max_value=140)


# --- vectors -------------------------------------------------------------------------------------


def test_the_roots_are_the_published_ones() -> None:
    data = [m.leaf_hash(d) for d in CT_DATA]
    for n in range(9):
        assert mth(data[:n]).hex() == CT_ROOTS[n]
        f = m.Frontier()
        for leaf in data[:n]:
            f.append(leaf)
        assert f.root().hex() == CT_ROOTS[n]


def test_a_published_inclusion_proof_verifies() -> None:
    data = [m.leaf_hash(d) for d in CT_DATA]
    path = [bytes.fromhex(h) for h in CT_INCLUSION_0_OF_8]
    assert ref_path(0, data) == path
    assert m.verify_inclusion(0, 8, data[0], path, bytes.fromhex(CT_ROOTS[8]))


# --- the stored tree gives the RFC's proofs ------------------------------------------------------


@given(sizes, st.data())
def test_stored_subtrees_give_the_rfc_proofs(n: int, data: st.DataObject) -> None:
    frontier, nodes = stored(n)
    d = leaves(n)
    assert frontier.root() == mth(d)
    assert [nodes[x] for x in m.Frontier.nodes(n)] == frontier.hashes
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    wanted_inclusion = m.nodes_for_inclusion(index, size)
    wanted_consistency = m.nodes_for_consistency(old, size)
    # Only what the proof needs is read, and every piece of it is stored by then.
    mth_incl = m.subtree_hash_from({x: nodes[x] for x in wanted_inclusion})
    mth_cons = m.subtree_hash_from({x: nodes[x] for x in wanted_consistency})
    assert m.inclusion_path(index, size, mth_incl) == ref_path(index, d[:size])
    assert m.consistency_path(old, size, mth_cons) == ref_proof(old, d[:size])
    for node in wanted_inclusion:
        assert m.node_row(node)[0] <= size


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_pieces_tile_the_range_with_aligned_perfect_subtrees(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    covered = start
    for level, index in m.pieces(start, end):
        assert index << level == covered
        covered += 1 << level
    assert covered == end


# --- every proof of every random tree verifies ----------------------------------------------------


@given(sizes, st.data())
def test_every_inclusion_proof_verifies(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    root = mth(d)
    for i in range(n):
        assert m.verify_inclusion(i, n, d[i], ref_path(i, d), root)


@given(sizes, st.data())
def test_every_consistency_proof_verifies(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    new_root = mth(d)
    for old in range(n + 1):
        assert m.verify_consistency(old, n, mth(d[:old]), new_root, ref_proof(old, d))


# --- and every altered one fails ----------------------------------------------------------


@given(sizes, st.data())
def test_an_altered_inclusion_proof_fails(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    root = mth(d)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    path = ref_path(i, d)
    how = data.draw(st.sampled_from(["hash", "drop", "extra", "leaf", "index", "size", "root"]))
    leaf, index, size = d[i], i, n
    if how == "hash" and path:
        k = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        path[k] = flip(path[k], data.draw(st.integers(0, 255)))
    elif how == "drop" and path:
        path.pop(data.draw(st.integers(min_value=0, max_value=len(path) - 1)))
    elif how == "extra":
        path.insert(data.draw(st.integers(min_value=0, max_value=len(path))), d[0])
    elif how == "leaf":
        leaf = flip(leaf, data.draw(st.integers(0, 255)))
    elif how == "index":
        index = data.draw(st.integers(min_value=0, max_value=n).filter(lambda x: x != i))
    elif how == "size":
        size = data.draw(st.integers(min_value=1, max_value=n + 40).filter(lambda x: x != n))
        if size > i and len(ref_path(i, leaves(size))) == len(path):
            # A path of the same shape at another size computes the same root: the size
            # is bound by the signed tree head, not by the path (test_audit_receipt).
            return
    elif how == "root":
        root = flip(root, data.draw(st.integers(0, 255)))
    else:
        return  # nothing to alter in an empty path
    if how == "index" and index < n and d[index] == leaf:
        return  # cannot happen: leaves are distinct
    assert not m.verify_inclusion(index, size, leaf, path, root)


@given(st.integers(min_value=2, max_value=140), st.data())
def test_an_altered_consistency_proof_fails(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    old = data.draw(st.integers(min_value=1, max_value=n - 1))
    proof = ref_proof(old, d)
    old_root, new_root, old_size, new_size = mth(d[:old]), mth(d), old, n
    how = data.draw(st.sampled_from(["hash", "drop", "extra", "old_root", "new_root",
                                     "old_size", "new_size", "fork"]))
    if how == "hash":
        k = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof[k] = flip(proof[k], data.draw(st.integers(0, 255)))
    elif how == "drop":
        proof.pop(data.draw(st.integers(min_value=0, max_value=len(proof) - 1)))
    elif how == "extra":
        proof.insert(data.draw(st.integers(min_value=0, max_value=len(proof))), d[0])
    elif how == "old_root":
        old_root = flip(old_root, data.draw(st.integers(0, 255)))
    elif how == "new_root":
        new_root = flip(new_root, data.draw(st.integers(0, 255)))
    elif how == "old_size":
        old_size = data.draw(st.integers(min_value=1, max_value=n - 1).filter(lambda x: x != old))
    elif how == "new_size":
        new_size = data.draw(st.integers(min_value=old + 1, max_value=n + 40).filter(
            lambda x: x != n))
        if len(ref_proof(old, leaves(new_size))) == len(proof):
            return  # the same shape: only the signed tree head binds the size
    else:
        # A fork: history rewritten at one leaf before ``old``, proof from the rewritten log.
        j = data.draw(st.integers(min_value=0, max_value=old - 1))
        forked = list(d)
        forked[j] = m.leaf_hash(b"rewritten")
        proof, new_root = ref_proof(old, forked), mth(forked)
    assert not m.verify_consistency(old_size, new_size, old_root, new_root, proof)


def test_proofs_out_of_range_are_refused() -> None:
    _, nodes = stored(5)
    mth_stored = m.subtree_hash_from(nodes)
    with pytest.raises(m.ProofError):
        m.inclusion_path(5, 5, mth_stored)
    with pytest.raises(m.ProofError):
        m.consistency_path(6, 5, mth_stored)
    d = leaves(5)
    assert not m.verify_inclusion(-1, 5, d[0], [], mth(d))
    assert not m.verify_consistency(3, 2, mth(d[:3]), mth(d[:2]), [])
    assert not m.verify_inclusion(0, 5, d[0], [b"short"], mth(d))
    assert m.verify_consistency(0, 5, m.EMPTY_ROOT, mth(d), [])
    assert not m.verify_consistency(0, 5, m.EMPTY_ROOT, mth(d), [d[0]])
    assert m.verify_consistency(5, 5, mth(d), mth(d), [])
    assert not m.verify_consistency(5, 5, mth(d), mth(d[:4]), [])
