"""Monitoring and routing: R6 and R13, exhaustively over categories, levels and media kinds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given

from kiosk.domain.model import Category, ControlLevel, MediaKind, Route
from kiosk.domain.policy import ALLOW, Deny, attach_monitor, route_for
from kiosk.domain.reasons import Reason

from . import strategies as s

VIDEO = frozenset({MediaKind.VIDEO})
AUDIO = frozenset({MediaKind.AUDIO})
BOTH = VIDEO | AUDIO
ALL_KIND_SETS = [frozenset(), VIDEO, AUDIO, BOTH]


def label(value: object) -> str:
    """A test id that is the same in every process (a set's order is not)."""
    if isinstance(value, frozenset):
        return "+".join(sorted(k.value for k in value)) or "none"
    return str(value)


def reason(verdict: object) -> Reason | None:
    return verdict.reason if isinstance(verdict, Deny) else None


@pytest.mark.parametrize("category", [Category.DEFENCE_COUNSEL, Category.POLICE], ids=str)
@pytest.mark.parametrize("control", list(ControlLevel), ids=str)
@pytest.mark.parametrize("kinds", ALL_KIND_SETS, ids=["none", "video", "audio", "both"])
def test_r13_no_monitor_ever_attaches_to_a_privileged_call(
    category: Category, control: ControlLevel, kinds: frozenset[MediaKind]
) -> None:
    """Whatever level a record claims, defence counsel and police are never monitored."""
    assert reason(attach_monitor(category, control, kinds)) is Reason.PRIVILEGED_NO_MONITOR


def test_r6_an_uncontrolled_call_has_nothing_to_monitor() -> None:
    for category in (Category.PERSONAL, Category.OFFICIAL):
        assert reason(attach_monitor(category, ControlLevel.NONE, BOTH)) is Reason.NOT_CONTROLLED


def test_r5_court_calls_are_not_monitored() -> None:
    verdict = attach_monitor(Category.COURT, ControlLevel.SIGHT_AND_HEARING, VIDEO)
    assert reason(verdict) is Reason.NOT_CONTROLLED


@pytest.mark.parametrize(
    ("control", "kinds"),
    [
        (ControlLevel.SIGHT, VIDEO),
        (ControlLevel.HEARING, AUDIO),
        (ControlLevel.SIGHT_AND_HEARING, VIDEO),
        (ControlLevel.SIGHT_AND_HEARING, AUDIO),
        (ControlLevel.SIGHT_AND_HEARING, BOTH),
    ],
    ids=label,
)
def test_r6_a_monitor_receives_what_the_level_allows(
    control: ControlLevel, kinds: frozenset[MediaKind]
) -> None:
    for category in (Category.PERSONAL, Category.OFFICIAL):
        assert attach_monitor(category, control, kinds) == ALLOW


@pytest.mark.parametrize(
    ("control", "kinds"),
    [
        (ControlLevel.SIGHT, AUDIO),  # sight is not hearing
        (ControlLevel.SIGHT, BOTH),
        (ControlLevel.HEARING, VIDEO),
        (ControlLevel.HEARING, BOTH),
        (ControlLevel.SIGHT_AND_HEARING, frozenset()),
    ],
    ids=label,
)
def test_r6_a_monitor_gets_no_more_than_the_level_allows(
    control: ControlLevel, kinds: frozenset[MediaKind]
) -> None:
    verdict = attach_monitor(Category.PERSONAL, control, kinds)
    assert reason(verdict) is Reason.MEDIA_KIND_FORBIDDEN


def test_r6_the_whole_table() -> None:
    """Allowed exactly when: not privileged, may be controlled, controlled, kinds within."""
    for category, control, kinds in itertools.product(Category, ControlLevel, ALL_KIND_SETS):
        allowed = bool(attach_monitor(category, control, kinds))
        expected = (
            not category.privileged
            and category.may_be_controlled
            and control.controlled
            and bool(kinds)
            and kinds <= control.media_kinds
        )
        assert allowed == expected, (category, control, kinds)


# --- routes ---------------------------------------------------------------------------


@pytest.mark.parametrize("control", list(ControlLevel), ids=str)
def test_r13_privileged_and_court_calls_go_peer_to_peer(control: ControlLevel) -> None:
    """No media passes a point where staff could tap it (R13)."""
    for category in (Category.DEFENCE_COUNSEL, Category.POLICE, Category.COURT):
        assert route_for(category, control) is Route.P2P


def test_uncontrolled_calls_go_peer_to_peer() -> None:
    assert route_for(Category.PERSONAL, ControlLevel.NONE) is Route.P2P
    assert route_for(Category.OFFICIAL, ControlLevel.NONE) is Route.P2P


def test_r6_controlled_calls_go_through_the_bridge() -> None:
    for control in (ControlLevel.SIGHT, ControlLevel.HEARING, ControlLevel.SIGHT_AND_HEARING):
        assert route_for(Category.PERSONAL, control) is Route.BRIDGE
        assert route_for(Category.OFFICIAL, control) is Route.BRIDGE


@given(s.categories, s.control_levels, s.media_kind_sets)
def test_r13_a_monitor_is_allowed_only_on_bridged_calls(
    category: Category, control: ControlLevel, kinds: frozenset[MediaKind]
) -> None:
    """Whatever can be monitored passes the bridge; a p2p call never has a monitor."""
    if attach_monitor(category, control, kinds):
        assert route_for(category, control) is Route.BRIDGE
    if route_for(category, control) is Route.P2P:
        assert not attach_monitor(category, control, kinds)
