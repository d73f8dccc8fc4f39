"""Waiting on a page's state from the test's side.

Playwright's ``wait_for_function`` polls inside the page with ``eval``, which the pages'
Content Security Policy forbids (``script-src 'self'``): it passes only when the state is
already there at its first look, and fails on a busy machine. ``page.evaluate`` is not
bound by the page's CSP, so the tests poll with it.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

from tests.harness import wait_until


async def until_true(
    page: Page, js: str, what: str, timeout: float = 20, arg: Any = None
) -> None:
    """Poll ``js`` (an expression, or a function of ``arg``) in the page until it is true."""

    async def check() -> bool:
        return bool(await page.evaluate(js, arg))

    await wait_until(check, timeout=timeout, interval=0.2, what=what)
