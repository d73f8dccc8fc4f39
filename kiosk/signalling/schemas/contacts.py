"""Contacts, decisions (R4, R6-R8, R13), breaches (R14) and appeals (R8).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from kiosk.domain.model import (
    AppealBy,
    AppealState,
    Category,
    ContactStatus,
    ControlLevel,
    Ground,
    Outcome,
    Relation,
)
from kiosk.signalling.schemas.base import (
    NOT_NULL,
    NULL,
    Email,
    Name,
    Request,
    Response,
    Text,
    when,
)


class ContactPropose(Request):
    name: Name
    email: Email
    category: Category
    relation: Relation
    cleared_for_visits: bool = False  # R3 / R4


class ContactUpdate(Request):
    """Category is not updatable: a changed category is a new contact (R2, R5)."""

    name: Name | None = None
    email: Email | None = None
    relation: Relation | None = None


class DecisionRequest(Request):
    # A refusal carries no control level (R13 speaks first: 422 privileged_no_control).
    model_config = ConfigDict(
        json_schema_extra=when(
            "outcome", "refuse", {"properties": {"control": {"const": "none"}}}, {}
        )
    )

    outcome: Outcome
    control: ControlLevel = ControlLevel.NONE
    grounds: Annotated[list[Ground], Field(max_length=8)] = Field(default_factory=list)
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class DecisionOut(Response):
    id: str
    outcome: Outcome
    control: ControlLevel
    grounds: list[Ground]
    decided_by: str
    decided_at: datetime
    note: str


class BreachOut(Response):
    """R14: a breach recorded against contact and inmate, shown at later assessments."""

    id: str
    call_id: str
    recorded_by: str
    recorded_at: datetime
    note: str


class ContactOut(Response):
    id: str
    inmate_id: str
    name: str
    email: str
    category: Category
    relation: Relation
    status: ContactStatus
    cleared_for_visits: bool
    email_confirmed: bool
    application_received: bool
    control: ControlLevel
    decision: DecisionOut | None
    breaches: int
    breach_records: list[BreachOut]


class ContactList(Response):
    items: list[ContactOut]


class AppealCreate(Request):
    by: AppealBy
    text: Text


class AppealDecisionRequest(Request):
    """R8: the decision is upheld, or changed to the new decision given."""

    model_config = ConfigDict(
        json_schema_extra=when(
            "result",
            "changed",
            {"required": ["decision"], "properties": {"decision": NOT_NULL}},
            {"properties": {"decision": NULL}},
        )
    )

    result: Literal["upheld", "changed"]
    decision: DecisionRequest | None = None  # required when changed, and only then


class AppealOut(Response):
    id: str
    contact_id: str
    decision_id: str
    by: AppealBy
    filed_at: datetime
    text: str
    state: AppealState
    result_decision_id: str | None
    decided_at: datetime | None


class AppealList(Response):
    items: list[AppealOut]
