"""Audit benchmark: articles/s for text-only articles through ``run_audit`` (local engine, or Ray).

Builds a JSONL archive of ``--articles`` human Reuters stories from ../shared/datasets (their own
length, ~250 words median), audits it into a temporary folder with a temporary SQLite store, and
prints articles/s for the whole run (reading, checking, checkpointing, roll-up and outputs). With
``--fake-text`` the text detector's forward pass is a formula (measures the audit machinery only);
otherwise the shipped detector from ``weights/text`` runs (the run says so if it is missing). A
benchmark, not a test: it asserts nothing.

    .venv/bin/python -m benchmarks.bench_audit --articles 200 [--engine ray] [--fake-text] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from service.audit import AuditOptions, EngineName, run_audit
from service.config import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def write_archive(path: Path, n: int) -> int:
    words = 0
    with (SHARED / "text" / "reuters21578_news.jsonl").open(encoding="utf-8") as src, path.open("w") as out:
        for i, line in enumerate(src):
            if i == n:
                break
            row = json.loads(line)
            words += len(row["text"].split())
            out.write(json.dumps({"id": row["id"], "byline": f"Staff {i % 7}", "text": row["text"]}) + "\n")
    return words


def fake_text() -> Any:
    from tests.fakes import FakeTextDetector

    return {"text": FakeTextDetector()}


def main() -> None:
    parser = argparse.ArgumentParser(description="articles/s of an audit of text-only articles")
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fake-text", action="store_true", help="fake text forward pass (audit machinery only)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        words = write_archive(folder / "archive.jsonl", args.articles)
        settings = Settings(environment="test", database_url=f"sqlite:///{folder / 'bench.sqlite3'}",
                            bootstrap_api_key=False, max_wait_s=0.01)
        options = AuditOptions(engine=EngineName(args.engine), concurrency=args.concurrency)
        detectors = fake_text if args.fake_text else None
        started = time.perf_counter()
        written = asyncio.run(run_audit(settings, folder / "archive.jsonl", folder / "out", options=options,
                                        detectors=detectors() if detectors and args.engine == "local" else detectors))
        elapsed = time.perf_counter() - started
        rows = [json.loads(line) for line in (folder / "out" / "reports.jsonl").open()]
    text_models = {(r.get("text") or {}).get("model") for r in rows}
    abstained = sum(1 for r in rows if (r.get("text") or {}).get("abstain_reason") == "detector_unavailable")
    result = {"articles": written, "words": words, "seconds": round(elapsed, 3),
              "articles_per_s": round(written / elapsed, 2), "engine": args.engine, "concurrency": args.concurrency,
              "text_models": sorted(m for m in text_models if m), "detector_unavailable": abstained,
              "cpus": os.cpu_count(), "energy_j": sum((r.get("energy") or {}).get("joules") or 0.0 for r in rows)}
    print(json.dumps(result, indent=2))
    if abstained:
        print(f"NOTE: {abstained} articles had no text detector (weights/text missing): this measured the machinery only")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
