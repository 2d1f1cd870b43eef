"""Headless Chromium for the dashboard's tests: Debian's ``/usr/bin/chromium`` driven by
Playwright (``playwright install`` cannot download browsers here), a fresh profile each time,
every console error and page error kept (a CSP violation is one), screenshots kept in
``.test-artifacts/ui/`` (gitignored) as the tests' artifacts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import ROOT, require_or_skip

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = ROOT / ".test-artifacts" / "ui"


class Watched:
    """A page whose console errors and uncaught errors are kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def clean(self) -> list[str]:
        """The errors so far, except the answers the test asked to be refused (htmx logs an
        error status as a failed response; the browser logs a 4xx load)."""
        return [
            e
            for e in self.errors
            if "Failed to load resource: the server responded with a status of 4" not in e
            and "Response Status Error Code 4" not in e
        ]

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # caret="initial": hiding the caret leaves an empty style="" on the page's inputs,
        # which htmx then settles onto the swapped-in ones (a CSP violation of the test's own)
        await self.page.screenshot(path=str(path), full_page=True, caret="initial")
        return path


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[BrowserContext]:
    """A browser with a fresh profile in ``profile`` (skipped, or failed under CI, without
    Chromium or Playwright)."""
    require_or_skip(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        require_or_skip(False, "playwright is not installed: pip install -e '.[dev]'")
        raise
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 860},
        )
        try:
            yield context
        finally:
            await context.close()
