"""Staff monitors of a controlled call (R6, R13; issue 12: bounded, and every refusal kept).

A monitor is asked for (``AttachMonitor``); if the rules allow it the bridge
makes its offer (``MonitorOffered``) and the monitor has
``Rules.monitor_answer_within`` to answer, or it is dropped. A call has at
most ``Rules.max_monitors``. Every refused attempt goes into the audit chain
with its reason, whatever it was refused for: a privileged call (R13: refused
before anything else is looked at), a call that is not live, no bridge, too
many monitors.
"""

from __future__ import annotations

from datetime import datetime

from kiosk.domain import policy
from kiosk.domain.model import MediaKind, Route
from kiosk.domain.policy import Deny, deny
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard.calls import LiveCall, Monitor
from kiosk.domain.switchboard.events import (
    AnswerMonitor,
    AttachMonitor,
    MonitorAnswered,
    MonitorFailed,
    MonitorGone,
    MonitorOffered,
)
from kiosk.domain.switchboard.state import Board, Outcome

_NOT_LIVE = deny(Reason.CALL_NOT_LIVE)


def attach(board: Board, event: AttachMonitor, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    if call is None:
        return _refused(event.call_id, None, event.staff_id, event.kinds, _NOT_LIVE)
    record = call.record
    verdict = policy.attach_monitor(record.category, record.control, event.kinds)
    if isinstance(verdict, Deny):
        return _refused(call.id, call, event.staff_id, event.kinds, verdict)
    if call.route is not Route.BRIDGE or not call.bridge_open:
        # R13 and principle 3: only a bridged call can be monitored at all.
        return _refused(
            call.id, call, event.staff_id, event.kinds, deny(Reason.BRIDGE_UNAVAILABLE)
        )
    if len(call.monitors) + call.monitors_asked >= board.rules.max_monitors:
        return _refused(
            call.id, call, event.staff_id, event.kinds, deny(Reason.MONITOR_LIMIT_REACHED)
        )
    call.monitors_asked += 1
    return Outcome(call_id=call.id)


def offered(board: Board, event: MonitorOffered, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    if call is None:
        # The call ended while the bridge was making the offer; its bridge went with it.
        return _refused(event.call_id, None, event.staff_id, event.kinds, _NOT_LIVE)
    call.monitors_asked = max(0, call.monitors_asked - 1)
    answer_by = now + board.rules.monitor_answer_within
    call.monitors[event.monitor_id] = Monitor(event.staff_id, event.kinds, answer_by)
    return Outcome(
        [
            fx.Audit(
                f"staff:{event.staff_id}",
                "monitor.attached",
                {**call.parties(), "monitor": event.monitor_id},
                {"kinds": _kinds(event.kinds)},
            ),
            fx.Count("monitor_attachments"),
            fx.Log("monitor attached", {"call_id": call.id, "monitor_id": event.monitor_id}),
        ],
        call_id=call.id,
    )


def failed(board: Board, event: MonitorFailed, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    if call is not None:
        call.monitors_asked = max(0, call.monitors_asked - 1)
    # The bridge closing under the request (the call is ending) or failing to offer:
    # a refusal with its reason, audited (fail closed).
    return _refused(
        event.call_id, call, event.staff_id, event.kinds, deny(Reason.BRIDGE_UNAVAILABLE)
    )


def answer(board: Board, event: AnswerMonitor, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    monitor = call.monitors.get(event.monitor_id) if call is not None else None
    if call is None or monitor is None or monitor.staff_id != event.staff_id:
        verdict = deny(Reason.CALL_NOT_LIVE)
        subjects = {"call": event.call_id, "monitor": event.monitor_id}
        return Outcome(
            [
                fx.Audit(
                    f"staff:{event.staff_id}",
                    "monitor.answer_refused",
                    subjects,
                    {"reason": verdict.reason.value},
                ),
                fx.CountRefusal(verdict.reason),
            ],
            refused=verdict,
        )
    return Outcome(call_id=call.id)


def answered(board: Board, event: MonitorAnswered, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    monitor = call.monitors.get(event.monitor_id) if call is not None else None
    if monitor is not None:
        monitor.answer_by = None
    return Outcome()


def gone(board: Board, event: MonitorGone, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    monitor = call.monitors.pop(event.monitor_id, None) if call is not None else None
    if call is None or monitor is None:
        return Outcome()
    return Outcome(_detached(call, event.monitor_id, monitor, event.why), call_id=call.id)


def overdue(call: LiveCall, now: datetime) -> list[fx.Effect]:
    """Monitors whose offer was never answered in time: dropped (issue 12)."""
    out: list[fx.Effect] = []
    for monitor_id, monitor in list(call.monitors.items()):
        if monitor.answer_by is not None and now >= monitor.answer_by:
            del call.monitors[monitor_id]
            out.append(fx.DropMonitor(call.id, monitor_id))
            out += _detached(call, monitor_id, monitor, "not_answered")
    return out


def _detached(call: LiveCall, monitor_id: str, monitor: Monitor, why: str) -> list[fx.Effect]:
    return [
        fx.Audit(
            f"staff:{monitor.staff_id}",
            "monitor.detached",
            {"call": call.id, "monitor": monitor_id},
            {"why": why},
        )
    ]


def _refused(
    call_id: str,
    call: LiveCall | None,
    staff_id: str,
    kinds: frozenset[MediaKind],
    verdict: Deny,
) -> Outcome:
    subjects = call.parties() if call is not None else {"call": call_id}
    return Outcome(
        [
            fx.Audit(
                f"staff:{staff_id}",
                "monitor.refused",
                subjects,
                {"kinds": _kinds(kinds), "reason": verdict.reason.value},
            ),
            fx.CountRefusal(verdict.reason),
            fx.Log("monitor refused", {"call_id": call_id, "reason": verdict.reason.value}, True),
        ],
        refused=verdict,
    )


def _kinds(kinds: frozenset[MediaKind]) -> list[str]:
    return sorted(k.value for k in kinds)
