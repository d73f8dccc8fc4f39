"""The login throttle (issue 12): a guesser delays himself, never anybody else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.login_throttle import (
    ADDRESS_BUDGET,
    FREE_FAILURES,
    MAX_DELAY,
    Attempt,
    LoginThrottle,
    Wait,
    client_of,
    delay_after,
)
from kiosk.domain.reasons import Reason

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _fail(throttle: LoginThrottle, account: str, address: str, now: datetime) -> None:
    attempt = throttle.attempt(account, address, now)
    assert isinstance(attempt, Attempt)
    throttle.failed(attempt, now)


@given(
    st.lists(
        st.tuples(st.sampled_from(["officer", "admin"]), st.sampled_from(["10.0.0.9", "10.0.0.8"]),
                  st.integers(0, 600)),
        max_size=200,
    )
)
def test_a_client_that_has_not_failed_is_never_refused(
    attacks: list[tuple[str, str, int]],
) -> None:
    """Whatever strangers do to any account, the officer's own machine gets in."""
    throttle = LoginThrottle()
    now = T0
    for account, address, gap in attacks:
        now += timedelta(seconds=gap)
        attempt = throttle.attempt(account, address, now)
        if isinstance(attempt, Attempt):
            throttle.failed(attempt, now)
    for account in ("officer", "admin"):
        attempt = throttle.attempt(account, "10.0.0.1", now)
        assert isinstance(attempt, Attempt)
        throttle.succeeded(attempt)


def test_the_wait_doubles_with_each_failure_and_then_the_right_password_gets_in() -> None:
    throttle = LoginThrottle()
    now = T0
    for _ in range(FREE_FAILURES):
        _fail(throttle, "officer", "10.0.0.9", now)
    waits = []
    for _ in range(6):
        wait = throttle.attempt("officer", "10.0.0.9", now)
        assert isinstance(wait, Wait) and wait.reason is Reason.LOGIN_DELAYED
        waits.append(wait.retry_after)
        now += wait.retry_after
        _fail(throttle, "officer", "10.0.0.9", now)
    assert waits == [timedelta(seconds=2**i) for i in range(6)]
    for _ in range(2):
        assert isinstance(throttle.attempt("officer", "10.0.0.9", now), Wait)
    now += delay_after(FREE_FAILURES + 6)
    attempt = throttle.attempt("officer", "10.0.0.9", now)
    assert isinstance(attempt, Attempt)
    assert attempt.refused_before == 2  # counted for the next audit entry
    throttle.succeeded(attempt)
    assert isinstance(throttle.attempt("officer", "10.0.0.9", now), Attempt)


def test_the_wait_never_exceeds_the_cap() -> None:
    assert delay_after(FREE_FAILURES - 1) == timedelta(0)
    assert delay_after(10_000) == MAX_DELAY
    assert all(delay_after(n) <= delay_after(n + 1) for n in range(100))


def test_one_password_sprayed_over_many_accounts_is_stopped() -> None:
    throttle = LoginThrottle()
    for i in range(ADDRESS_BUDGET):
        _fail(throttle, f"user{i}", "198.51.100.7", T0)
    wait = throttle.attempt("user-next", "198.51.100.7", T0)
    assert isinstance(wait, Wait) and wait.reason is Reason.LOGIN_BUDGET_EXHAUSTED
    assert timedelta(0) < wait.retry_after <= throttle.budget_window
    # Another client is untouched; the sprayer gets room again as the window moves.
    assert isinstance(throttle.attempt("user-next", "198.51.100.8", T0), Attempt)
    later = T0 + throttle.budget_window + timedelta(seconds=1)
    assert isinstance(throttle.attempt("user-next", "198.51.100.7", later), Attempt)


def test_attempts_sent_at_once_count_before_their_answers() -> None:
    """A burst of parallel guesses is no faster than guesses one after the other."""
    throttle = LoginThrottle()
    in_flight = [throttle.attempt("officer", "10.0.0.9", T0) for _ in range(FREE_FAILURES)]
    assert all(isinstance(a, Attempt) for a in in_flight)
    assert isinstance(throttle.attempt("officer", "10.0.0.9", T0), Wait)
    for attempt in in_flight:
        assert isinstance(attempt, Attempt)
        throttle.abandoned(attempt)
    assert isinstance(throttle.attempt("officer", "10.0.0.9", T0), Attempt)


def test_an_ipv6_client_is_its_slash_64() -> None:
    assert client_of("2001:db8:1:2::1") == client_of("2001:db8:1:2:ffff::9") == (
        "2001:db8:1:2::/64"
    )
    assert client_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_of("192.0.2.1") == "192.0.2.1"
    throttle = LoginThrottle()
    for i in range(ADDRESS_BUDGET):
        _fail(throttle, f"user{i}", f"2001:db8:1:2::{i + 1:x}", T0)
    assert isinstance(throttle.attempt("x", "2001:db8:1:2:abcd::1", T0), Wait)
    assert isinstance(throttle.attempt("x", "2001:db8:1:3::1", T0), Attempt)


def test_a_streak_is_forgotten_after_a_quiet_hour() -> None:
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES + 2):
        now = T0
        attempt = throttle.attempt("officer", "10.0.0.9", now)
        if isinstance(attempt, Attempt):
            throttle.failed(attempt, now)
    later = T0 + timedelta(hours=1)
    attempt = throttle.attempt("officer", "10.0.0.9", later)
    assert isinstance(attempt, Attempt)
    assert throttle.failed(attempt, later).failures == 1
