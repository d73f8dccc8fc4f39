"""The call state machine: the table, time, and properties over random event sequences."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.callstate import (
    ENDING_EVENTS,
    ON_TIME,
    TRANSITIONS,
    Answer,
    BridgeFailed,
    CallMachine,
    Dial,
    Effect,
    End,
    Event,
    Hangup,
    InvalidTransition,
    LegLost,
    Reconnect,
    RecordBreach,
    Restrict,
    Revoke,
    ServerRestart,
    SetUp,
    StaffEnd,
    Warn,
)
from kiosk.domain.model import CallState
from kiosk.domain.reasons import EndReason, Reason

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
END = START + 30 * MIN

ALL_EVENTS: list[Event] = [
    SetUp(),
    Dial(),
    Answer(),
    LegLost(),
    Reconnect(),
    Hangup(),
    StaffEnd("staff-1", breach=False),
    StaffEnd("staff-1", breach=True),
    Revoke(),
    Restrict(),
    BridgeFailed(),
    ServerRestart(),
]


def connected(now: datetime = START) -> CallMachine:
    m = CallMachine(START, END)
    for event in (SetUp(), Dial(), Answer()):
        assert m.handle(event, now) == []
    assert m.state is CallState.CONNECTED
    return m


def test_the_happy_path_booked_ready_ringing_connected() -> None:
    m = CallMachine(START, END)
    assert m.state is CallState.BOOKED
    m.handle(SetUp(), START - 10 * MIN)  # R12: staff set it up in advance
    assert m.state is CallState.READY
    m.handle(Dial(), START)
    assert m.state is CallState.RINGING
    m.handle(Answer(), START + MIN)
    assert m.state is CallState.CONNECTED


def test_r10_no_dialling_before_the_window_opens() -> None:
    m = CallMachine(START, END, state=CallState.READY)
    with pytest.raises(InvalidTransition) as caught:
        m.handle(Dial(), START - timedelta(seconds=1))
    assert caught.value.reason is Reason.INVALID_TRANSITION
    assert m.state is CallState.READY


def test_reconnection_inside_the_window() -> None:
    m = connected()
    m.handle(LegLost(), START + 5 * MIN)
    assert m.state is CallState.RINGING
    m.handle(Reconnect(), START + 6 * MIN)
    assert m.state is CallState.CONNECTED
    m.handle(LegLost(), START + 7 * MIN)
    m.handle(Answer(), START + 8 * MIN)
    assert m.state is CallState.CONNECTED


def test_r10_no_reconnection_after_the_window() -> None:
    m = connected()
    m.handle(LegLost(), START + 5 * MIN)
    effects = m.handle(Reconnect(), END)
    assert effects == [End(EndReason.TIME_UP)]
    assert m.state is CallState.ENDED


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (Hangup(), EndReason.HANGUP),
        (StaffEnd("staff-7"), EndReason.ENDED_BY_STAFF),
        (Revoke(), EndReason.DEVICE_REVOKED),
        (Restrict(), EndReason.FACILITY_RESTRICTED),
        (BridgeFailed(), EndReason.BRIDGE_FAILED),
        (ServerRestart(), EndReason.SERVER_RESTARTED),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, EndReason) else v.value,
)
def test_ending_events_end_the_call_with_their_reason(event: Event, reason: EndReason) -> None:
    for state in (CallState.BOOKED, CallState.READY, CallState.RINGING, CallState.CONNECTED):
        m = CallMachine(START, END, state=state)
        assert m.handle(event, START + MIN) == [End(reason)]
        assert m.state is CallState.ENDED and m.end_reason is reason


@pytest.mark.parametrize("event", [BridgeFailed(), Hangup()], ids=lambda e: type(e).__name__)
def test_r10_the_tablets_own_clock_ending_a_call_on_time_is_time_up(event: Event) -> None:
    """Issue 16: the tablet closes its side (and a controlled call's bridge leg) by its own
    clock a moment before the server's end; that is time up, not a failure."""
    m = connected()
    assert m.handle(event, END - ON_TIME)[-1] == End(EndReason.TIME_UP)
    early = connected()
    reason = EndReason.BRIDGE_FAILED if isinstance(event, BridgeFailed) else EndReason.HANGUP
    assert early.handle(event, END - ON_TIME - timedelta(seconds=1))[-1] == End(reason)
    staff = connected()
    assert staff.handle(StaffEnd("staff-7"), END - timedelta(seconds=1))[-1] == End(
        EndReason.ENDED_BY_STAFF
    )


def test_r14_staff_end_a_call_for_a_breach_and_it_is_recorded() -> None:
    m = connected()
    effects = m.handle(StaffEnd("staff-7", breach=True), START + 3 * MIN)
    assert effects == [End(EndReason.BREACH), RecordBreach("staff-7")]
    assert m.end_reason is EndReason.BREACH


def test_r14_an_ordinary_staff_end_records_no_breach() -> None:
    m = connected()
    assert m.handle(StaffEnd("staff-7"), START + 3 * MIN) == [End(EndReason.ENDED_BY_STAFF)]


def test_r10_warnings_at_five_and_one_minute_left_then_time_up() -> None:
    m = connected()
    assert m.next_deadline() == END - 5 * MIN
    assert m.tick(END - 5 * MIN - timedelta(seconds=1)) == []
    assert m.tick(END - 5 * MIN) == [Warn(5)]
    assert m.tick(END - 4 * MIN) == []  # once only
    assert m.next_deadline() == END - MIN
    assert m.tick(END - MIN) == [Warn(1)]
    assert m.next_deadline() == END
    assert m.tick(END - timedelta(seconds=1)) == []
    assert m.tick(END) == [End(EndReason.TIME_UP)]
    assert m.state is CallState.ENDED and m.end_reason is EndReason.TIME_UP
    assert m.next_deadline() is None
    assert m.tick(END + MIN) == []


def test_r10_late_ticks_say_only_the_most_urgent_warning() -> None:
    m = connected()
    assert m.tick(END - 30 * timedelta(seconds=1)) == [Warn(1)]
    assert m.tick(END - 10 * timedelta(seconds=1)) == []


def test_a_restored_machine_remembers_its_warnings() -> None:
    m = CallMachine(START, END, state=CallState.CONNECTED, warned=frozenset({5}))
    assert m.tick(END - 2 * MIN) == []
    assert m.next_deadline() == END - MIN


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_ended_is_absorbing(event: Event) -> None:
    m = connected()
    m.handle(Hangup(), START + MIN)
    with pytest.raises(InvalidTransition):
        m.handle(event, START + 2 * MIN)
    assert m.state is CallState.ENDED and m.end_reason is EndReason.HANGUP


def test_every_pair_outside_the_table_raises_and_changes_nothing() -> None:
    """Exhaustive over states x events."""
    for state, event in itertools.product(CallState, ALL_EVENTS):
        m = CallMachine(START, END, state=state)
        key = (state, type(event))
        if key in TRANSITIONS:
            m.handle(event, START + MIN)
            assert m.state is TRANSITIONS[key]
        else:
            with pytest.raises(InvalidTransition):
                m.handle(event, START + MIN)
            assert m.state is state


def test_the_table_ends_only_with_ending_events() -> None:
    for (_, event_type), target in TRANSITIONS.items():
        assert (target is CallState.ENDED) == (event_type in ENDING_EVENTS)
    assert not any(state is CallState.ENDED for state, _ in TRANSITIONS)


def test_a_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="end after"):
        CallMachine(START, START)


