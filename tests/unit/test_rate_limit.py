"""The device link's token bucket: a burst, then a steady rate, never more."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kiosk.signalling.devices.link import TokenBucket


@given(
    st.floats(0.5, 100),
    st.integers(1, 100),
    st.lists(st.floats(0, 2), min_size=1, max_size=300),
)
def test_never_more_than_the_burst_plus_the_rate_over_the_time_passed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    taken = 0
    for gap in gaps:
        now += gap
        taken += bucket.take(now)
    assert taken <= burst + rate * now + 1e-6


@given(st.floats(1, 100), st.integers(1, 50), st.integers(1, 500))
def test_a_sender_below_the_rate_is_never_refused(rate: float, burst: int, n: int) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    assert all(bucket.take(i * 1.01 / rate) for i in range(n))


def test_a_flood_gets_the_burst_then_refusals() -> None:
    bucket = TokenBucket(rate=5, burst=10, now=0.0)
    assert [bucket.take(0.0) for _ in range(12)] == [True] * 10 + [False] * 2
    assert bucket.take(0.2)  # one token back after 1/rate seconds
    assert not bucket.take(0.2)


def test_a_clock_that_steps_back_gives_nothing_extra() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)
