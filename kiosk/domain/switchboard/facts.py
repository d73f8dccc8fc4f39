"""The facts the store holds about a call, loaded by the runner just before an event.

The switchboard never reads the store: the runner's facts loader gathers
these and passes them in the event. They may be a moment old when the event
is handled; the switchboard corrects what it knows better (a booking a call
has just used, see ``Switchboard.spent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kiosk.domain.model import Booking, Contact
from kiosk.domain.policy import CallFacts

__all__ = ["CallFacts", "InviteFacts"]


@dataclass(frozen=True, slots=True)
class InviteFacts:
    """A visitor's invite, with its booking and contact."""

    invite_id: str
    booking: Booking
    contact: Contact
    valid_from: datetime
    valid_until: datetime

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until
