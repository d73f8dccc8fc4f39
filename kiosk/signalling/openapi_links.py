"""OpenAPI links: from each operation that makes or changes a thing to those that use it.

Derived from the operation table by the API's own naming, so a new operation
is linked without a line written for it: an operation answering with a thing
(``ContactOut`` is a *contact*; otherwise the last word of its path, made
singular: ``POST /calls/{call_id}/monitors`` makes a *monitor*) links to every
operation that names that thing — a path parameter ``contact_id``, or a body
field ``contact_id``. Other path parameters and ``*_id`` body fields of the
target are filled from the answer's fields of the same name, or from the
request's own path. A link is made only when it carries the thing itself
and names every path parameter of its target.

A client (or schemathesis' stateful phase) can follow them to build a chain:
inmate -> contact -> decision -> booking -> call -> monitor, a closure and
its removal, and so on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from kiosk.signalling.api.base import STATE_CHANGING, Operation


def thing_of(op: Operation) -> str:
    """What an operation's answer is: ``InmateOut`` -> inmate, ``POST /staff`` -> staff."""
    name = op.response.__name__
    if name.endswith("Out"):
        return _snake(name.removesuffix("Out"))
    last = [seg for seg in op.path.split("/") if seg and not seg.startswith("{")][-1]
    return last[:-1] if last.endswith("s") else last


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _id_pointer(response: type[BaseModel], thing: str) -> str | None:
    """Where the answer gives the thing's id: ``/id``, ``/<thing>/id`` or ``/<thing>_id``."""
    fields = response.model_fields
    if "id" in fields:
        return "/id"
    nested = fields.get(thing)
    annotation = nested.annotation if nested is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if "id" in annotation.model_fields:
            return f"/{thing}/id"
    if f"{thing}_id" in fields:
        return f"/{thing}_id"
    return None


def _value(source: Operation, name: str, thing: str, id_pointer: str) -> str | None:
    if name == f"{thing}_id":
        return f"$response.body#{id_pointer}"
    if name in source.response.model_fields:
        return f"$response.body#/{name}"
    if name in source.path_params:
        return f"$request.path.{name}"
    return None


def _link(source: Operation, target: Operation, thing: str, id_pointer: str) -> dict[str, Any]:
    """The link from ``source``'s answer to ``target``, or {} when it would not carry the thing."""
    key = f"{thing}_id"
    body_fields = target.body.model_fields if target.body is not None else {}
    if key not in target.path_params and key not in body_fields:
        return {}
    link: dict[str, Any] = {"operationId": target.operation_id}
    parameters = {
        name: value
        for name in target.path_params
        if (value := _value(source, name, thing, id_pointer)) is not None
    }
    if len(parameters) < len(target.path_params):
        return {}  # a link that cannot name its target's path would be a guess
    if parameters:
        link["parameters"] = parameters
    body = {
        name: value
        for name in body_fields
        if name.endswith("_id") and (value := _value(source, name, thing, id_pointer)) is not None
    }
    if body:
        link["requestBody"] = body
    link["description"] = f"The {thing.replace('_', ' ')} in the answer, as `{key}`."
    return link


def links(source: Operation, operations: Sequence[Operation]) -> dict[str, dict[str, Any]]:
    """The links of ``source``'s success answer, named after their target operations."""
    if source.method not in STATE_CHANGING or source.media_type != "application/json":
        return {}
    thing = thing_of(source)
    id_pointer = _id_pointer(source.response, thing)
    if id_pointer is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for target in operations:
        if target is source:
            continue
        link = _link(source, target, thing, id_pointer)
        if link:
            out[target.operation_id] = link
    return out
