"""The OpenAPI 3.1 document of the staff API, generated from the route table.

The request and response schemas are the pydantic models that validate the
requests (kiosk/signalling/schemas.py); every error response is documented
with the reason codes that can cause it (kiosk/domain/reasons.py). Nothing is
written by hand, so the document cannot drift from the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from kiosk.domain.access import PERMISSIONS
from kiosk.signalling.api.base import (
    API_PREFIX,
    MAX_ID_LENGTH,
    REFUSAL_DEFAULT_STATUS,
    STATE_CHANGING,
    STATUS,
    Operation,
)
from kiosk.signalling.auth import CSRF_HEADER, SESSION_COOKIE
from kiosk.signalling.schemas import ErrorResponse

REF = "#/components/schemas/{model}"

_STATUS_TEXT = {
    400: "The request is not valid (field named in the message).",
    401: "Not logged in, or the token is not valid.",
    403: "The role may not do this, or the CSRF token is missing or wrong.",
    404: "There is no such thing.",
    409: "Refused by the current state (status, limits, calendar, capacity, quotas).",
    413: "The request body is too large.",
    422: "Refused by a rule about the request itself.",
    429: "Too many failed logins; wait and try again.",
}


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` query parameters are simply optional: no JSON null in a query string."""
    options = schema.get("anyOf")
    if options is not None:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(rest[0])
            return merged
    return schema


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _strip_null({k: v for k, v in prop.items() if k != "title"})
        prop.pop("default", None)
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def openapi_document(
    operations: Sequence[Operation], title: str = "kiosk staff API"
) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        wanted.append((op.response, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, defs = models_json_schema(unique, ref_template=REF)
    error_ref = refs[(ErrorResponse, "serialization")]

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag] if op.tag else [],
            "responses": {
                str(op.status): {
                    "description": "Done.",
                    "content": {op.media_type: {"schema": refs[(op.response, "serialization")]}},
                }
            },
        }
        description = op.description
        if op.action is not None:
            roles = ", ".join(r.value for r, allowed in PERMISSIONS.items() if op.action in allowed)
            description = f"{description}\n\nRoles: {roles}.".strip()
        if description:
            item["description"] = description
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
            }
            for name in op.path_params
        ]
        if op.query is not None:
            parameters.extend(_query_parameters(op.query))
        if op.action is not None and op.method in STATE_CHANGING:
            parameters.append(
                {
                    "name": CSRF_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Required with a session cookie; not with a bearer token.",
                    "schema": {"type": "string", "maxLength": 256},
                }
            )
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.action is None:
            item["security"] = []
        for status, reasons in op.error_statuses().items():
            codes = ", ".join(f"`{r.value}`" for r in reasons)
            text = _STATUS_TEXT.get(status, "Refused.")
            item["responses"][str(status)] = {
                "description": f"{text} Codes: {codes}." if codes else text,
                "content": {"application/json": {"schema": error_ref}},
            }
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = item

    paths[API_PREFIX + "/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    refusal_statuses = sorted({*STATUS.values(), REFUSAL_DEFAULT_STATUS})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": (
                'Errors are `{"error": {"code", "message"}}`; `code` is one of the '
                "`Reason` values. A policy refusal is 422 when the request contradicts a rule "
                "whatever the state, and 409 when the current state refuses it. "
                f"Statuses used: {refusal_statuses}."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
