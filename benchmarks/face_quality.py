"""Face detector quality on the test split through the *service's* decode path, as staged and as 1024 px JPEGs.

Caveats first: ``bylinecheck eval faces`` reads files with OpenCV at full resolution; the service decodes
uploads with :func:`service.inputs.decode_image` (which may decode a JPEG at reduced size) and hands the
submitted size along. This script scores the seeded test split (``detectors.face.data.split_records``) both
ways the service sees it: the files as staged (256-768 px) and each upscaled to a 1024 x 1024 JPEG q90 (the
benchmark's headshot). Prints AUROC, TPR@1%FPR and coverage per condition; writes JSON with ``--out``.

    .venv/bin/python -m benchmarks.face_quality [--min-side 0] [--limit N] [--out benchmarks/results/face_quality.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import SHARED, to_headshot
from detectors.contract import DetectorOutput, Device, ImageItem
from detectors.face import build_face_detector
from detectors.face.data import list_records, split_records
from detectors.face.detector import FaceDetector
from detectors.face.evaluation import summarise
from service.config import Settings
from service.inputs import decode_image


def judge_bytes(detector: FaceDetector, data: bytes, settings: Settings, min_side: int) -> DetectorOutput:
    image = decode_image(data, settings, min_side)
    item = ImageItem(pixels=image.pixels, original=image.original, submitted_size=(image.width, image.height))
    prepared = detector.preprocess(item)
    return detector.postprocess([prepared], detector.forward([prepared]))[0]


def evaluate(limit: int | None, min_side: int | None) -> dict[str, Any]:
    from PIL import Image

    settings = Settings()
    side = settings.headshot_decode_min_side if min_side is None else min_side
    detector = build_face_detector(settings.weights_dir / "face")
    detector.load(Device())
    records = split_records(list_records(SHARED / "faces"), seed=0)["test"][:limit]
    outputs: dict[str, dict[int, list[DetectorOutput]]] = {"as_staged": {0: [], 1: []}, "jpeg_1024": {0: [], 1: []}}
    cpu = {"as_staged": 0.0, "jpeg_1024": 0.0}
    for record in records:
        staged = record.path.read_bytes()
        with Image.open(record.path) as image:
            upscaled = to_headshot(image)
        for condition, data in (("as_staged", staged), ("jpeg_1024", upscaled)):
            started = time.thread_time()
            outputs[condition][record.label].append(judge_bytes(detector, data, settings, side))
            cpu[condition] += time.thread_time() - started
    likely_ai = detector.manifest.thresholds.likely_ai
    result: dict[str, Any] = {"detector": f"{detector.name}@{detector.version}", "test_files": len(records),
                              "decode_min_side": side}
    for condition, by_label in outputs.items():
        result[condition] = summarise(by_label[0], by_label[1], likely_ai)
        result[condition]["cpu_ms_per_image"] = 1000 * cpu[condition] / max(len(records), 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--min-side", type=int, default=None, help="reduced-decode floor (default: the setting; 0 = full)")
    args = parser.parse_args(argv)
    result = evaluate(args.limit, args.min_side)
    for condition in ("as_staged", "jpeg_1024"):
        r = result[condition]
        print(f"{condition:<10} auroc {r.get('auroc', float('nan')):.4f}  tpr@1%fpr {r.get('tpr_at_1pct_fpr', float('nan')):.4f}"
              f"  coverage {r['coverage']:.4f}  cpu {r['cpu_ms_per_image']:.1f} ms/image  abstained {r.get('abstained')}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
