"""SIGKILL in the middle of a WXR audit, then the same command again: every article exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from service.config import Settings
from service.store import Store
from service.store.audit_models import AuditItemRow
from service.store.models import CheckRow
from tests.audit_helpers import articles, read_jsonl, write_wxr

REPO = Path(__file__).resolve().parents[1]


def _count(store: Store, query: object) -> int:
    try:
        with store.session() as session:
            return int(session.scalar(query) or 0)  # type: ignore[call-overload]
    except Exception:  # the tables may not exist yet while the worker starts
        return 0


def _worker(settings: Settings, archive: Path, out: Path, delay_s: float, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "tests.audit_worker", settings.database_url, str(archive),
                                 str(out), str(delay_s)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=fh)


def test_sigkill_mid_audit_then_rerun_gives_each_article_once(settings: Settings, tmp_path: Path) -> None:
    rows = articles(16)
    archive = write_wxr(tmp_path / "export.xml", rows)
    out = tmp_path / "out"
    store = Store(settings.database_url, "x")
    items = select(func.count()).select_from(AuditItemRow)
    log = tmp_path / "worker.log"
    proc = _worker(settings, archive, out, 0.1, log)
    deadline = time.monotonic() + 60
    while _count(store, items) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, log.read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _count(store, items)
    assert 4 <= killed_at < 16
    assert not (out / "reports.jsonl").exists()

    rerun = _worker(settings, archive, out, 0.0, log)
    assert rerun.wait(timeout=60) == 0, log.read_text()
    ids = [r["id"] for r in read_jsonl(out / "reports.jsonl")]
    assert ids == [r["id"] for r in rows]
    assert Counter(ids).most_common(1)[0][1] == 1
    assert _count(store, select(func.count()).select_from(CheckRow).where(CheckRow.source == "audit")) == 16
    store.close()
