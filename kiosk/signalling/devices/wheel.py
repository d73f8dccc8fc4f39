"""A hashed timer wheel: one timer for all the links instead of one per link.

Ten thousand tablets each with its own receive timeout means ten thousand
timers re-armed on every frame. Here a link is filed under the tick of the
time it is due; the listener wakes once a tick and takes what is due. Filing
is lazy: a frame from the tablet only moves ``Link.heard`` forward, and when
the link's old tick comes the listener asks the link when it is really due
and files it again (a link is re-filed about once per silence limit, not
once per frame). Pure: times are numbers the caller passes in.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class TimerWheel(Generic[T]):
    """Items filed by due time, taken out a tick at a time."""

    def __init__(self, tick: float, now: float) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._slots: dict[int, set[T]] = {}
        self._done = math.floor(now / tick)  # every slot up to this one has been taken

    def __len__(self) -> int:
        return sum(len(s) for s in self._slots.values())

    def add(self, item: T, at: float) -> None:
        """File ``item`` to be taken at the first tick at or after ``at``."""
        slot = max(math.ceil(at / self.tick), self._done + 1)
        self._slots.setdefault(slot, set()).add(item)

    def due(self, now: float) -> list[T]:
        """Every item filed at or before ``now``, each once, and out of the wheel."""
        upto = math.floor(now / self.tick)
        out: list[T] = []
        if upto <= self._done:
            return out
        if upto - self._done <= len(self._slots):
            for slot in range(self._done + 1, upto + 1):
                bucket = self._slots.pop(slot, None)
                if bucket:
                    out.extend(bucket)
        else:  # a long pause (a suspended machine): fewer slots than ticks skipped
            for slot in sorted(s for s in self._slots if s <= upto):
                out.extend(self._slots.pop(slot))
        self._done = upto
        return list(dict.fromkeys(out))
