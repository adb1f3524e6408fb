"""Fixtures for the dashboard's browser tests: a headless Chromium (Debian's
``chromium`` package driven by Playwright, which cannot download its own
browsers here) and a place for screenshots."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.cluster.harness import ROOT

ARTIFACTS = ROOT / "test-artifacts" / "web"
"""Screenshots of the dashboard tests (kept after the run; gitignored)."""


def chromium_path() -> str | None:
    """Debian's Chromium, or whatever ``chromium`` is on the PATH."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test (a test's own: no state between tests)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (scripts/check installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """The prefix of this test's screenshots in ``test-artifacts/web/``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    return ARTIFACTS / name
