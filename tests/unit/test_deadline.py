"""The tablet's grant checks and its own deadline (principle 1, R10), on a fake monotonic clock."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kiosk.device.deadline import (
    MEDIA_LEAD,
    NOT_YET_OPEN,
    Accepted,
    CallDeadline,
    Refused,
    check_grant,
)
from kiosk.domain.callstate import End, Warn
from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.wire.grants import DEFAULT_DRIFT, Grant, GrantClock, GrantError, ReplayGuard, sign_grant

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
DEVICE = "device-1"


def grant(minutes: float = 20, *, call_id: str = "call-1", device_id: str = DEVICE,
          issued_after: float = 0.0) -> Grant:
    return Grant(
        call_id=call_id,
        device_id=device_id,
        inmate_id="inmate-1",
        contact_id="contact-1",
        category=Category.PERSONAL,
        route=Route.P2P,
        control=ControlLevel.NONE,
        not_before=T0,
        not_after=T0 + timedelta(minutes=minutes),
        issued_at=T0 + timedelta(seconds=issued_after),
        dial_nonce="dial-nonce-1",
    )


def accept(g: Grant, mono: float = 1000.0, **kw: float) -> Accepted:
    decision = check_grant(sign_grant(g, KEY), PUB, DEVICE, ReplayGuard(), mono, **kw)  # type: ignore[arg-type]
    assert isinstance(decision, Accepted), decision
    return decision


def run(
    deadline: CallDeadline, start: float, stop: float, step: float
) -> list[tuple[float, object]]:
    """Tick the deadline on a fake clock from start to stop; what came out, and when."""
    out: list[tuple[float, object]] = []
    t = start
    while t <= stop:
        out.extend((t, e) for e in deadline.tick(t))
        t += step
    return out


# --- accepting a grant --------------------------------------------------------------------


def test_a_good_grant_is_accepted_and_carries_its_clock() -> None:
    decision = accept(grant(20), mono=500.0)
    assert decision
    assert decision.grant.call_id == "call-1"
    span = 20 * 60 * (1 - DEFAULT_DRIFT)
    # Media stops MEDIA_LEAD before the grant's end so the far end's last frame lands by then.
    assert abs(decision.deadline.deadline() - (500.0 + span - MEDIA_LEAD)) < 1e-6


def test_forged_grant_is_refused_without_a_call_id() -> None:
    other = Ed25519PrivateKey.generate()
    decision = check_grant(sign_grant(grant(), other), PUB, DEVICE, ReplayGuard(), 0.0)
    assert isinstance(decision, Refused) and not decision
    assert decision.reason == GrantError.BAD_SIGNATURE
    assert decision.call_id is None  # nothing unauthenticated is believed, not even the id


def test_tampered_payload_is_refused() -> None:
    signed = sign_grant(grant(), KEY)
    longer = signed.payload.replace("T16:20:00", "T18:20:00")
    assert longer != signed.payload
    decision = check_grant(replace(signed, payload=longer), PUB, DEVICE, ReplayGuard(), 0.0)
    assert isinstance(decision, Refused) and decision.reason == GrantError.BAD_SIGNATURE


def test_grant_for_another_device_is_refused() -> None:
    signed = sign_grant(grant(device_id="device-2"), KEY)
    decision = check_grant(signed, PUB, DEVICE, ReplayGuard(), 0.0)
    assert isinstance(decision, Refused) and decision.reason == GrantError.WRONG_DEVICE


def test_replayed_grant_of_an_ended_call_is_refused() -> None:
    ended = ReplayGuard()
    signed = sign_grant(grant(), KEY)
    assert check_grant(signed, PUB, DEVICE, ended, 0.0)
    ended.end("call-1")
    decision = check_grant(signed, PUB, DEVICE, ended, 1.0)
    assert isinstance(decision, Refused)
    assert decision.reason == GrantError.REPLAYED and decision.call_id == "call-1"


def test_grant_already_over_by_the_servers_clock_is_refused() -> None:
    # Issued after its own end: the server's clock says there is no time left.
    late = grant(minutes=1, issued_after=61)
    decision = check_grant(sign_grant(late, KEY), PUB, DEVICE, ReplayGuard(), 0.0)
    assert isinstance(decision, Refused) and decision.reason == GrantError.EXPIRED


def test_grant_with_under_a_second_left_is_refused() -> None:
    g = grant(minutes=1, issued_after=59.5)
    decision = check_grant(sign_grant(g, KEY), PUB, DEVICE, ReplayGuard(), 0.0)
    assert isinstance(decision, Refused) and decision.reason == GrantError.EXPIRED


def test_grant_issued_before_its_window_is_refused() -> None:
    g = grant(issued_after=-30)
    decision = check_grant(sign_grant(g, KEY), PUB, DEVICE, ReplayGuard(), 0.0)
    assert isinstance(decision, Refused) and decision.reason == NOT_YET_OPEN


def test_no_clock_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the server's times in the grant and the monotonic argument decide."""

    def forbidden() -> float:
        raise AssertionError("a clock was read")

    monkeypatch.setattr(time, "time", forbidden)
    monkeypatch.setattr(time, "monotonic", forbidden)
    d = accept(grant(20), mono=10.0).deadline
    assert d.tick(10.0 + 20 * 60) == [End(EndReason.TIME_UP)]


