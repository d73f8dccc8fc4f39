"""The outbox's retry schedule (issue 12): doubling, capped, bounded, and a lease that
outlasts any send."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from kiosk.runtime.config import MailSettings
from kiosk.signalling.mail.outbox import RETRY_CAP, lease, retry_delay, send_within


def test_retries_double_until_the_last_attempt_then_the_mail_is_dead() -> None:
    settings = MailSettings(retry_seconds=30, attempts=5)
    delays = [retry_delay(settings, n) for n in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (30, 60, 120, 240)] + [None]


@given(
    st.floats(min_value=0.01, max_value=3600),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=1, max_value=100),
)
def test_a_retry_comes_within_the_cap_and_never_after_the_last_attempt(
    retry: float, attempts: int, done: int
) -> None:
    settings = MailSettings(retry_seconds=retry, attempts=attempts)
    delay = retry_delay(settings, done)
    if done >= attempts:
        assert delay is None
    else:
        assert delay is not None and timedelta(0) < delay <= timedelta(seconds=RETRY_CAP)


@given(st.floats(min_value=0.01, max_value=600))
def test_a_claimed_mail_is_left_to_its_sender_longer_than_a_send_may_take(
    timeout: float,
) -> None:
    settings = MailSettings(timeout_seconds=timeout)
    assert lease(settings) > timedelta(seconds=send_within(settings))
