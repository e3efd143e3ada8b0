"""One decode or two for a headshot whose watermark is read: CPU of decode + provenance, and what the face model
says, along both paths. A benchmark, not a test: it asserts nothing.

Caveats first: the "two decodes" path is the one before round 9 (Pillow's DCT-scaled decode for the face, OpenCV's
full decode inside the watermark reader), reproduced by hiding the shared decode from ``decode_image``; the
"one decode" path is the shipped one (OpenCV's full decode, area-averaged to the same size for the face, handed to
the watermark reader). CPU is thread time on one core, alternating the paths per headshot. The headshots are the
standard workload's (1024 px JPEG q90 4:2:0, which the watermark reader decodes).

    .venv/bin/python -m benchmarks.decode_paths [--headshots 60] [--out benchmarks/results/decode_paths.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import service.inputs
from benchmarks.workload import distinct_headshots
from detectors.contract import DetectorOutput, Device, ImageItem
from detectors.face import build_face_detector
from detectors.face.detector import FaceDetector
from service import headshots as evidence
from service.config import Settings
from service.domain import DecodedImage


@contextmanager
def two_decodes() -> Iterator[None]:
    """``decode_image`` as before the shared decode: the watermark pixels are never handed over."""
    shared = service.inputs.watermark_pixels
    service.inputs.watermark_pixels = lambda data: None
    try:
        yield
    finally:
        service.inputs.watermark_pixels = shared


def one_path(data: bytes, settings: Settings, detector: FaceDetector) -> tuple[float, DecodedImage, DetectorOutput]:
    """CPU seconds of decode + provenance, the decoded image, and the face model's output on it."""
    started = time.thread_time()
    image = service.inputs.decode_image(data, settings, settings.headshot_decode_min_side)
    evidence.provenance(image.original, image.full_bgr)
    spent = time.thread_time() - started
    prepared = [detector.preprocess(ImageItem(pixels=image.pixels, original=image.original,
                                              submitted_size=image.submitted_size))]
    return spent, image, detector.postprocess(prepared, detector.forward(prepared))[0]


def compare(headshots: int) -> dict[str, Any]:
    settings = Settings()
    detector = build_face_detector(settings.weights_dir / "face", embed_faces=settings.face_embeddings)
    detector.load(Device(intra_op_threads=settings.intra_op_threads))
    cpu: dict[str, list[float]] = {"two_decodes": [], "one_decode": []}
    pixel_diff, prob_diff, box_diff, verdicts_same, judged = [], [], [], 0, 0
    uploads = distinct_headshots(headshots + 2)
    for index, data in enumerate(uploads):
        with two_decodes():
            old_s, old_image, old = one_path(data, settings, detector)
        new_s, new_image, new = one_path(data, settings, detector)
        if index < 2:  # warm-up
            continue
        cpu["two_decodes"].append(old_s)
        cpu["one_decode"].append(new_s)
        pixel_diff.append(float(np.abs(old_image.pixels.astype(np.int16) - new_image.pixels).mean()))
        verdicts_same += int(old.verdict == new.verdict)
        if old.probability is not None and new.probability is not None:
            judged += 1
            prob_diff.append(abs(old.probability - new.probability))
        if old.region is not None and new.region is not None:
            box_diff.append(float(np.abs(np.subtract(old.region.as_list(), new.region.as_list())).max()))
    return {
        "headshots": headshots,
        "cpu_ms": {k: {"median": 1000 * statistics.median(v), "mean": 1000 * statistics.fmean(v)} for k, v in cpu.items()},
        "pixel_mean_abs_diff": {"median": statistics.median(pixel_diff), "max": max(pixel_diff)},
        "judged_both": judged,
        "probability_abs_diff": {"median": statistics.median(prob_diff), "max": max(prob_diff)} if prob_diff else None,
        "face_box_max_px_diff": {"median": statistics.median(box_diff), "max": max(box_diff)} if box_diff else None,
        "verdicts_same": verdicts_same,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--headshots", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = compare(args.headshots)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
