"""The audit chain, read from a sequence number, and its verification (ARCHITECTURE.md, 6)."""

from __future__ import annotations

from kiosk.audit.log import read_entries
from kiosk.domain.access import Action
from kiosk.signalling.api.base import ApiRequest, OperationTable
from kiosk.signalling.schemas import audit as s

table = OperationTable("audit")


@table.route(
    "GET",
    "/audit",
    Action.AUDIT_READ,
    summary="Audit entries after a sequence number",
    query=s.AuditQuery,
    response=s.AuditList,
)
async def read_audit(req: ApiRequest) -> s.AuditList:
    q = req.query_as(s.AuditQuery)
    rows = await read_entries(req.ctx.engine, q.after_seq, q.limit)
    return s.AuditList(items=[s.AuditEntryOut.model_validate(r) for r in rows])


@table.route(
    "GET",
    "/audit/verify",
    Action.AUDIT_READ,
    summary="Verify the whole chain and its signed checkpoints",
    response=s.AuditVerifyOut,
)
async def verify_audit(req: ApiRequest) -> s.AuditVerifyOut:
    from kiosk.audit.keys import load_verify_key
    from kiosk.audit.log import verify

    key = load_verify_key(req.ctx.settings.pki_dir)
    result = await verify(req.ctx.engine, key)
    return s.AuditVerifyOut.model_validate(result)
