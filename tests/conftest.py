"""Shared test set-up.

``KIOSK_STRICT=1`` (set by ``.ci/run``) turns every skipped test into a
failure: in CI a skip would hide a broken promise, such as a missing tool.
"""

from __future__ import annotations

import os

import pytest

STRICT = os.environ.get("KIOSK_STRICT") == "1"

# The PostgreSQL server every machine of this project has (trust auth).
POSTGRES_URL = os.environ.get(
    "KIOSK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in strict mode (KIOSK_STRICT=1): {reason}"
