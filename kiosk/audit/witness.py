"""A witness's decision: cosign a checkpoint only if the log only grew (C2SP tlog-cosignature).

A witness — a bar association, say — remembers the last checkpoint it
cosigned for a log (origin, size, root). Shown a new one with a consistency
proof from that size, it cosigns if the prison's key signed it and the proof
shows the new tree extends the old one; otherwise it refuses and says why. A
log that rewrote its history (a fork) can then never again collect this
witness's cosignature on the rewritten branch, and a receipt holding a
checkpoint cosigned by an independent witness cannot be contradicted later
without the witness noticing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.audit.merkle import verify_consistency
from kiosk.audit.note import (
    NoteError,
    Signature,
    TreeHead,
    Verifier,
    b64,
    b64decode,
    cosign,
    open_checkpoint,
)


@dataclass(frozen=True)
class WitnessState:
    """The last checkpoint this witness cosigned for one log."""

    origin: str
    size: int
    root: bytes

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "size": self.size, "root": b64(self.root)}

    @staticmethod
    def from_json(data: Any) -> WitnessState:
        try:
            root = b64decode(data["root"], "root")
            return WitnessState(str(data["origin"]), int(data["size"]), root)
        except (KeyError, TypeError, ValueError) as exc:
            raise NoteError(f"the witness state is damaged: {exc}") from None


@dataclass(frozen=True)
class Cosign:
    signature: Signature
    state: WitnessState
    grew: bool  # False: the same checkpoint as last time, signed again


@dataclass(frozen=True)
class Refuse:
    reason: str


def consider(
    state: WitnessState | None,
    checkpoint: str,
    log: Verifier,
    proof: Sequence[bytes],
    name: str,
    key: Ed25519PrivateKey,
    now: int,
) -> Cosign | Refuse:
    """Whether to cosign ``checkpoint`` at ``now`` (Unix seconds), given the last one cosigned.

    ``proof`` is the consistency proof from ``state.size`` to the new size (empty on
    the first checkpoint this witness sees: it is trusted on first use).
    """
    try:
        note, head = open_checkpoint(checkpoint, log)
    except NoteError as exc:
        return Refuse(f"the checkpoint does not verify: {exc}")
    if state is not None:
        refusal = _refusal(state, head, proof)
        if refusal is not None:
            return Refuse(refusal)
    signature = cosign(note.text, name, key, now)
    grew = state is None or head.size > state.size
    return Cosign(signature, WitnessState(head.origin, head.size, head.root), grew)


def _refusal(state: WitnessState, head: TreeHead, proof: Sequence[bytes]) -> str | None:
    if head.origin != state.origin:
        return f"the checkpoint is for log {head.origin!r}, this witness follows {state.origin!r}"
    if head.size < state.size:
        return (
            f"the log shrank: size {head.size} after {state.size} was cosigned "
            "(a rollback or a fork)"
        )
    if head.size == state.size and head.root != state.root:
        return f"the log forked: two different trees of size {head.size}"
    if not verify_consistency(state.size, head.size, state.root, head.root, proof):
        return (
            f"the log forked: the tree of size {head.size} does not extend the one of "
            f"size {state.size} this witness cosigned (the consistency proof fails)"
        )
    return None
