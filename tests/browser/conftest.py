"""Playwright + the system Chromium, headless (CI runs as root without a display).

Without Chromium the browser tests are skipped, with the reason in pytest's summary, so the
README's test command passes on a machine that has no browser. CI installs Chromium and sets
TP_REQUIRE_BROWSER=1: then a missing browser fails these tests instead (as TP_REQUIRE_POSTGRES
does for the PostgreSQL tests). TP_CHROMIUM names another Chromium binary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TP_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
HERE = Path(__file__).resolve().parent


def _missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"needs Chromium at {CHROMIUM} (install it, or set TP_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs Playwright (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A skip marker, not a skip inside a fixture: nothing (live server, database) is set up.
    reason = _missing_browser()
    if reason is None or os.environ.get("TP_REQUIRE_BROWSER"):
        return
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def browser(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium, started after the test database and live server exist.

    Playwright's sync API keeps an asyncio loop running in this thread, and Django refuses ORM
    calls while one runs; the test body is plain synchronous code, so allow them for as long as
    the browser lives (and set up the database before it starts).
    """
    reason = _missing_browser()
    if reason is not None:  # only with TP_REQUIRE_BROWSER set (otherwise skipped above)
        pytest.fail(f"TP_REQUIRE_BROWSER is set but this test {reason}")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page: Any) -> Any:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shot(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot
