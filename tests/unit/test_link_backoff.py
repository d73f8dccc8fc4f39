"""The agent link's reconnect delays: exponential, capped, fully jittered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kiosk.device.link import LinkTimers, backoff_delay


@given(attempt=st.integers(min_value=0, max_value=10_000),
       r=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_delay_is_within_zero_and_the_capped_exponential(attempt: int, r: float) -> None:
    t = LinkTimers()
    delay = backoff_delay(attempt, t.reconnect_min, t.reconnect_max, lambda: r)
    ceiling = min(t.reconnect_max, t.reconnect_min * 2.0 ** min(attempt, 64))
    assert 0 <= delay <= ceiling <= 30.0
    assert delay == ceiling * r  # full jitter: uniform over the whole range


def test_the_ceiling_doubles_then_stops_at_the_cap() -> None:
    ceilings = [backoff_delay(n, 0.5, 30.0, lambda: 0.999999) for n in range(10)]
    assert [round(c, 2) for c in ceilings[:6]] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert all(29.9 < c <= 30.0 for c in ceilings[6:])


def test_jitter_spreads_a_crowd_of_tablets() -> None:
    """After a server restart, a thousand tablets do not all come back in the same instant."""
    import random

    rng = random.Random(7)
    delays = [backoff_delay(3, 0.5, 30.0, rng.random) for _ in range(1000)]
    buckets = [sum(1 for d in delays if i * 0.4 <= d < (i + 1) * 0.4) for i in range(10)]
    assert max(buckets) < 160  # about 100 each over 4 s: no thundering herd
