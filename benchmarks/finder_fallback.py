"""Where the face finder's fallback goes: which images reach the up-sampled retry, what it finds, what it costs,
and what one extra scan at a shifted working size would find instead. A benchmark, not a test: it asserts nothing.

Caveats first: reproduces ``FaceFinder.find``'s steps by hand (coarse pass, the ``work_side`` scan, the up-sampled
retry) with the shipped settings, without landmarks; "found" means dlib returned a box, not that the box is the
face (each image in the data holds one face). The benchmark headshots go through the service's reduced decode first,
as in the service; the shared images are read as stored. CPU is thread time on one core.

    .venv/bin/python -m benchmarks.finder_fallback [--data ../shared/datasets/faces] [--headshots 60]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workload import distinct_headshots
from detectors.face.data import list_records, read_rgb
from detectors.face.finding import FaceFinder, gray_copy
from service.config import Settings
from service.inputs import decode_image

SHIFTED_SIDES = (410, 491)  # working sizes whose pyramid steps fall between those of the 448 px scan
MIN_FACE_PIXELS = 1024.0  # the shipped manifest's size abstention (32 x 32 px)


def _timed(work: Any) -> tuple[Any, float]:
    started = time.thread_time()
    result = work()
    return result, time.thread_time() - started


def images(data: Path, headshots: int) -> Iterator[tuple[str, np.ndarray]]:
    settings = Settings()
    for upload in distinct_headshots(headshots):
        yield "benchmark", decode_image(upload, settings, settings.headshot_decode_min_side).pixels
    for record in list_records(data):
        yield record.source, read_rgb(record.path)


def survey(data: Path, headshots: int) -> dict[str, Any]:
    finder = FaceFinder()
    finder.load()
    detector = finder._borrow()
    counts: dict[str, dict[str, int]] = {}
    coarse_s: list[float] = []
    retries: list[dict[str, Any]] = []
    for source, pixels in images(data, headshots):
        seen = counts.setdefault(source, {"images": 0, "coarse": 0, "work_side": 0, "retry_found": 0, "none": 0})
        seen["images"] += 1
        gray, scale = gray_copy(pixels, finder.work_side)
        coarse, spent = _timed(lambda g=gray, s=scale: finder._coarse_pass(detector, g, MIN_FACE_PIXELS * s * s))
        coarse_s.append(spent)
        if coarse is not None:
            seen["coarse"] += 1
            continue
        if detector.run(gray, 0, -0.2)[0]:
            seen["work_side"] += 1
            continue
        (rects, _, _), retry_s = _timed(lambda g=gray: detector.run(g, 1, -0.2))
        seen["retry_found" if rects else "none"] += 1
        shifted = {}
        for side in SHIFTED_SIDES:
            other, _ = gray_copy(pixels, side)
            (found, _, _), spent = _timed(lambda g=other: detector.run(g, 0, -0.2))
            shifted[side] = {"found": bool(found), "cpu_s": spent}
        retries.append({"source": source, "side": max(pixels.shape[:2]), "retry_found": bool(rects), "retry_cpu_s": retry_s,
                        "largest_px": max((r.width() for r in rects), default=0) / scale, "shifted": shifted})
    return {"counts": counts, "coarse_cpu_ms_mean": 1000 * statistics.fmean(coarse_s), "retries": retries}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--headshots", type=int, default=60, help="benchmark headshots (1024 px JPEG) surveyed first")
    args = parser.parse_args(argv)
    result = survey(args.data, args.headshots)
    print(f"coarse pass: {result['coarse_cpu_ms_mean']:.1f} ms CPU per image (mean)")
    for source, seen in result["counts"].items():
        print(f"{source:>10}: {seen}")
    retries = result["retries"]
    if not retries:
        return
    print(f"up-sampled retry: {len(retries)} images, {1000 * statistics.fmean(r['retry_cpu_s'] for r in retries):.1f} ms "
          f"CPU each (mean), found faces in {sum(r['retry_found'] for r in retries)}")
    for r in retries:
        if r["retry_found"]:
            print(f"  {r['source']} {r['side']} px image: largest face found {r['largest_px']:.0f} px wide")
    for side in SHIFTED_SIDES:
        found = [r["shifted"][side]["found"] for r in retries]
        both = sum(f and r["retry_found"] for f, r in zip(found, retries, strict=True))
        cpu = statistics.fmean(r["shifted"][side]["cpu_s"] for r in retries)
        print(f"one scan at {side} px instead: found faces in {sum(found)} ({both} of the retry's), {1000 * cpu:.1f} ms CPU each")


if __name__ == "__main__":
    main()