# --- the deadline -------------------------------------------------------------------------


def test_warnings_at_five_and_one_minute_then_the_end() -> None:
    d = accept(grant(20), mono=0.0).deadline
    end = d.deadline()
    events = run(d, 0.0, end + 5, 0.25)
    kinds = [e for _, e in events]
    assert kinds == [Warn(5), Warn(1), End(EndReason.TIME_UP)]
    (t5, _), (t1, _), (tend, _) = events
    assert end - 300 <= t5 < end - 300 + 0.25
    assert end - 60 <= t1 < end - 60 + 0.25
    assert end <= tend < end + 0.25
    assert d.tick(end + 100) == []  # ended once, for good
    assert d.next_wakeup() is None


def test_short_call_gets_only_the_warnings_still_ahead() -> None:
    d = accept(grant(3), mono=0.0).deadline  # 3 minutes: no "5 minutes left"
    kinds = [e for _, e in run(d, 0.0, d.deadline() + 1, 0.5)]
    assert kinds == [Warn(1), End(EndReason.TIME_UP)]


def test_late_tick_says_only_the_most_urgent_warning() -> None:
    d = accept(grant(20), mono=0.0).deadline
    assert d.tick(d.deadline() - 30) == [Warn(1)]  # asleep through the 5-minute mark
    assert d.tick(d.deadline() - 10) == []
    assert d.tick(d.deadline()) == [End(EndReason.TIME_UP)]


def test_next_wakeup_walks_warning_warning_end() -> None:
    d = accept(grant(20), mono=0.0).deadline
    end = d.deadline()
    assert d.next_wakeup() == end - 300
    d.tick(end - 300)
    assert d.next_wakeup() == end - 60
    d.tick(end - 60)
    assert d.next_wakeup() == end


def test_stop_ends_the_deadline_without_time_up() -> None:
    d = accept(grant(20), mono=0.0).deadline
    d.stop()
    assert d.tick(d.deadline() + 1) == [] and d.remaining(0.0) == 0.0


def test_link_down_makes_no_difference() -> None:
    """The deadline needs nothing from the server after the grant: no message, no link."""
    d = accept(grant(2), mono=100.0, sent_monotonic=99.9).deadline
    # No server message of any kind reaches the deadline; only time passes.
    events = run(d, 100.0, 100.0 + 200, 0.1)
    assert [e for _, e in events] == [Warn(1), End(EndReason.TIME_UP)]
    assert events[-1][0] <= 99.9 + 120 + 0.1


@given(
    span=st.floats(min_value=2, max_value=4 * 3600),
    rtt=st.floats(min_value=0, max_value=5),
    sign_frac=st.floats(min_value=0, max_value=1),
    anchor=st.floats(min_value=-1e6, max_value=1e6),
)
def test_never_ends_after_not_after_by_the_servers_clock(
    span: float, rtt: float, sign_frac: float, anchor: float
) -> None:
    """The tablet sends dial at `anchor`; the server signs somewhere inside the round trip.

    Whenever it signs, the tablet's deadline (by its monotonic clock, on the
    server's timeline) is at or before not_after, and early by at most the
    round trip plus drift.
    """
    issued_offset = sign_frac * rtt  # server signs this long after the dial left
    g = Grant(
        call_id="c", device_id=DEVICE, inmate_id="i", contact_id="k",
        category=Category.PERSONAL, route=Route.P2P, control=ControlLevel.NONE,
        not_before=T0, not_after=T0 + timedelta(seconds=span), issued_at=T0,
        dial_nonce="dial-nonce-1",
    )
    clock = GrantClock(g, anchor + rtt, sent_monotonic=anchor)
    d = CallDeadline(clock, anchor + rtt)
    # Server timeline: not_after is issued_offset + span after the dial left.
    true_end = anchor + issued_offset + span
    assert d.deadline() <= true_end + 1e-6
    assert true_end - d.deadline() <= rtt + span * DEFAULT_DRIFT + MEDIA_LEAD + 1e-6
