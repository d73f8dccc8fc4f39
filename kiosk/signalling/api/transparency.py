"""The audit log's public side: its checkpoint, proofs and witnesses' cosignatures (issue 18).

No credentials: what these give away is hashes and signed tree heads, and
the people who need them — lawyers holding a receipt, auditors, witnesses —
have no staff account. The checkpoint is a C2SP signed note as text, so
existing transparency tooling reads it as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, RootModel

from kiosk.audit import proofs
from kiosk.audit.merkle import ProofError
from kiosk.audit.note import Verifier, b64, parse_vkey
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable
from kiosk.signalling.schemas import Query, Request, Response
from kiosk.signalling.schemas.base import INTEGRAL

table = OperationTable("audit")

Size = Annotated[int, Field(ge=1, le=2**62), INTEGRAL]


class SignedNote(RootModel[str]):
    """A C2SP checkpoint: origin, tree size, base64 root hash, a blank line, signature lines."""


class InclusionQuery(Query):
    seq: Size
    size: Size  # at least seq: 422 window_invalid otherwise


class ConsistencyQuery(Query):
    old: Annotated[int, Field(ge=0, le=2**62), INTEGRAL]
    new: Size  # at least old: 422 window_invalid otherwise


class InclusionProofOut(Response):
    seq: int
    leaf_index: int
    size: int
    hashes: list[str]  # base64, RFC 9162 inclusion path


class ConsistencyProofOut(Response):
    old: int
    new: int
    hashes: list[str]  # base64, RFC 9162 consistency path


class CosignatureIn(Request):
    size: Size
    # One signature line: "— <witness name> <base64(key id || time || signature)>".
    signature: Annotated[
        str, Field(min_length=10, max_length=600, pattern=r"^\u2014 [^\s\x00]+ [^\s\x00]+$")
    ]


class CosignatureOut(Response):
    size: int
    stored: bool


@table.route(
    "GET",
    "/audit/checkpoint",
    None,
    summary="The newest signed checkpoint of the audit log (C2SP signed note)",
    response=SignedNote,
    media_type="text/plain",
    refusals=[Reason.NOT_FOUND],
)
async def audit_checkpoint(req: ApiRequest) -> SignedNote:
    """The newest tree head, signed with the facility's audit key under the log's origin,
    with the cosignature lines of the witnesses that have seen it."""
    async with req.ctx.engine.connect() as conn:
        note = await proofs.latest_checkpoint(conn)
    if note is None:
        raise ApiError(Reason.NOT_FOUND, "The audit log has no checkpoint yet.")
    return SignedNote(note)


def _beyond(exc: proofs.BeyondLog) -> ApiError:
    return ApiError(
        Reason.BEYOND_LOG, f"The audit log's tree has {exc.size} entries so far (checkpointed)."
    )


@table.route(
    "GET",
    "/audit/proof/inclusion",
    None,
    summary="Inclusion proof of an audit entry in the tree of a given size (RFC 9162)",
    query=InclusionQuery,
    response=InclusionProofOut,
    refusals=[Reason.BEYOND_LOG, Reason.WINDOW_INVALID],
)
async def audit_inclusion_proof(req: ApiRequest) -> InclusionProofOut:
    """Entry ``seq`` is leaf ``seq - 1``; its leaf hash is SHA-256(0x00 || the entry's
    canonical body)."""
    q = req.query_as(InclusionQuery)
    if q.seq > q.size:
        raise ApiError(Reason.WINDOW_INVALID, f"Entry {q.seq} is not in a tree of {q.size}.")
    try:
        async with req.ctx.engine.connect() as conn:
            path = await proofs.inclusion_proof(conn, q.seq, q.size)
    except proofs.BeyondLog as exc:
        raise _beyond(exc) from None
    except ProofError as exc:
        raise ApiError(Reason.INVALID_REQUEST, str(exc)) from None
    return InclusionProofOut(
        seq=q.seq, leaf_index=q.seq - 1, size=q.size, hashes=[b64(h) for h in path]
    )


@table.route(
    "GET",
    "/audit/proof/consistency",
    None,
    summary="Consistency proof between two tree sizes of the audit log (RFC 9162)",
    query=ConsistencyQuery,
    response=ConsistencyProofOut,
    refusals=[Reason.BEYOND_LOG, Reason.WINDOW_INVALID],
)
async def audit_consistency_proof(req: ApiRequest) -> ConsistencyProofOut:
    """What a witness, or the holder of a receipt, checks an older checkpoint against."""
    q = req.query_as(ConsistencyQuery)
    if q.old > q.new:
        raise ApiError(Reason.WINDOW_INVALID, "The old tree size is larger than the new.")
    try:
        async with req.ctx.engine.connect() as conn:
            path = await proofs.consistency_proof(conn, q.old, q.new)
    except proofs.BeyondLog as exc:
        raise _beyond(exc) from None
    except ProofError as exc:
        raise ApiError(Reason.INVALID_REQUEST, str(exc)) from None
    return ConsistencyProofOut(old=q.old, new=q.new, hashes=[b64(h) for h in path])


def witnesses(configured: list[str]) -> list[Verifier]:
    """``[audit] witnesses`` (checked when the settings were loaded)."""
    return [parse_vkey(vkey) for vkey in configured]


@table.route(
    "POST",
    "/audit/cosignatures",
    None,
    summary="A witness's cosignature of a checkpoint (C2SP tlog-cosignature)",
    body=CosignatureIn,
    response=CosignatureOut,
    refusals=[Reason.WITNESS_UNKNOWN, Reason.COSIGNATURE_INVALID, Reason.NOT_FOUND],
)
async def audit_cosign(req: ApiRequest) -> CosignatureOut:
    """Only from the witnesses in ``[audit] witnesses``, and only if the signature verifies:
    the signature is the credential. ``stored`` is false for a cosignature already known."""
    body = req.body_as(CosignatureIn)
    known = witnesses(req.ctx.settings.audit.witnesses)
    now: datetime = req.now
    try:
        stored = await proofs.add_cosignature(req.ctx.engine, body.size, body.signature, known, now)
    except LookupError:
        raise ApiError(Reason.NOT_FOUND, f"There is no checkpoint of size {body.size}.") from None
    except proofs.CosignatureRefused as exc:
        reason = Reason.WITNESS_UNKNOWN if exc.unknown else Reason.COSIGNATURE_INVALID
        raise ApiError(reason, str(exc)) from None
    return CosignatureOut(size=body.size, stored=stored)
