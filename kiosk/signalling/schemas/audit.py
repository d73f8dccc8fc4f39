"""The audit chain as the staff API shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from kiosk.signalling.schemas.base import Query, Response

FilterId = Annotated[str, StringConstraints(max_length=36, strip_whitespace=True)]


class AuditQuery(Query):
    after_seq: Annotated[int, Field(ge=0, le=2**62)] = 0
    before_seq: Annotated[int, Field(ge=1, le=2**62)] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    # A log reads newest first; reading the chain through reads oldest first (the default).
    newest_first: bool = False
    # Only the entries about this call, inmate, contact; made by this staff member; of this
    # action ("call.ended") or family of actions ("call").
    call: FilterId = ""
    inmate: FilterId = ""
    contact: FilterId = ""
    staff: FilterId = ""
    action: Annotated[str, StringConstraints(max_length=100, strip_whitespace=True)] = ""


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
    # The names behind the ids in these entries (inmates, contacts, staff, tablets), for the
    # kinds the reader's role may read.
    names: dict[str, str] = {}


class AuditVerifyOut(Response):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str
