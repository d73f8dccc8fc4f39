"""The staff API under /api/v1: one module per resource, each with its operation table."""

from __future__ import annotations

from kiosk.signalling.api import (
    audit,
    bookings,
    calls,
    contacts,
    devices,
    facility,
    inmates,
    invites,
    outlook,
    own_password,
    queue,
    session,
    staff,
    transparency,
)
from kiosk.signalling.api.base import Operation

MODULES = (
    session,
    own_password,
    inmates,
    contacts,
    bookings,
    outlook,
    invites,
    calls,
    devices,
    facility,
    staff,
    audit,
    queue,
    transparency,
)


def operations() -> list[Operation]:
    """Every operation of the staff API, in a stable order."""
    return [op for module in MODULES for op in module.table.operations]
