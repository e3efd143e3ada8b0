"""Does MediaPipe's BlazeFace (short range) find the faces dlib's HOG misses? The measurement behind the face
finder's fallback (face 2.3.0, :mod:`detectors.face.blazeface`). A benchmark: it asserts nothing.

Caveats first: it runs dlib's finder alone (``FaceFinder()`` without the fallback: coarse pass, 448 px scan,
up-sampled retry) on every shared face image and the benchmark headshots (the service's reduced decode), asks
BlazeFace wherever dlib found nothing, and on a seeded sample of the others compares the two boxes (IoU of HOG's
largest box with BlazeFace's best match). Found means a box, not a judged face (``detectors.face.fallback_eval``
judges them). CPU is thread time on one core (one ONNX Runtime thread).

    .venv/bin/python -m benchmarks.finder_blazeface [--model weights/face/finder_fallback.onnx] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workload import SHARED, distinct_headshots
from detectors.face.blazeface import BlazeFace, box_iou
from detectors.face.data import list_records, read_rgb
from detectors.face.finding import FaceFinder
from service.config import Settings
from service.inputs import decode_image

MIN_FACE_PIXELS = 1024.0  # the shipped manifest's size abstention (32 x 32 px)


def _timed(work: Any) -> tuple[Any, float]:
    started = time.thread_time()
    result = work()
    return result, time.thread_time() - started


def survey(model: Path, data: Path, headshots: int, sample: int, seed: int) -> dict[str, Any]:
    finder, blaze = FaceFinder(), BlazeFace()
    finder.load()
    blaze.load(model)
    settings = Settings()
    images: list[tuple[str, np.ndarray]] = [
        ("benchmark", decode_image(upload, settings, settings.headshot_decode_min_side).pixels)
        for upload in distinct_headshots(headshots)]
    images += [(record.source, read_rgb(record.path)) for record in list_records(data)]
    both = set(random.Random(seed).sample(range(len(images)), min(sample, len(images))))
    missed: Counter[str] = Counter()
    rescued: Counter[str] = Counter()
    ious, cpu_s = [], []
    for index, (source, pixels) in enumerate(images):
        faces = finder.find(pixels, MIN_FACE_PIXELS)
        if faces and index not in both:
            continue
        found, spent = _timed(lambda p=pixels: blaze.detect(p))
        cpu_s.append(spent)
        if not faces:
            missed[source] += 1
            rescued[source] += bool(found)
            continue
        box = faces[0].box
        hog = np.array([box.x, box.y, box.x + box.w, box.y + box.h], dtype=np.float64)
        ious.append(max((box_iou(hog, d.box) for d in found), default=0.0))
    return {
        "images": len(images),
        "hog_found_nothing": dict(missed),
        "blazeface_found_a_face_there": dict(rescued),
        "both_sample": len(ious),
        "both_sample_iou_over_0.3": float(np.mean(np.array(ious) > 0.3)) if ious else None,
        "both_sample_median_iou": statistics.median(ious) if ious else None,
        "blazeface_cpu_ms_mean": 1000 * statistics.fmean(cpu_s) if cpu_s else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, default=Path("weights/face/finder_fallback.onnx"))
    parser.add_argument("--data", type=Path, default=SHARED / "faces")
    parser.add_argument("--headshots", type=int, default=60, help="benchmark headshots (the service's decode)")
    parser.add_argument("--sample", type=int, default=300, help="images where both are compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = survey(args.model, args.data, args.headshots, args.sample, args.seed)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
