"""The Merkle tree over the audit entries, as RFC 9162 (Certificate Transparency 2.0) §2.1 has it.

Leaf ``i`` (0-based) is the canonical body of audit entry ``seq = i + 1``
(``kiosk.audit.chain.Entry.body``), so a tree of size ``n`` commits to
entries 1..n. Hashes are SHA-256 with the RFC's domain separation: a leaf is
``SHA-256(0x00 || data)``, an interior node ``SHA-256(0x01 || left || right)``,
and the empty tree ``SHA-256()``.

Proofs are built by the RFC's recursive definitions (``PATH`` and
``PROOF``/``SUBPROOF``) over a function that gives the hash of any of the
RFC's subtrees, and verified by the RFC's iterative algorithms (§2.1.3.2,
§2.1.4.2). The database keeps only *perfect* subtrees (``Node``): each
subtree the recursion needs is a few of them folded from the right
(``pieces``). ``nodes_for_*`` says which ones a proof needs, so that they are
read in one query; ``Frontier`` is the right edge of the tree that the
appender keeps in memory (at most 64 hashes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# A perfect subtree: (level, index) covers leaves [index * 2**level, (index + 1) * 2**level).
Node = tuple[int, int]
# MTH(D[start:end]) for one of the RFC's subtrees.
SubtreeHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof cannot be made: sizes or indexes out of range."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where the RFC splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) straight from the RFC's definition (leaf hashes given): the reference."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# --- perfect subtrees ---------------------------------------------------------------------


def pieces(start: int, end: int) -> list[Node]:
    """[start, end) as aligned perfect subtrees, largest (leftmost) first."""
    out: list[Node] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """The RFC subtree made of these perfect subtrees (left to right): fold from the right."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def node_row(node: Node) -> tuple[int, int]:
    """Where a perfect subtree is stored: the seq of the leaf that completed it, and the
    position in that leaf's row (0 is the leaf's own hash, 1 its parent, …)."""
    level, index = node
    return (index + 1) << level, level


def completed_levels(seq: int) -> int:
    """How many hashes leaf ``seq`` stores: its own and every perfect subtree it completes."""
    return (seq & -seq).bit_length()


def subtree_hash_from(nodes: Mapping[Node, bytes]) -> SubtreeHash:
    def mth(start: int, end: int) -> bytes:
        return fold([nodes[n] for n in pieces(start, end)])

    return mth


@dataclass
class Frontier:
    """The perfect subtrees of [0, size), largest first: enough to append and to give the root."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    @staticmethod
    def nodes(size: int) -> list[Node]:
        return pieces(0, size)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add a leaf hash; returns what its row stores (``completed_levels`` hashes)."""
        stored = [leaf]
        acc = leaf
        self.size += 1
        for _ in range(completed_levels(self.size) - 1):
            acc = node_hash(self.hashes.pop(), acc)
            stored.append(acc)
        self.hashes.append(acc)
        return stored

    def root(self) -> bytes:
        return fold(self.hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))


# --- proofs (RFC 9162 §2.1.3.1 and §2.1.4.1) -------------------------------------------


def _path(m: int, start: int, end: int, mth: SubtreeHash) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*_path(m, start, start + k, mth), mth(start + k, end)]
    return [*_path(m - k, start + k, end, mth), mth(start, start + k)]


def inclusion_path(index: int, size: int, mth: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]): the audit path of leaf ``index`` in the tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    return _path(index, 0, size, mth)


def _subproof(m: int, start: int, end: int, whole: bool, mth: SubtreeHash) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [mth(start, end)]
    k = split(n)
    if m <= k:
        return [*_subproof(m, start, start + k, whole, mth), mth(start + k, end)]
    return [*_subproof(m - k, start + k, end, False, mth), mth(start, start + k)]


def consistency_path(old: int, new: int, mth: SubtreeHash) -> list[bytes]:
    """PROOF(old, D[new]); empty when ``old`` is 0 or equal to ``new``."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    return _subproof(old, 0, new, True, mth)


def _needed(make: Callable[[SubtreeHash], object]) -> list[Node]:
    seen: dict[Node, None] = {}

    def record(start: int, end: int) -> bytes:
        for n in pieces(start, end):
            seen[n] = None
        return EMPTY_ROOT

    make(record)
    return list(seen)


def nodes_for_inclusion(index: int, size: int) -> list[Node]:
    return _needed(lambda mth: inclusion_path(index, size, mth))


def nodes_for_consistency(old: int, new: int) -> list[Node]:
    return _needed(lambda mth: consistency_path(old, new, mth))


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------


def _valid(hashes: Iterable[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` proves ``leaf`` under, or None if it is not a proof at all."""
    if not 0 <= index < size or not _valid([leaf, *path]):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """True if the tree of ``new`` leaves (``new_root``) extends the one of ``old``."""
    if not 0 <= old <= new or not _valid([old_root, new_root, *path]):
        return False
    if old == new:
        return not path and old_root == new_root
    if old == 0:
        return not path  # the empty tree is a prefix of every tree
    if not path:
        return False
    proof = list(path)
    if old & (old - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        proof.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
