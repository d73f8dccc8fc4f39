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
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import (
    API_PREFIX,
    MAX_ID_LENGTH,
    REFUSAL_DEFAULT_STATUS,
    STATE_CHANGING,
    STATUS,
    Operation,
)
from kiosk.signalling.auth import CSRF_HEADER, SESSION_COOKIE
from kiosk.signalling.openapi_links import links
from kiosk.signalling.schemas import ErrorResponse, Request

REF = "#/components/schemas/{model}"
# Either a bearer token, or the session cookie — with its CSRF token on a state change.
READ_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
STATE_CHANGING_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": [], "csrf": []}]

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


# Text never holds NUL: the server refuses it (PostgreSQL cannot store it).
NO_NUL = r"^[^\x00]*$"


def _no_nul(schema: Any) -> Any:
    """Every free text of a request schema says it holds no NUL (a pattern of its own
    keeps what it has: those patterns already leave NUL out)."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and not schema.keys() & {"pattern", "enum", "const"}:
            schema["pattern"] = NO_NUL
        for value in schema.values():
            _no_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _no_nul(value)
    return schema


def _requests(model: type[BaseModel] = Request) -> set[str]:
    return {model.__name__}.union(*(_requests(sub) for sub in model.__subclasses__()))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _strip_null({k: v for k, v in prop.items() if k != "title"})
        prop.pop("default", None)
        params.append(
            {"name": name, "in": "query", "required": name in required, "schema": _no_nul(prop)}
        )
    return params


def _error_response(status: int, reasons: Sequence[Reason], error_ref: dict[str, str]) -> Any:
    """An error status of one operation: the error body, its ``code`` one of ``reasons``."""
    text = _STATUS_TEXT.get(status, "Refused.")
    if not reasons:
        return {"description": text, "content": {"application/json": {"schema": error_ref}}}
    codes = ", ".join(f"`{r.value}`" for r in reasons)
    only = {"properties": {"error": {"properties": {"code": {"enum": [r.value for r in reasons]}}}}}
    return {
        "description": f"{text} Codes: {codes}.",
        "content": {"application/json": {"schema": {"allOf": [error_ref, only]}}},
        "x-reasons": [r.value for r in reasons],
    }


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
    requests = _requests()
    for name, schema in defs.get("$defs", {}).items():
        if name in requests:
            _no_nul(schema)
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
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.action is None:
            item["security"] = []
        elif op.method in STATE_CHANGING:
            item["security"] = STATE_CHANGING_SECURITY
        for status, reasons in op.error_statuses().items():
            item["responses"][str(status)] = _error_response(status, reasons, error_ref)
        found = links(op, operations)
        if found:
            item["responses"][str(op.status)]["links"] = found
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
                "Text never holds NUL (U+0000): it is refused `invalid_request`. "
                f"Statuses used: {refusal_statuses}."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `kiosk admin token create`; no CSRF token.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "The console's session, set by `POST /login`.",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": CSRF_HEADER,
                    "description": (
                        "The `csrf_token` `POST /login` returned; sent with the session "
                        "cookie on every state change."
                    ),
                },
            },
        },
        "security": READ_SECURITY,
    }
