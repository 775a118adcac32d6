"""The README's test command on a machine without a browser: the browser tests skip, with the
reason in pytest's summary, unless TP_REQUIRE_BROWSER=1 (CI) makes a missing browser a failure.

Runs pytest on tests/browser in a subprocess with TP_CHROMIUM pointing nowhere, on SQLite in
memory (never the PostgreSQL test database a surrounding run may be using).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NO_BROWSER = "/nonexistent/chromium"


def run_browser_tests(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CACHE_URL", "TP_REQUIRE_POSTGRES", "TP_REQUIRE_BROWSER",
                       "PYTEST_ADDOPTS"}
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/browser", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**clean, "TP_CHROMIUM": NO_BROWSER, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_browser_tests_skip_without_a_browser() -> None:
    result = run_browser_tests()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "passed" not in output and "failed" not in output, output
    skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert skips, output
    assert all(f"needs Chromium at {NO_BROWSER}" in line for line in skips), skips
    assert " skipped" in output.splitlines()[-1], output


@pytest.mark.timeout(300)
def test_browser_tests_fail_without_a_browser_when_required() -> None:
    result = run_browser_tests(TP_REQUIRE_BROWSER="1")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "TP_REQUIRE_BROWSER is set but this test needs Chromium" in output, output
    assert "skipped" not in output.splitlines()[-1], output
