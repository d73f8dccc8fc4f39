"""The device listener's one timer wheel and the deadlines it keeps for each link.

The wheel hands an item out at the first tick at or after the time it was
filed for, never before and at most one tick late (an item filed for two
times comes out at both: the listener asks the link itself); a link is due
by its hello, its silence or a send it cannot finish, and it is overdue
only past one of them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from kiosk.signalling.devices.link import CloseCode, Link, LinkTimers, Overdue
from kiosk.signalling.devices.wheel import TimerWheel

TICK = 0.25
times = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)


@given(
    start=st.floats(min_value=0, max_value=100),
    filed=st.lists(st.tuples(st.integers(0, 20), times), max_size=60),
    steps=st.lists(st.floats(min_value=0, max_value=50), min_size=1, max_size=80),
)
def test_items_come_out_at_their_tick_never_early_at_most_a_tick_late(
    start: float, filed: list[tuple[int, float]], steps: list[float]
) -> None:
    wheel: TimerWheel[int] = TimerWheel(TICK, start)
    first_tick = math.floor(start / TICK) + 1  # the first tick still to come
    slots: dict[int, set[int]] = {}
    for item, at in filed:
        at += start
        wheel.add(item, at)
        # Its tick: the first at or after its time, or the next one if that is past.
        slot = max(math.ceil(at / TICK), first_tick)
        assert slot * TICK >= min(at, first_tick * TICK)  # never early
        assert slot * TICK <= max(at, start) + TICK  # at most a tick late
        slots.setdefault(slot, set()).add(item)
    now = start
    for step in steps:
        now += step
        out = wheel.due(now)
        assert len(out) == len(set(out)), "handed out twice at once"
        taken = [slot for slot in slots if slot <= math.floor(now / TICK)]
        assert set(out) == set().union(*(slots.pop(slot) for slot in taken))
    assert len(wheel) == sum(len(items) for items in slots.values())


def test_nothing_comes_out_before_its_tick() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0, now=0.0)
    wheel.add("a", 2.5)
    assert wheel.due(2.4) == []
    assert wheel.due(2.99) == []
    assert wheel.due(3.0) == ["a"]
    assert wheel.due(10.0) == []


def test_a_long_pause_hands_out_everything_that_fell_due() -> None:
    wheel: TimerWheel[int] = TimerWheel(0.1, now=0.0)
    for i in range(5):
        wheel.add(i, i * 10.0)
    assert sorted(wheel.due(1e6)) == [0, 1, 2, 3, 4]


def test_a_time_already_past_is_handed_out_at_the_next_tick() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0, now=5.0)
    wheel.add("late", 1.0)
    assert wheel.due(5.5) == []
    assert wheel.due(6.0) == ["late"]


TIMERS = LinkTimers(heartbeat_interval=10, silent_intervals=3, hello_timeout=10, send_timeout=10)
NOT_AFTER = datetime(2100, 1, 1, tzinfo=UTC)


def test_a_new_link_is_due_by_its_hello_then_by_its_silence() -> None:
    link = Link("d", None, "ab", NOT_AFTER, now=100.0)  # type: ignore[arg-type]
    assert link.due(TIMERS) == 110.0
    assert link.overdue(TIMERS, 109.9) is None
    assert link.overdue(TIMERS, 110.0) is Overdue.NO_HELLO
    link.greeted = True
    link.heard = 105.0
    assert link.due(TIMERS) == 135.0  # three heartbeat intervals after the last frame
    assert link.overdue(TIMERS, 134.9) is None
    assert link.overdue(TIMERS, 135.0) is Overdue.SILENT


def test_a_send_the_tablet_does_not_take_makes_it_due_sooner() -> None:
    link = Link("d", None, "ab", NOT_AFTER, now=100.0)  # type: ignore[arg-type]
    link.greeted = True
    link.sending, link.sending_since = 1, 101.0
    assert link.due(TIMERS) == 111.0
    link.heard = 110.5  # still pinging, but not reading what it is sent
    assert link.overdue(TIMERS, 111.0) is Overdue.NOT_READING
    assert Overdue.NOT_READING.close_code is CloseCode.SLOW_READER
    assert Overdue.SILENT.close_code is Overdue.NO_HELLO.close_code is CloseCode.HEARTBEAT_TIMEOUT


@given(heard=times, now=times, greeted=st.booleans())
def test_a_link_is_overdue_exactly_when_its_due_time_has_come(
    heard: float, now: float, greeted: bool
) -> None:
    link = Link("d", None, "ab", NOT_AFTER, now=heard)  # type: ignore[arg-type]
    link.greeted = greeted
    assert (link.overdue(TIMERS, now) is not None) == (now >= link.due(TIMERS))
