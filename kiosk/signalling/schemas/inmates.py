"""Inmates.
"""

from __future__ import annotations

from kiosk.signalling.schemas.base import Name, Query, Request, Response


class InmateCreate(Request):
    name: Name
    remand: bool = False
    minor: bool = False


class InmateUpdate(Request):
    name: Name | None = None
    remand: bool | None = None
    minor: bool | None = None
    active: bool | None = None


class InmateOut(Response):
    id: str
    name: str
    remand: bool
    minor: bool
    active: bool


class InmateList(Response):
    items: list[InmateOut]


class InmateListQuery(Query):
    active: bool | None = None
