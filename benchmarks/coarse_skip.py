"""The face finder's coarse pass with and without its two finest pyramid levels skipped: the same faces, and the CPU
saved. A benchmark: it asserts nothing (``tests/test_face_detector.py`` holds the tests).

Caveats first: ``FaceFinder(coarse_skip=2)`` (shipped) scans a ~179 px copy and lifts each box to the one the ~259 px
coarse copy's scan draws (``finding.lift_rect``); ``coarse_skip=0`` scans the ~259 px copy itself (face 2.1.0-2.3.0).
Every shared face image is found both ways as read from disk, and the benchmark headshots as the service decodes
them (512 px); "same" means the same boxes, landmarks (bit for bit) and scores. CPU is thread time of ``find`` on
one core, both ways alternating per image, so the machine's drift falls on both.

    .venv/bin/python -m benchmarks.coarse_skip [--headshots 60] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workload import distinct_headshots
from detectors.face.data import list_records, read_rgb
from detectors.face.finding import FaceFinder, FoundFace
from service.config import Settings
from service.inputs import decode_image

MIN_FACE_PIXELS = 1024.0  # the shipped manifest's size abstention (32 x 32 px)


def _key(faces: list[FoundFace]) -> list[tuple[Any, bytes, float]]:
    return [(f.box, f.landmarks.tobytes(), round(f.score, 9)) for f in faces]


def compare(images: list[np.ndarray]) -> dict[str, Any]:
    skipping, full = FaceFinder(coarse_skip=2), FaceFinder(coarse_skip=0)
    skipping.load()
    full.load()
    same, cpu_skip, cpu_full = 0, [], []
    for pixels in images:
        started = time.thread_time()
        new = skipping.find(pixels, MIN_FACE_PIXELS)
        cpu_skip.append(time.thread_time() - started)
        started = time.thread_time()
        old = full.find(pixels, MIN_FACE_PIXELS)
        cpu_full.append(time.thread_time() - started)
        same += _key(new) == _key(old)
    return {"images": len(images), "same_faces": same,
            "find_cpu_ms_mean": {"coarse_skip_2": 1000 * statistics.fmean(cpu_skip),
                                 "coarse_skip_0": 1000 * statistics.fmean(cpu_full)},
            "find_cpu_ms_median": {"coarse_skip_2": 1000 * statistics.median(cpu_skip),
                                   "coarse_skip_0": 1000 * statistics.median(cpu_full)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--headshots", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings()
    shared = [read_rgb(record.path) for record in list_records(args.data)]
    headshots = [decode_image(data, settings, settings.headshot_decode_min_side).pixels
                 for data in distinct_headshots(args.headshots)]
    result = {"shared_images": compare(shared), "benchmark_headshots": compare(headshots)}
    for name, row in result.items():
        mean, median = row["find_cpu_ms_mean"], row["find_cpu_ms_median"]
        print(f"{name}: {row['same_faces']} of {row['images']} the same; find CPU mean {mean['coarse_skip_0']:.1f} -> "
              f"{mean['coarse_skip_2']:.1f} ms, median {median['coarse_skip_0']:.1f} -> {median['coarse_skip_2']:.1f} ms")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
