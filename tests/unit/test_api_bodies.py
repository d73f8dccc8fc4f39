"""API response bodies are validated from the store's records: every field has its source.

A response model names no field its record lacks, so ``model_validate(record)``
cannot fail at run time for want of one, and a call is described once: the
API's call is the stored call, field for field.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from kiosk.domain.model import (
    Appeal,
    Booking,
    Closure,
    Decision,
    Facility,
    FacilitySettings,
    Inmate,
    PoliceClearance,
    Restriction,
)
from kiosk.signalling.schemas import bookings, calls, contacts, devices, facility, inmates, staff
from kiosk.store.calls import CallRecord
from kiosk.store.contacts import BreachRecord, ContactRecord
from kiosk.store.devices import DeviceRecord, TamperEvent
from kiosk.store.staff import StaffRecord

PAIRS: list[tuple[type[BaseModel], type]] = [
    (calls.CallOut, CallRecord),
    (devices.DeviceOut, DeviceRecord),
    (devices.TamperEventOut, TamperEvent),
    (inmates.InmateOut, Inmate),
    (contacts.ContactOut, ContactRecord),
    (contacts.DecisionOut, Decision),
    (contacts.BreachOut, BreachRecord),
    (contacts.AppealOut, Appeal),
    (bookings.BookingOut, Booking),
    (bookings.PoliceClearanceOut, PoliceClearance),
    (facility.ClosureOut, Closure),
    (facility.RestrictionOut, Restriction),
    (staff.StaffAccount, StaffRecord),
]


def attributes(record: type) -> set[str]:
    """A record's fields and properties: what ``from_attributes`` can read."""
    fields = {f.name for f in dataclasses.fields(record)}
    properties = {n for n in dir(record) if isinstance(getattr(record, n, None), property)}
    return fields | properties


@pytest.mark.parametrize("model, record", PAIRS, ids=lambda x: x.__name__)
def test_every_response_field_is_read_from_its_record(
    model: type[BaseModel], record: type
) -> None:
    assert set(model.model_fields) <= attributes(record)


def test_the_api_call_is_the_stored_call_field_for_field() -> None:
    assert list(calls.CallOut.model_fields) == [f.name for f in dataclasses.fields(CallRecord)]


def test_the_facility_body_reads_its_settings_from_the_facility() -> None:
    closure = Closure("c1", datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 1, 2, tzinfo=UTC))
    settings = FacilitySettings(contact_limit=3, rooms=("A",), closures=(closure,))
    body = facility.FacilityOut.model_validate(Facility("f1", "Bastøy", settings=settings))
    assert (body.id, body.name, body.contact_limit, body.rooms) == ("f1", "Bastøy", 3, ["A"])
    assert [c.id for c in body.closures] == ["c1"]
    settings_fields = {f.name for f in dataclasses.fields(FacilitySettings)}
    # Beside the settings: the tablets registered and active (R15's capacity, issue 16).
    derived = {"id", "name", "timezone", "tablets_in_service"}
    assert set(facility.FacilityOut.model_fields) == derived | settings_fields
