"""Request and response bodies of the staff API: the one definition, a module per resource.

The same models validate every request and generate the OpenAPI document
(kiosk/signalling/openapi.py), so the document cannot drift from what the
server accepts. Requests are strict: unknown fields, wrong JSON types and
oversize strings are refused with ``invalid_request`` naming the field.
Responses are validated from the store's typed records by attribute
(``Model.model_validate(record)``), so no mapping is written by hand.

What every resource shares is in :mod:`.base` and named here too.
"""

from __future__ import annotations

from kiosk.signalling.schemas.base import Empty, ErrorBody, ErrorResponse, Query, Request, Response

__all__ = ["Empty", "ErrorBody", "ErrorResponse", "Query", "Request", "Response"]
