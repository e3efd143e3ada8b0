"""The audit's HTML report renders in a real headless Chromium: four charts, the author table, no network."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from service.audit import AuditOptions, run_audit
from service.config import Settings
from tests.audit_helpers import articles, write_wxr
from tests.browser import OUTPUT
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes

pytestmark = pytest.mark.slow


def test_report_renders_charts_and_author_table(settings: Settings, tmp_path: Path, browser_page: Any) -> None:
    folder = tmp_path / "heads"
    folder.mkdir()
    for name in ("bo-bot", "cy-bot"):
        (folder / f"{name}.jpg").write_bytes(jpeg_bytes((225, 60, 60)))
    archive = write_wxr(tmp_path / "export.xml", articles(12))
    audit = run_audit(settings, archive, tmp_path / "out", options=AuditOptions(headshots=folder),
                      detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, audit).result()
    requests: list[str] = []
    browser_page.on("request", lambda request: requests.append(request.url))
    browser_page.goto((tmp_path / "out" / "report.html").as_uri())
    charts = browser_page.locator("svg.chart")
    assert charts.count() == 4
    for i in range(4):
        box = charts.nth(i).bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert charts.nth(i).locator("rect.bar").count() >= 2
    rows = browser_page.locator("#authors tbody tr")
    assert rows.count() == 3
    assert browser_page.locator("#authors tr.flagged").count() == 2
    assert "headshot_reused" in browser_page.locator("#authors").inner_text()
    assert all(url.startswith("file://") for url in requests), requests
    OUTPUT.mkdir(exist_ok=True)
    browser_page.screenshot(path=str(OUTPUT / "audit-report.png"), full_page=True)
