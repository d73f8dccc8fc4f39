"""The audit chain as the staff API shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from kiosk.signalling.schemas.base import Query, Response


class AuditQuery(Query):
    after_seq: Annotated[int, Field(ge=0, le=2**62)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AuditEntryOut(Response):
    seq: int
    at: datetime
    actor: str
    action: str
    subjects: dict[str, str]
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditList(Response):
    items: list[AuditEntryOut]


class AuditVerifyOut(Response):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str
