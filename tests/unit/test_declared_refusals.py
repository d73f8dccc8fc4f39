"""Every reason code a staff API handler can give is declared by its operation (issue 17).

The OpenAPI document lists each operation's error statuses with the reason codes
behind them, from the operation table: the refusals it declares (``refusals=``) and
those every request can meet on its way in (``Operation.error_statuses``). The
reasons a handler can really give are found by reading the code it reaches
(tests/unit/refusal_reach.py says how, and why that is enough).
"""

from __future__ import annotations

from pathlib import Path
from types import FunctionType

import pytest

import kiosk
from kiosk.domain.reasons import Reason
from kiosk.signalling.api import operations
from kiosk.signalling.api.base import Operation
from kiosk.signalling.api.live import operations as live_operations
from tests.unit.refusal_reach import Reach, api_error_sites

OPERATIONS = [*operations(), *live_operations(lambda: None)]  # type: ignore[arg-type, return-value]
REACH = Reach()


def declared(op: Operation) -> set[Reason]:
    return {r for reasons in op.error_statuses().values() for r in reasons}


def reachable(op: Operation) -> set[Reason]:
    assert isinstance(op.handler, FunctionType)
    return REACH.reasons(op.handler)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)
def test_a_handler_gives_only_the_reasons_its_operation_declares(op: Operation) -> None:
    undeclared = reachable(op) - declared(op)
    assert not undeclared, (
        f"{op.method} {op.path} can refuse with {sorted(r.value for r in undeclared)}: "
        "add them to its refusals= in the operation table"
    )


def test_the_reading_follows_policy_runner_and_switchboard() -> None:
    """Not vacuous: reasons written only deep down are found from the handlers."""
    by_id = {op.operation_id: op for op in OPERATIONS}
    # contacts handler -> put_in_force -> policy.decide_contact -> _may_decide -> check_control
    assert Reason.GROUNDS_REQUIRED in reachable(by_id["decide_contact"])
    # live.py -> calls().set_up -> runner -> SetUp event -> placing.set_up -> policy.place_call
    assert Reason.POLICE_CLEARANCE_MISSING in reachable(by_id["set_up_call"])
    # ... and the runner's facts loader, and no other event's refusals (a visitor's join).
    assert Reason.DEVICE_NOT_ASSIGNED in reachable(by_id["set_up_call"])
    assert Reason.BOOKING_USED not in reachable(by_id["set_up_call"])
    # a switchboard method by dispatch: StaffEnd -> Switchboard._staff_end
    assert Reason.CALL_NOT_LIVE in reachable(by_id["end_call"])
    # the unit of work's load: 404 for a booking named in the body
    assert Reason.NOT_FOUND in reachable(by_id["create_booking"])


def test_api_errors_are_built_only_in_the_api_package() -> None:
    """What the reading rests on: a refusal reaches a client only through the api package."""
    root = Path(kiosk.__file__).parent
    assert list(api_error_sites(root)) == []
    # ... and the check would see one.
    assert list(api_error_sites(root.parent / "tests" / "unit" / "refusal_reach_example"))
