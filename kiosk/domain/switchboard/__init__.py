"""The switchboard: the set of live calls, pure (events and ``now`` in, effects out).

:class:`Switchboard` is the way in; :mod:`.events` and :mod:`.effects` are
its vocabulary, :mod:`.facts` what the store tells it.
"""

from kiosk.domain.switchboard.board import Switchboard
from kiosk.domain.switchboard.calls import LiveCall, Monitor, Seat
from kiosk.domain.switchboard.facts import CallFacts, InviteFacts
from kiosk.domain.switchboard.state import Outcome, Rules

__all__ = [
    "CallFacts",
    "InviteFacts",
    "LiveCall",
    "Monitor",
    "Outcome",
    "Rules",
    "Seat",
    "Switchboard",
]
