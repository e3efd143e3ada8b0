"""Make ``weights/face/finder_fallback.onnx`` from MediaPipe's wheel, and fit the box mapping in
:mod:`detectors.face.blazeface` (development tools; the service only loads the result).

Caveats first: the conversion needs ``tflite2onnx`` 0.4.1, which needs numpy < 2, so it runs in a scratch
environment, not the project's (nor does the project depend on mediapipe, which pins numpy < 2 and pulls jax)::

    pip download mediapipe==0.10.21 --no-deps -d /tmp/mp
    unzip -o /tmp/mp/mediapipe-0.10.21-*.whl \\
        'mediapipe/modules/face_detection/face_detection_short_range.tflite' -d /tmp/mp
    python3 -m venv /tmp/cv && /tmp/cv/bin/pip install tflite2onnx==0.4.1 onnx 'numpy<2'
    /tmp/cv/bin/python detectors/face/blazeface_export.py --tflite \\
        /tmp/mp/mediapipe/modules/face_detection/face_detection_short_range.tflite --out weights/face/finder_fallback.onnx

(the tflite file is 229,714 bytes, sha256 in the model card; ``tflite2onnx`` warns that its float16 tensors are
untested: the graph it writes is float32 and is checked on load by :class:`~detectors.face.blazeface.BlazeFace`).
Then, in the project's environment, the box mapping: ``.venv/bin/python -m detectors.face.blazeface_export
--fit-box --model weights/face/finder_fallback.onnx`` prints the medians to put into
:mod:`detectors.face.blazeface`, over training-split images where both finders see one face, and how far the
68 landmarks predicted from the mapped box fall from those predicted from HOG's own box.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np


def convert(tflite: Path, out: Path) -> None:
    import tflite2onnx  # scratch environment only (see above)

    tflite2onnx.convert(str(tflite), str(out))


def fit_box(model: Path, data: Path, seed: int, limit: int) -> dict[str, Any]:
    from detectors.face.blazeface import BlazeFace, box_iou
    from detectors.face.data import list_records, read_rgb, split_records
    from detectors.face.finding import FaceFinder, gray_copy, hog_rect

    finder, blaze = FaceFinder(), BlazeFace()
    finder.load()
    blaze.load(model)
    records = split_records(list_records(data), seed)["train"][:limit]
    pairs = []
    for record in records:
        pixels = read_rgb(record.path)
        faces, found = finder.find(pixels), blaze.detect(pixels)
        if len(faces) != 1 or not found:
            continue
        box = faces[0].box
        hog = np.array([box.x, box.y, box.x + box.w, box.y + box.h], dtype=np.float64)
        best = max(found, key=lambda d: box_iou(hog, d.box))
        if box_iou(hog, best.box) > 0.3:
            pairs.append((pixels, faces[0], hog, best.box))
    hog, blaze_boxes = np.array([p[2] for p in pairs]), np.array([p[3] for p in pairs])
    w, h = blaze_boxes[:, 2] - blaze_boxes[:, 0], blaze_boxes[:, 3] - blaze_boxes[:, 1]
    shift_x = float(np.median((hog[:, 0] + hog[:, 2] - blaze_boxes[:, 0] - blaze_boxes[:, 2]) / 2 / w))
    shift_y = float(np.median((hog[:, 1] + hog[:, 3] - blaze_boxes[:, 1] - blaze_boxes[:, 3]) / 2 / h))
    side = float(np.median((hog[:, 2] - hog[:, 0]) / np.sqrt(w * h)))
    # landmark agreement with the fitted mapping (set in blazeface.py before measuring it)
    errors = []
    for pixels, face, _, bbox in pairs:
        gray, scale = gray_copy(pixels, finder.work_side)
        rect = hog_rect(bbox, scale)  # as the finder maps a fallback box
        points = np.array([(p.x, p.y) for p in finder._predictor(gray, rect).parts()], dtype=np.float32) / scale
        errors.append(float(np.linalg.norm(points - face.landmarks, axis=1).mean() / face.eye_distance))
    return {
        "images": len(records), "pairs": len(pairs), "HOG_SHIFT_X": round(shift_x, 4), "HOG_SHIFT_Y": round(shift_y, 4),
        "HOG_SIDE": round(side, 4),
        "landmark_error_over_eye_distance": {"median": statistics.median(errors),
                                             "p90": float(np.quantile(errors, 0.9)), "max": max(errors)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--tflite", type=Path, help="face_detection_short_range.tflite (convert it to --out)")
    parser.add_argument("--out", type=Path, default=Path("weights/face/finder_fallback.onnx"))
    parser.add_argument("--fit-box", action="store_true", help="fit the HOG box mapping on the training split")
    parser.add_argument("--model", type=Path, default=Path("weights/face/finder_fallback.onnx"))
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=800, help="training-split images to fit on (in split order)")
    args = parser.parse_args(argv)
    if args.tflite:
        convert(args.tflite, args.out)
    if args.fit_box:
        sys.stdout.write(json.dumps(fit_box(args.model, args.data, args.seed, args.limit), indent=2) + "\n")


if __name__ == "__main__":
    main()
