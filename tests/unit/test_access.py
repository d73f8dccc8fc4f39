"""Staff roles (kiosk/domain/access.py): deny by default, least privilege."""

from __future__ import annotations

import pytest

from kiosk.domain.access import PERMISSIONS, Action, authorize
from kiosk.domain.model import Role
from kiosk.domain.policy import Allow, Deny
from kiosk.domain.reasons import Reason

WRITES = {a for a in Action if not a.value.endswith(".read") and a is not Action.SELF}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_every_answer_is_allow_or_forbidden_role(role: Role, action: Action) -> None:
    verdict = authorize(role, action)
    if action in PERMISSIONS[role]:
        assert isinstance(verdict, Allow)
    else:
        assert isinstance(verdict, Deny) and verdict.reason is Reason.FORBIDDEN_ROLE
        assert role.value in verdict.message and action.value in verdict.message


def test_every_action_belongs_to_some_role() -> None:
    assert set().union(*PERMISSIONS.values()) == set(Action)


def test_officers_handle_calls_and_write_nothing_else() -> None:
    assert PERMISSIONS[Role.OFFICER] & WRITES == {
        Action.CALL_SET_UP,
        Action.CALL_END,
        Action.CALL_MONITOR,
    }


def test_visit_office_never_touches_devices_staff_facility_or_calls() -> None:
    for action in (
        Action.DEVICE_WRITE,
        Action.STAFF_WRITE,
        Action.FACILITY_WRITE,
        Action.AUDIT_READ,
        Action.CALL_SET_UP,
        Action.CALL_END,
        Action.CALL_MONITOR,
    ):
        assert not authorize(Role.VISIT_OFFICE, action)


def test_admin_does_visit_office_work_but_never_monitors() -> None:
    assert PERMISSIONS[Role.VISIT_OFFICE] <= PERMISSIONS[Role.ADMIN]
    assert not authorize(Role.ADMIN, Action.CALL_MONITOR)
    # Only the officer watches or listens (R6), and R13 still refuses privileged calls.
    assert [r for r in Role if authorize(r, Action.CALL_MONITOR)] == [Role.OFFICER]


def test_an_unknown_role_gets_nothing() -> None:
    class Stranger(str):
        value = "stranger"

    for action in Action:
        assert not authorize(Stranger("x"), action)  # type: ignore[arg-type]
