"""A real headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, for page tests.

``scripts/test.sh`` installs Debian's chromium when it is missing; Playwright never downloads a
browser. Screenshots go to ``test-output/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Debian's chromium is not installed; scripts/test.sh installs it")


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A fresh page in a fresh headless Chromium."""
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page
        finally:
            browser.close()
