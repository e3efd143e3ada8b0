"""Would MediaPipe's BlazeFace (short range) find the faces dlib's HOG misses? An exploration, not shipped: it
asserts nothing and the service does not use the model.

Caveats first: the model is not in the repository. It is ``face_detection_short_range.tflite`` (229,714 bytes,
Apache-2.0) from the PyPI wheel ``mediapipe==0.10.21``, converted once to ONNX with ``tflite2onnx`` 0.4.1 (which
warns that float16 tensors are untested; the converted graph takes float32 NCHW 1x3x128x128 in [-1, 1] and
returns 896 box regressors of 16 values and 896 logits). Convert it in a scratch environment, not the project's
(mediapipe pins numpy<2)::

    pip download mediapipe==0.10.21 --no-deps -d /tmp/mp
    unzip -o /tmp/mp/mediapipe-0.10.21-*.whl 'mediapipe/modules/face_detection/face_detection_short_range.tflite' -d /tmp/mp
    python3 -m venv /tmp/cv && /tmp/cv/bin/pip install tflite2onnx onnx 'numpy<2'
    /tmp/cv/bin/python -c "import tflite2onnx; tflite2onnx.convert('/tmp/mp/mediapipe/modules/face_detection/\\
    face_detection_short_range.tflite', '/tmp/mp/short.onnx')"
    .venv/bin/python -m benchmarks.finder_blazeface --model /tmp/mp/short.onnx

Decoding follows MediaPipe's short-range face detection graph: SSD anchors with strides 8 (16 x 16 cells, 2
anchors each) and 16 (8 x 8 cells, 6 anchors each), fixed anchor size, box and keypoint offsets divided by 128,
score = sigmoid(logit) >= 0.5, then greedy non-maximum suppression (IoU 0.3). The image is padded to a square
at its bottom and right and area-averaged to 128 px, so a face narrower than ~1/8 of the image's longest side
(16 px at 128) is beyond it: it cannot replace the finder's up-sampled retry for small faces. Found means a box;
it is compared with HOG's largest box where both find one. CPU is thread time on one core (one ONNX Runtime
thread).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.workload import SHARED, distinct_headshots
from detectors.face.data import list_records, read_rgb
from detectors.face.finding import FaceFinder
from service.config import Settings
from service.inputs import decode_image

INPUT_SIDE = 128
MIN_SCORE = 0.5
NMS_IOU = 0.3
MIN_FACE_PIXELS = 1024.0  # the shipped manifest's size abstention (32 x 32 px)


def anchor_centres() -> np.ndarray:
    """The 896 anchor centres (x, y) in [0, 1], in the model's output order."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = INPUT_SIDE // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.array(centres)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


@dataclass(frozen=True)
class Detection:
    score: float
    box: np.ndarray  # x0, y0, x1, y1 in image pixels


class BlazeFace:
    def __init__(self, model: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.anchors = anchor_centres()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), np.uint8)
        square[:height, :width] = rgb
        small = cv2.resize(square, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_AREA)
        tensor = (small.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        regressors, logits = self.session.run(None, {self.session.get_inputs()[0].name: tensor})
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0], -30.0, 30.0)))
        found: list[Detection] = []
        for i in np.argsort(-scores):
            if scores[i] < MIN_SCORE:
                break
            cx, cy = regressors[0, i, :2] / INPUT_SIDE + self.anchors[i]
            w, h = regressors[0, i, 2:4] / INPUT_SIDE
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * side
            if all(iou(box, kept.box) < NMS_IOU for kept in found):
                found.append(Detection(float(scores[i]), box))
        return found


def _timed(work: Any) -> tuple[Any, float]:
    started = time.thread_time()
    result = work()
    return result, time.thread_time() - started


def survey(model: Path, data: Path, headshots: int, sample: int, seed: int) -> dict[str, Any]:
    finder, blaze = FaceFinder(), BlazeFace(model)
    finder.load()
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
        ious.append(max((iou(hog, d.box) for d in found), default=0.0))
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
    parser.add_argument("--model", type=Path, required=True, help="the converted short-range model (see above)")
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
