"""The privilege report over any mix of calls: exactly the privileged calls granted in the
period, each refused attempt counted, and a flag for every bridge, control or monitor (R13)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kiosk.audit.chain import GENESIS, Entry, make_entry
from kiosk.audit.report import PrivilegeReport

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Call:
    category: str
    route: str
    control: str
    refused: int
    attached: bool
    hour: int  # when it was granted, hours after T0
    ended: bool


calls = st.lists(
    st.builds(
        Call,
        category=st.sampled_from(["defence_counsel", "police", "personal", "official"]),
        route=st.sampled_from(["p2p", "p2p", "bridge"]),
        control=st.sampled_from(["none", "none", "hearing"]),
        refused=st.integers(min_value=0, max_value=3),
        attached=st.booleans(),
        hour=st.integers(min_value=0, max_value=47),
        ended=st.booleans(),
    ),
    max_size=8,
)


def log_of(calls: list[Call]) -> list[Entry]:
    entries: list[Entry] = []

    def add(at: datetime, action: str, subjects: dict[str, str],
            details: dict[str, object]) -> None:
        prev = entries[-1].hash if entries else GENESIS
        entries.append(make_entry(len(entries) + 1, at, "system", action, subjects, details, prev))

    for i, c in sorted(enumerate(calls), key=lambda ic: ic[1].hour):
        at = T0 + timedelta(hours=c.hour)
        call = {"call": f"c{i}", "inmate": "i1", "contact": f"k{i}"}
        add(at, "call.granted", call, {"route": c.route, "control": c.control,
                                        "category": c.category})
        add(at, "call.connected", {"call": f"c{i}"}, {"route": c.route})
        for _ in range(c.refused):
            add(at, "monitor.refused", call, {"kinds": ["audio"], "reason": "privileged"})
        if c.attached:
            add(at, "monitor.attached", {**call, "monitor": "m1"}, {"kinds": ["audio"]})
        if c.ended:
            add(at + timedelta(minutes=30), "call.ended", {"call": f"c{i}"}, {"reason": "time_up"})
    return entries


@given(calls, st.integers(min_value=0, max_value=24), st.integers(min_value=1, max_value=24))
def test_the_report_holds_exactly_the_privileged_calls_of_the_period(
    mix: list[Call], start_hour: int, hours: int
) -> None:
    start, end = T0 + timedelta(hours=start_hour), T0 + timedelta(hours=start_hour + hours)
    report = PrivilegeReport(start, end)
    for e in log_of(mix):
        report.feed(e)
    expected = {
        f"c{i}": c for i, c in enumerate(mix)
        if c.category in ("defence_counsel", "police")
        and start <= T0 + timedelta(hours=c.hour) < end
    }
    assert set(report.calls) == set(expected)
    for call_id, c in expected.items():
        got = report.calls[call_id]
        assert got.refused == c.refused
        assert (got.ended_at is not None) == c.ended
        flagged = c.route != "p2p" or c.control != "none" or c.attached
        assert bool(got.flags) == flagged, (c, got.flags)
        if c.attached:
            assert any("a monitor was attached" in f for f in got.flags)
        if c.route != "p2p":
            assert any("(a bridge)" in f for f in got.flags)
        assert len(got.seqs) == 1 + c.refused + int(c.attached) + int(c.ended)
    assert {c.call for c in report.flagged} == {
        k for k, c in expected.items() if c.route != "p2p" or c.control != "none" or c.attached
    }
