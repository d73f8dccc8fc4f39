"""Browser tests: Debian's Chromium driven by Playwright, with fake camera and microphone.

Fixtures:

- ``browser``: a headless Chromium with the flags the project's tests use.
- ``faces``: opens pages in their own contexts, records every request the
  page makes (so a test can prove a page reaches no other host) and every
  Content-Security-Policy violation, saves a screenshot of each screen into
  ``test-artifacts/screens/`` and runs axe-core (from npm, see
  ``tests/e2e/package.json``) on it, failing on any serious or critical
  violation.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.harness import Tablet, World
from tests.loopback import ensure_page_media_address

# Assertions wait for a state up to this long unless they say otherwise (Playwright's own
# 5 s is a log-in's argon2 on a machine that runs a second suite beside this one).
expect.set_options(timeout=15_000)

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "test-artifacts" / "screens"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # The kiosk page's media connection to the agent is on loopback (docs/deploy.md).
    "--allow-loopback-in-peer-connection",
]
BLOCKING = ("serious", "critical")

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
TABLET = {"width": 1280, "height": 800}

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    ensure_page_media_address()  # the agent's end of the kiosk page's media connection
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Face:
    """One page in its own browser context, with what it did on the network."""

    name: str
    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def origins(self) -> set[str]:
        found = set()
        for url in self.requests:
            match = re.match(r"^([a-z]+://[^/]+)", url)
            if match:
                found.add(match.group(1))
        return found


@dataclass
class Faces:
    browser: Browser
    opened: list[Face] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    async def open(
        self, name: str, url: str, viewport: dict[str, int] = DESKTOP, locale: str = "nb-NO",
        init_script: str | None = None,
    ) -> Face:
        if not AXE.exists():
            pytest.skip("axe-core is missing: run `npm ci --prefix tests/e2e`")
        context = await self.browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            locale=locale,
            permissions=["camera", "microphone"],
            device_scale_factor=1,
        )
        # Injected by the browser itself, so the pages' own CSP still applies to them.
        await context.add_init_script(path=str(AXE))
        if init_script is not None:  # a test's own instruments, before the page's scripts
            await context.add_init_script(script=init_script)
        page = await context.new_page()
        face = Face(name, context, page)
        page.on("request", lambda request: face.requests.append(request.url))
        page.on("websocket", lambda ws: face.requests.append(ws.url))

        def console(message: Any) -> None:
            text = message.text
            if "Content Security Policy" in text or "Content-Security-Policy" in text:
                face.csp_violations.append(text)
            elif message.type == "error":
                face.console_errors.append(text)

        page.on("console", console)
        self.opened.append(face)
        await page.goto(url)
        return face

    async def screen(self, face: Face, screen: str) -> Path:
        """Screenshot ``screen`` of ``face`` and check it with axe-core."""
        # The screen's transitions finish (a state, not a time); endless ones (a spinner) go on.
        await face.page.evaluate(
            """() => Promise.all(document.getAnimations()
                .filter((a) => a.effect && a.effect.getComputedTiming().iterations !== Infinity)
                .map((a) => a.finished.catch(() => null)))"""
        )
        SCREENS.mkdir(parents=True, exist_ok=True)
        path = SCREENS / f"{face.name}-{screen}.png"
        await face.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        await check_accessibility(face.page, f"{face.name} {screen}")
        return path

    async def close(self) -> None:
        for face in self.opened:
            await face.context.close()


async def check_accessibility(page: Page, where: str) -> None:
    violations = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
            }));
        }"""
    )
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"axe-core on {where}:\n" + json.dumps(blocking, indent=1)


async def assert_visible_focus(page: Page, presses: int = 1) -> str:
    """Tab to a control: it must show a focus indicator (an outline or a ring)."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
    found: dict[str, str] = await page.evaluate(
        """() => { const e = document.activeElement; const s = getComputedStyle(e);
                   return {tag: e.tagName, label: e.textContent.trim(),
                           outline: s.outlineStyle + " " + s.outlineWidth,
                           shadow: s.boxShadow}; }"""
    )
    assert found["tag"] in ("BUTTON", "A", "INPUT"), found
    visible = not found["outline"].startswith("none") and not found["outline"].endswith(" 0px")
    assert visible or found["shadow"] != "none", f"no visible focus on {found}"
    return found["label"]


@pytest.fixture
async def faces(browser: Browser) -> AsyncIterator[Faces]:
    f = Faces(browser)
    try:
        yield f
    finally:
        await f.close()


# ``world`` (a running server, its admin API, tablets on demand) is tests/conftest.py's.


async def lawyer_booking(world: World, serial: str) -> tuple[dict[str, Any], str, Tablet]:
    """A defence lawyer's booking starting in a few seconds: the booking, the lawyer's
    invite link and the inmate's tablet (privileged: R13)."""
    inmate = await world.inmate("Ola Nordmann")
    lawyer = await world.approved_contact(
        inmate, category="defence_counsel", relation="professional", name="Advokat Berg",
        email="berg@example.org",
    )
    booking = await world.booking(inmate, lawyer, start_in=3, seconds=600)
    url = await world.invite_url(booking["id"])
    return booking, url, await world.tablet(inmate, serial)

