"""The server's open-file limit: enough for its tablets, raised if it may be, refused if not."""

from __future__ import annotations

import resource

from hypothesis import given
from hypothesis import strategies as st

from kiosk.runtime.open_files import HEADROOM, needed, plan

INF = resource.RLIM_INFINITY
limits = st.one_of(st.just(INF), st.integers(min_value=64, max_value=2**20))


def test_the_default_soft_limit_cannot_hold_ten_thousand_tablets_but_the_hard_one_can() -> None:
    decision = plan(1024, 524288, 10_000)
    assert decision.refusal is None and decision.raise_to == 524288  # to the hard limit


def test_enough_already_changes_nothing() -> None:
    assert plan(65536, 65536, 10_000).raise_to is None
    assert plan(INF, INF, 10_000).raise_to is None


def test_a_hard_limit_too_low_is_refused_in_one_line_that_says_what_to_change() -> None:
    decision = plan(1024, 4096, 10_000)
    assert decision.raise_to is None and decision.refusal is not None
    assert "\n" not in decision.refusal
    assert "LimitNOFILE" in decision.refusal and "device_capacity = 10000" in decision.refusal
    assert str(needed(10_000)) in decision.refusal


@given(soft=limits, hard=limits, devices=st.integers(min_value=1, max_value=2**19))
def test_after_the_plan_the_limit_holds_the_tablets_or_the_server_refuses(
    soft: int, hard: int, devices: int
) -> None:
    if hard != INF and soft != INF and soft > hard:
        soft = hard  # the kernel keeps soft <= hard
    decision = plan(soft, hard, devices)
    final = decision.raise_to if decision.raise_to is not None else soft
    holds = final == INF or final >= devices + HEADROOM
    assert (decision.refusal is None) == holds
    if decision.raise_to is not None:
        assert hard == INF or decision.raise_to <= hard  # never above the hard limit
