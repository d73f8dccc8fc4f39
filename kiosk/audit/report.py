"""The auditor's privilege report: every privileged call of a period, from the audit log (R13).

Fed the audit entries in order (from the start of the period to the end of
the log: a call granted in the period may end, or be tampered with, later),
it gathers each defence-counsel or police call granted in the period — its
route and control, every refused monitor attempt, how it ended — and flags
any privileged call that ever had a bridge, a control level, or a monitor
attached. The report fails if there is a single flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kiosk.audit.chain import Entry, rfc3339
from kiosk.audit.receipt import ATTACHED, ENDED, GRANTED, PRIVILEGED, REFUSED

# Entries that say which way a call's media goes.
ROUTED = (*GRANTED, "call.set_up", "call.connected")


@dataclass
class PrivilegedCall:
    call: str
    category: str
    granted_at: datetime
    route: str = ""
    control: str = ""
    seqs: list[int] = field(default_factory=list)  # the entries its receipt holds
    refused: int = 0
    ended_at: datetime | None = None
    end_reason: str = ""
    flags: list[str] = field(default_factory=list)

    def line(self) -> str:
        ended = "not ended"
        if self.ended_at is not None:
            ended = f"ended {rfc3339(self.ended_at)} ({self.end_reason})"
        verdict = "; ".join(self.flags) if self.flags else "peer to peer, nobody attached"
        return (
            f"{self.call}  {self.category}  granted {rfc3339(self.granted_at)}  {ended}  "
            f"route {self.route}, control {self.control}, {self.refused} monitor attempts "
            f"refused: {verdict}"
        )


class PrivilegeReport:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self.calls: dict[str, PrivilegedCall] = {}

    @property
    def flagged(self) -> list[PrivilegedCall]:
        return [c for c in self.calls.values() if c.flags]

    def feed(self, e: Entry) -> None:
        call_id = e.subjects.get("call") if isinstance(e.subjects, dict) else None
        if not isinstance(call_id, str):
            return
        call = self.calls.get(call_id)
        if call is None:
            category = e.details.get("category") if isinstance(e.details, dict) else None
            if e.action != GRANTED[0] or category not in PRIVILEGED:
                return
            if not self.start <= e.at < self.end:
                return
            call = self.calls[call_id] = PrivilegedCall(call_id, str(category), e.at)
        self._note(call, e)

    def _note(self, call: PrivilegedCall, e: Entry) -> None:
        details = e.details if isinstance(e.details, dict) else {}
        if e.action in ROUTED:
            route, control = details.get("route"), details.get("control", call.control or "none")
            call.route, call.control = str(route), str(control)
            if route != "p2p":
                call.flags.append(f"entry {e.seq}: route {route} (a bridge)")
            if control != "none":
                call.flags.append(f"entry {e.seq}: control {control}")
        if e.action in (*GRANTED, REFUSED, ATTACHED, *ENDED):
            call.seqs.append(e.seq)
        if e.action == REFUSED:
            call.refused += 1
        elif e.action == ATTACHED:
            call.flags.append(f"entry {e.seq}: a monitor was attached")
        elif e.action in ENDED and call.ended_at is None:
            call.ended_at, call.end_reason = e.at, str(details.get("reason", ""))
