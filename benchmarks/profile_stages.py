"""CPU time per stage of one check, measured with ``time.thread_time`` on the standard workload.

Caveats first: runs the stages in one thread, in the order the service runs them, on distinct 1024x1024
headshots (see :mod:`benchmarks.workload`); thread CPU time is robust to other jobs on the machine, wall
time is not. HTTP, multipart parsing and SQLite are not included (``bench_checks`` measures the whole).

    .venv/bin/python -m benchmarks.profile_stages --n 40 [--out benchmarks/results/stages.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.workload import articles, distinct_headshots
from detectors.contract import Device, ImageItem, TextItem
from detectors.face import build_face_detector
from detectors.text import build_text_detector
from service import headshots as evidence
from service.config import Settings
from service.inputs import decode_image


def timed(stages: dict[str, list[float]], name: str, work: Callable[[], Any]) -> Any:
    started = time.thread_time()
    result = work()
    stages[name].append(1000 * (time.thread_time() - started))
    return result


def profile(n: int, settings: Settings) -> dict[str, Any]:
    """Median and mean thread-CPU milliseconds per stage over ``n`` checks."""
    face = build_face_detector(settings.weights_dir / "face", embed_faces=settings.face_embeddings)
    face.load(Device(intra_op_threads=settings.intra_op_threads))
    text = build_text_detector(settings.weights_dir / "text")
    text.load(Device(intra_op_threads=settings.intra_op_threads))
    texts, images = articles(n), distinct_headshots(n + 2)
    min_side = getattr(settings, "headshot_decode_min_side", 0)
    stages: dict[str, list[float]] = defaultdict(list)
    for i in range(-2, n):  # two warm-up rounds, not recorded
        record: dict[str, list[float]] = stages if i >= 0 else defaultdict(list)
        data, article = images[i + 2], texts[max(i, 0)]
        image = timed(record, "decode", lambda d=data: decode_image(d, settings, min_side))  # type: ignore[misc]
        timed(record, "provenance", lambda im=image: evidence.provenance(im.original, im.full_bgr))  # type: ignore[misc]
        timed(record, "phash", lambda im=image: evidence.phash(im.pixels))  # type: ignore[misc]
        prepared = timed(record, "face_preprocess", lambda im=image: face.preprocess(  # type: ignore[misc]
            ImageItem(pixels=im.pixels, original=im.original, submitted_size=im.submitted_size)))
        timed(record, "face_forward_post", lambda p=prepared: face.postprocess([p], face.forward([p])))  # type: ignore[misc]
        item = timed(record, "text_preprocess", lambda a=article: text.preprocess(TextItem(text=a)))  # type: ignore[misc]
        timed(record, "text_forward_post", lambda t=item: text.postprocess([t], text.forward([t])))  # type: ignore[misc]
    summary = {name: {"median_ms": statistics.median(v), "mean_ms": statistics.fmean(v)} for name, v in stages.items()}
    total = sum(s["mean_ms"] for s in summary.values())
    return {"checks": n, "face_embeddings": settings.face_embeddings, "stages": summary, "total_mean_ms": total,
            "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = profile(args.n, Settings())
    for name, stats in result["stages"].items():
        print(f"{name:<20} median {stats['median_ms']:7.1f} ms  mean {stats['mean_ms']:7.1f} ms")
    print(f"{'total (mean)':<20} {result['total_mean_ms']:7.1f} ms   load average {result['load_average']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
