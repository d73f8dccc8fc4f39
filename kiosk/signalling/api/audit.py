"""The audit chain, read from a sequence number, and its verification (ARCHITECTURE.md, 6)."""

from __future__ import annotations

from collections import defaultdict

from kiosk.audit.chain import Entry
from kiosk.audit.search import LogFilter, search
from kiosk.domain.access import Action, authorize
from kiosk.domain.policy import Deny
from kiosk.signalling.api.base import ApiRequest, OperationTable
from kiosk.signalling.api.work import reading
from kiosk.signalling.schemas import audit as s
from kiosk.store.names import names_of

# Names are shown only to a role that may read that kind of record.
NAME_READERS = {
    "inmate": Action.INMATE_READ,
    "contact": Action.CONTACT_READ,
    "staff": Action.STAFF_READ,
    "device": Action.DEVICE_READ,
}

table = OperationTable("audit")


@table.route(
    "GET",
    "/audit",
    Action.AUDIT_READ,
    summary="Audit entries between sequence numbers, oldest or newest first, filtered",
    query=s.AuditQuery,
    response=s.AuditList,
)
async def read_audit(req: ApiRequest) -> s.AuditList:
    """Filters combine (all must hold). An inmate's or a contact's entries include those of
    their bookings, calls and appeals."""
    q = req.query_as(s.AuditQuery)
    f = LogFilter(call=q.call, inmate=q.inmate, contact=q.contact, staff=q.staff, action=q.action)
    async with reading(req) as work:
        rows = await search(
            work.conn, f, after_seq=q.after_seq, before_seq=q.before_seq,
            newest_first=q.newest_first, limit=q.limit,
        )  # fmt: skip
        names = await names_of(work.conn, _readable_ids(req, rows))
    return s.AuditList(items=[s.AuditEntryOut.model_validate(r) for r in rows], names=names)


def _readable_ids(req: ApiRequest, rows: list[Entry]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    for entry in rows:
        kind, _, actor = entry.actor.partition(":")
        if kind == "staff" and actor:
            ids["staff"].add(actor)
        if isinstance(entry.subjects, dict):
            for key, value in entry.subjects.items():
                ids[key].add(str(value))
    role = req.staff.role
    return {
        kind: found
        for kind, found in ids.items()
        if kind in NAME_READERS and not isinstance(authorize(role, NAME_READERS[kind]), Deny)
    }


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
