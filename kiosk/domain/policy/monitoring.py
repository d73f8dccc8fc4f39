"""Monitoring and routing (R6, R13).

Monitoring (R13): privileged first, whatever the level; then court or
uncontrolled -> ``not_controlled``; then the kinds asked for must be a
non-empty subset of what the level allows (``media_kind_forbidden``).
"""


from __future__ import annotations

from kiosk.domain.model import (
    Category,
    ControlLevel,
    MediaKind,
    Route,
)
from kiosk.domain.policy.verdicts import ALLOW, Verdict, deny
from kiosk.domain.reasons import Reason

# --- Monitoring and routing (R6, R13) ---------------------------------------


def attach_monitor(
    category: Category, control: ControlLevel, kinds: frozenset[MediaKind]
) -> Verdict:
    """May a staff monitor receive ``kinds`` of this call? (R6, R13)"""
    # R13: first and whatever the recorded level says: never on a privileged call.
    if category.privileged:
        return deny(Reason.PRIVILEGED_NO_MONITOR)
    if not category.may_be_controlled or not control.controlled:
        return deny(Reason.NOT_CONTROLLED)
    if not kinds or not kinds <= control.media_kinds:
        return deny(Reason.MEDIA_KIND_FORBIDDEN)
    return ALLOW


def route_for(category: Category, control: ControlLevel) -> Route:
    """Where the media flows: only controlled calls pass the bridge (R13, ARCHITECTURE.md)."""
    if category.privileged or not category.may_be_controlled or not control.controlled:
        return Route.P2P
    return Route.BRIDGE