# --- properties over random sequences ------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(ALL_EVENTS)),  # None: only a tick
        st.integers(min_value=0, max_value=240),  # seconds to advance
    ),
    max_size=40,
)


@given(steps=steps, start_offset=st.integers(min_value=-600, max_value=600))
def test_random_sequences_keep_every_invariant(
    steps: list[tuple[Event | None, int]], start_offset: int
) -> None:
    m = CallMachine(START, END)
    now = START + timedelta(seconds=start_offset)
    effects: list[Effect] = []
    for event, advance in steps:
        now += timedelta(seconds=advance)
        before = m.state
        if event is None:
            effects += m.tick(now)
        else:
            try:
                effects += m.handle(event, now)
            except InvalidTransition as refused:
                assert refused.reason is Reason.INVALID_TRANSITION
                # Raising changes no state, except when time itself ended the call first:
                # that cannot be, because handle returns time-up instead of raising.
                assert m.state is before
                continue
            # The move was in the table (or time ran out first).
            if m.state is not before:
                timed_out = m.end_reason is EndReason.TIME_UP and now >= END
                assert (before, type(event)) in TRANSITIONS or timed_out
        # Never connected at or after the end of the window, nor before it opens.
        if m.state is CallState.CONNECTED:
            assert START <= now < END
        if m.state is CallState.RINGING:
            assert now >= START
        # Ended is absorbing and carries a reason.
        if before is CallState.ENDED:
            assert m.state is CallState.ENDED
        assert (m.state is CallState.ENDED) == (m.end_reason is not None)
    ends = [e for e in effects if isinstance(e, End)]
    warns = [e.minutes_left for e in effects if isinstance(e, Warn)]
    assert len(ends) <= 1
    assert len(warns) == len(set(warns))
    if m.state is CallState.ENDED:
        assert ends == [End(m.end_reason)]  # type: ignore[arg-type]
    breaches = [e for e in effects if isinstance(e, RecordBreach)]
    assert len(breaches) == (1 if m.end_reason is EndReason.BREACH else 0)
    # Nothing but the breach record follows the end: no warning after it.
    if ends:
        after = effects[effects.index(ends[0]) + 1 :]
        assert all(isinstance(e, RecordBreach) for e in after)


def test_every_sequence_of_three_events_keeps_the_invariants() -> None:
    """Exhaustive over all 12**3 sequences, one minute apart inside the window."""
    for sequence in itertools.product(ALL_EVENTS, repeat=3):
        m = CallMachine(START, END)
        effects: list[Effect] = []
        expected = CallState.BOOKED
        for n, event in enumerate(sequence):
            target = TRANSITIONS.get((expected, type(event)))
            if target is None:
                with pytest.raises(InvalidTransition):
                    m.handle(event, START + n * MIN)
            else:
                effects += m.handle(event, START + n * MIN)
                expected = target
            assert m.state is expected
        ends = [e for e in effects if isinstance(e, End)]
        assert len(ends) == (1 if expected is CallState.ENDED else 0)
        assert not any(isinstance(e, Warn) for e in effects)  # nowhere near the end yet
