"""docs/staff-api.md's list of operations, written from the OpenAPI document.

The part of the page between the two markers below is this module's output for
the document the server serves; tests/unit/test_staff_api_doc.py fails when the
page and the document differ. Rewrite it with::

    python -m kiosk.signalling.openapi_md docs/staff-api.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- operations: written by `python -m kiosk.signalling.openapi_md` -->"
END = "<!-- end of operations -->"
_COMMON = {"invalid_request", "not_authenticated", "forbidden_role", "csrf_failed",
           "payload_too_large", "not_found"}  # fmt: skip


def _roles(op: dict[str, Any]) -> str:
    description = str(op.get("description", ""))
    marker = "Roles: "
    if marker not in description:
        return "anyone"
    return description.rsplit(marker, 1)[1].rstrip(".")


def _refusals(op: dict[str, Any]) -> str:
    """The statuses and the reason codes particular to this operation."""
    parts = []
    for status, response in op["responses"].items():
        if not status.startswith(("4", "5")):
            continue
        codes = [c for c in response.get("x-reasons", []) if c not in _COMMON]
        parts.append(f"{status} " + ", ".join(f"`{c}`" for c in codes) if codes else status)
    return "; ".join(parts)


def operations_section(doc: dict[str, Any]) -> str:
    """A table per tag: operation, roles, success status, refusals (codes beyond the usual)."""
    by_tag: dict[str, list[str]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            tag = (op.get("tags") or ["document"])[0]
            success = next(s for s in op["responses"] if s.startswith("2"))
            short = path.removeprefix("/api/v1")
            row = (
                f"| `{method.upper()} {short}` | {op['summary']} | {_roles(op)} | {success} "
                f"| {_refusals(op)} |"
            )
            by_tag.setdefault(tag, []).append(row)
    lines = [
        BEGIN,
        "",
        "Every operation, from the OpenAPI document. Refusals list the statuses; the",
        "codes shown are those particular to the operation (every operation may also",
        "give the usual ones: `invalid_request`, `not_authenticated`, `forbidden_role`,",
        "`csrf_failed`, `not_found`, `payload_too_large`, as its statuses say).",
    ]
    for tag, rows in by_tag.items():
        lines += ["", f"### {tag}", "", "| operation | what | roles | success | refusals |",
                  "| --- | --- | --- | --- | --- |", *rows]  # fmt: skip
    lines += ["", END]
    return "\n".join(lines)


def rewrite(page: str, doc: dict[str, Any]) -> str:
    """``page`` with its operations section (between the markers) written from ``doc``."""
    head, rest = page.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    return head + operations_section(doc) + tail


def current_document() -> dict[str, Any]:
    """The document a server with the switchboard serves (kiosk server, kiosk demo)."""
    from kiosk.signalling.api import operations
    from kiosk.signalling.api.live import operations as live_operations
    from kiosk.signalling.calls.runner import CallsHolder
    from kiosk.signalling.openapi import openapi_document

    return openapi_document([*operations(), *live_operations(CallsHolder())])


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.write_text(rewrite(target.read_text(), current_document()))
