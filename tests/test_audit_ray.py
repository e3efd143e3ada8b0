"""The Ray engine on a local Ray (2 CPUs) started here: same verdicts and probabilities as the local engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.audit import AuditOptions, EngineName, run_audit
from service.config import Settings
from tests.audit_helpers import articles, read_jsonl, write_wxr
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes

ray = pytest.importorskip("ray", reason="needs the cluster extra (ray[data])")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
REPO = Path(__file__).resolve().parents[1]


def make_detectors() -> dict[str, Any]:
    """Built inside each Ray actor (the fakes hold a lock, so they are not shipped, they are made there)."""
    return {"text": FakeTextDetector(), "face": FakeFaceDetector()}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 1024 * 1024,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


def _summary(report: dict[str, Any]) -> tuple[Any, ...]:
    text = report.get("text") or {}
    shots = tuple((h["verdict"], h["synthetic_probability"]) for h in report.get("headshots") or [])
    return report["verdict"], text.get("verdict"), text.get("ai_probability"), shots


def test_ray_engine_gives_the_local_engine_results(settings: Settings, tmp_path: Path, local_ray: Any) -> None:
    archive = write_wxr(tmp_path / "export.xml", articles(12))
    folder = tmp_path / "heads"
    folder.mkdir()
    (folder / "bo-bot.jpg").write_bytes(jpeg_bytes((225, 60, 60)))
    (folder / "ann-human.jpg").write_bytes(jpeg_bytes((40, 90, 160)))
    asyncio.run(run_audit(settings, archive, tmp_path / "local", options=AuditOptions(headshots=folder),
                          detectors=make_detectors()))
    ray_settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'ray.sqlite3'}"})
    options = AuditOptions(headshots=folder, engine=EngineName.RAY, ray_actors=1)
    assert asyncio.run(run_audit(ray_settings, archive, tmp_path / "ray", options=options, detectors=make_detectors)) == 12
    local = {r["id"]: _summary(r) for r in read_jsonl(tmp_path / "local" / "reports.jsonl")}
    on_ray = {r["id"]: _summary(r) for r in read_jsonl(tmp_path / "ray" / "reports.jsonl")}
    assert on_ray == local
    assert {v[0] for v in local.values()} == {"likely_human", "likely_ai"}
    assert (tmp_path / "ray" / "authors.csv").read_text() .count("\n") == 4
