"""How fast one client may guess staff passwords (issue 12): a delay, never a lockout.

Two limits, both on the client's own failures, so that a stranger cannot
keep a staff member out:

- **per account and client** — after ``free_failures`` wrong passwords in a
  row the client waits before its next try for that account, twice as long
  after each further failure (1 s, 2 s, 4 s, … up to ``max_delay``). Once the
  wait has passed, the right password is let in as always. Another client,
  that has not itself been failing, is never slowed down: a guesser can only
  delay himself (``login_delayed``).
- **per client across accounts** — at most ``address_budget`` failures in
  ``budget_window`` from one client whatever the usernames, so that one
  password tried on many accounts (spraying) is stopped too
  (``login_budget_exhausted``).

A client is its address as the web listener believes it (behind a trusted
proxy, the address the proxy saw; ``kiosk/signalling/proxies.py``); an IPv6
client is its /64, which one machine is commonly given whole.

An attempt counts from the moment it is let through until its outcome is
known (``failed``, ``succeeded`` or ``abandoned``), so that many attempts
sent at once are no faster than one after the other. Refused attempts are
counted too (``refused``), for the audit entry of the next checked one. The
state is in memory, bounded, and pure: every call takes ``now``.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, deque
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from kiosk.domain.reasons import Reason

FREE_FAILURES = 3
FIRST_DELAY = timedelta(seconds=1)
MAX_DELAY = timedelta(minutes=5)
# A streak of failures is forgotten this long after its last failure.
FORGET_AFTER = timedelta(hours=1)
ADDRESS_BUDGET = 20
BUDGET_WINDOW = timedelta(minutes=15)
MAX_ENTRIES = 100_000  # bounds memory under a spray of usernames and addresses

K = TypeVar("K")
V = TypeVar("V")


def client_of(address: str) -> str:
    """The unit a limit counts: an IPv4 address, an IPv6 /64, or the text as given."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: the reason code and when to try again."""

    reason: Reason
    retry_after: timedelta


@dataclass(frozen=True, slots=True)
class Attempt:
    """A try that was let through; its outcome must be reported exactly once."""

    account: str
    client: str
    refused_before: int  # attempts of this account and client refused since the last record

    @property
    def key(self) -> tuple[str, str]:
        return (self.account, self.client)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a wrong password left behind: the counts the audit entry records."""

    failures: int  # this account from this client, in the current streak
    client_failures: int  # this client, any account, in the budget window
    delay: timedelta  # the wait now imposed on this account and client
    budget_exhausted: bool  # this client may try no account until the window moves on


@dataclass(slots=True)
class _Streak:
    failures: int
    last: datetime


def delay_after(failures: int, first: timedelta = FIRST_DELAY) -> timedelta:
    """The wait after ``failures`` wrong passwords in a row."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    steps = min(failures - FREE_FAILURES, 20)  # 2**20 s is far past MAX_DELAY
    delay: timedelta = first * (1 << steps)
    return min(delay, MAX_DELAY)


@dataclass
class LoginThrottle:
    first_delay: timedelta = FIRST_DELAY
    address_budget: int = ADDRESS_BUDGET
    budget_window: timedelta = BUDGET_WINDOW
    _streaks: dict[tuple[str, str], _Streak] = field(default_factory=dict)
    _client_failures: dict[str, deque[datetime]] = field(default_factory=dict)
    _in_flight: Counter[tuple[str, str]] = field(default_factory=Counter)
    _client_in_flight: Counter[str] = field(default_factory=Counter)
    _refused: Counter[tuple[str, str]] = field(default_factory=Counter)

    def attempt(self, account: str, address: str, now: datetime) -> Attempt | Wait:
        """May this client try a password for ``account`` now?"""
        client = client_of(address)
        key = (account, client)
        wait = self._budget_wait(client, now) or self._streak_wait(key, now)
        if wait is not None:
            self._refused[key] += 1
            _bound(self._refused)
            return wait
        self._in_flight[key] += 1
        self._client_in_flight[client] += 1
        return Attempt(account, client, self._refused.pop(key, 0))

    def failed(self, attempt: Attempt, now: datetime) -> Failure:
        self._settle(attempt)
        streak = self._streak(attempt.key, now)
        if streak is None:
            streak = _Streak(0, now)
        streak.failures += 1
        streak.last = now
        self._streaks.pop(attempt.key, None)
        self._streaks[attempt.key] = streak  # newest last: the oldest goes first
        _bound(self._streaks)
        times = self._recent(attempt.client, now)
        times.append(now)
        self._client_failures.pop(attempt.client, None)
        self._client_failures[attempt.client] = times
        _bound(self._client_failures)
        return Failure(
            failures=streak.failures,
            client_failures=len(times),
            delay=delay_after(streak.failures, self.first_delay),
            budget_exhausted=len(times) >= self.address_budget,
        )

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: this account's streak from this client is over. The
        client's failures across accounts stay (a sprayer may own one account)."""
        self._settle(attempt)
        self._streaks.pop(attempt.key, None)

    def abandoned(self, attempt: Attempt) -> None:
        """The attempt ended without an answer (an error): it counts for nothing."""
        self._settle(attempt)

    def _settle(self, attempt: Attempt) -> None:
        _release(self._in_flight, attempt.key)
        _release(self._client_in_flight, attempt.client)

    def _streak(self, key: tuple[str, str], now: datetime) -> _Streak | None:
        streak = self._streaks.get(key)
        if streak is not None and now - streak.last >= FORGET_AFTER:
            del self._streaks[key]
            return None
        return streak

    def _streak_wait(self, key: tuple[str, str], now: datetime) -> Wait | None:
        streak = self._streak(key, now)
        failures = (streak.failures if streak else 0) + self._in_flight[key]
        allowed_at = (streak.last if streak else now) + delay_after(failures, self.first_delay)
        if allowed_at <= now:
            return None
        return Wait(Reason.LOGIN_DELAYED, allowed_at - now)

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        times = self._client_failures.get(client, deque())
        while times and times[0] <= now - self.budget_window:
            times.popleft()
        if not times:
            self._client_failures.pop(client, None)
        return times

    def _budget_wait(self, client: str, now: datetime) -> Wait | None:
        times = self._recent(client, now)
        if len(times) + self._client_in_flight[client] < self.address_budget:
            return None
        # Room again when enough of the oldest failures leave the window.
        excess = len(times) + self._client_in_flight[client] - self.address_budget
        if excess >= len(times):
            return Wait(Reason.LOGIN_BUDGET_EXHAUSTED, self.first_delay)
        return Wait(Reason.LOGIN_BUDGET_EXHAUSTED, times[excess] + self.budget_window - now)


def _release(counter: Counter[K], key: K) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _bound(table: MutableMapping[K, V]) -> None:
    while len(table) > MAX_ENTRIES:
        del table[next(iter(table))]
