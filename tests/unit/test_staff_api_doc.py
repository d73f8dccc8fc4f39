"""docs/staff-api.md lists the operations as the OpenAPI document says them (issue 17)."""

from __future__ import annotations

from pathlib import Path

from kiosk.signalling.openapi_md import BEGIN, END, current_document, rewrite

PAGE = Path(__file__).parents[2] / "docs" / "staff-api.md"


def test_the_page_lists_the_operations_of_the_document() -> None:
    page = PAGE.read_text()
    assert BEGIN in page and END in page
    assert page == rewrite(page, current_document()), (
        "docs/staff-api.md differs from the OpenAPI document: "
        "python -m kiosk.signalling.openapi_md docs/staff-api.md"
    )


def test_every_operation_and_its_own_codes_are_on_the_page() -> None:
    page = PAGE.read_text()
    doc = current_document()
    for path, item in doc["paths"].items():
        for method in item:
            assert f"`{method.upper()} {path.removeprefix('/api/v1')}`" in page
    assert "422 `privileged_no_control`" in page  # a decision's refusals, by status
