"""The verdict every rule gives: ``ALLOW`` or ``Deny(reason)`` with a code from
:mod:`kiosk.domain.reasons`.
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kiosk.domain.reasons import MESSAGES, Reason


@dataclass(frozen=True, slots=True)
class Allow:
    """The rules allow it. Truthy, so ``if verdict:`` reads naturally."""

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Deny:
    """The rules refuse it, for ``reason`` (the wire code); ``detail`` is for people."""

    reason: Reason
    detail: str = ""

    def __bool__(self) -> bool:
        return False

    @property
    def message(self) -> str:
        return self.detail or MESSAGES[self.reason]


Verdict = Allow | Deny
ALLOW = Allow()


def deny(reason: Reason, detail: str = "") -> Deny:
    return Deny(reason, detail)


def aware(*times: datetime) -> bool:
    return all(t.tzinfo is not None and t.utcoffset() is not None for t in times)
