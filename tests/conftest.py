"""Shared test set-up.

``KIOSK_STRICT=1`` (set by ``.ci/run``) turns every skipped test into a
failure: in CI a skip would hide a broken promise, such as a missing tool.

Hypothesis profiles, registered here and nowhere else: ``dev`` (the default,
for the edit-test loop) runs few examples; ``ci`` (``.ci/run`` sets
``HYPOTHESIS_PROFILE=ci``; ``--hypothesis-profile ci`` does the same) runs
many, derandomized so that a run is repeatable and a red build is the code's
fault, not the seed's. Neither has a deadline: the machine that runs the suite
may be busy, and speed is measured in bench/, never asserted in a test.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    max_examples=300,
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def examples(at_most: int) -> int:
    """The profile's example count, capped for a test whose every example is costly
    (a round trip to a live server or a database)."""
    return min(at_most, settings.default.max_examples)

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
