"""MediaPipe's short-range BlazeFace on ONNX Runtime: the face finder's second opinion when dlib's HOG sees nothing.

Caveats first: the model (``weights/face/finder_fallback.onnx``) is ``face_detection_short_range.tflite`` from the
PyPI wheel ``mediapipe==0.10.21`` (Apache-2.0), converted once to ONNX with ``tflite2onnx``
(:mod:`detectors.face.blazeface_export` has the commands); mediapipe itself is not a dependency. Its input is the
image padded to a square at the bottom and right and area-averaged to 128 px, so faces narrower than ~1/8 of the
image's longest side are beyond it (the HOG finder's up-sampled retry still looks for those). Decoding follows
MediaPipe's short-range face detection graph: SSD anchors with strides 8 (16 x 16 cells, 2 anchors each) and 16
(8 x 8 cells, 6 anchors each), fixed anchor size, box offsets divided by 128, score = sigmoid(logit) >= 0.5, then
greedy non-maximum suppression. Runs on the calling thread with one ONNX Runtime thread (~3.4 ms of CPU per
image). Thread-safe after :meth:`BlazeFace.load` (ONNX Runtime sessions allow concurrent ``run``).

:func:`hog_box` turns a BlazeFace box into the box dlib's frontal HOG detector would draw around the same face
(the 68-point landmark model was trained on such boxes): shift and scale fitted as medians over faces both find
on the face training split (``python -m detectors.face.blazeface_export --fit-box``; measured there: see
weights/face/MODEL_CARD.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.contract import Device

INPUT_SIDE = 128
MIN_SCORE = 0.5
NMS_IOU = 0.3
# dlib-HOG box from a BlazeFace box (fitted by ``blazeface_export --fit-box`` on the training split): the HOG box's
# centre is the BlazeFace centre shifted by these fractions of the BlazeFace width / height, and its side is this
# multiple of the BlazeFace box's geometric-mean side.
HOG_SHIFT_X = 0.0015
HOG_SHIFT_Y = -0.0431
HOG_SIDE = 1.0078


@dataclass(frozen=True)
class BlazeDetection:
    """One face: ``box`` (x0, y0, x1, y1, float image pixels) and the model's probability ``score``."""

    score: float
    box: np.ndarray


def anchor_centres() -> np.ndarray:
    """The 896 anchor centres (x, y) in [0, 1], in the model's output order."""
    centres: list[tuple[float, float]] = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = INPUT_SIDE // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.array(centres, dtype=np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def decode(regressors: np.ndarray, logits: np.ndarray, side: float, anchors: np.ndarray) -> list[BlazeDetection]:
    """Detections from one image's outputs (896 x 16 regressors, 896 logits), boxes scaled to ``side`` px,
    strongest first, after greedy non-maximum suppression."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -30.0, 30.0)))
    found: list[BlazeDetection] = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < MIN_SCORE:
            break
        cx, cy = regressors[i, :2] / INPUT_SIDE + anchors[i]
        w, h = regressors[i, 2:4] / INPUT_SIDE
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64) * side
        if all(box_iou(box, kept.box) < NMS_IOU for kept in found):
            found.append(BlazeDetection(float(scores[i]), box))
    return found


def hog_box(box: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square box dlib's HOG detector would draw for BlazeFace's ``box``."""
    w, h = box[2] - box[0], box[3] - box[1]
    cx = (box[0] + box[2]) / 2 + HOG_SHIFT_X * w
    cy = (box[1] + box[3]) / 2 + HOG_SHIFT_Y * h
    return float(cx), float(cy), float(HOG_SIDE * np.sqrt(max(w, 0.0) * max(h, 0.0)))


class BlazeFace:
    """The short-range model on ONNX Runtime (CPU, one thread)."""

    def __init__(self) -> None:
        self._session: Any = None
        self._input = ""
        self._anchors = anchor_centres()

    def load(self, model_path: Path) -> None:
        from detectors.runtime import onnx_session

        self._session = onnx_session(model_path, Device(intra_op_threads=1))
        inputs = self._session.get_inputs()
        shapes = [tuple(o.shape) for o in self._session.get_outputs()]
        if len(inputs) != 1 or tuple(inputs[0].shape) != (1, 3, INPUT_SIDE, INPUT_SIDE) \
                or shapes != [(1, 896, 16), (1, 896, 1)]:
            raise ValueError(f"{model_path} is not the short-range BlazeFace graph (outputs {shapes})")
        self._input = inputs[0].name

    def detect(self, rgb: np.ndarray) -> list[BlazeDetection]:
        """Faces in an RGB uint8 (H, W, 3) image, strongest first, boxes in its pixels."""
        if self._session is None:
            raise RuntimeError("BlazeFace.load() was not called")
        height, width = rgb.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), np.uint8)
        square[:height, :width] = rgb
        small = cv2.resize(square, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_AREA)
        tensor = np.ascontiguousarray((small.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None])
        regressors, logits = self._session.run(None, {self._input: tensor})
        return decode(np.asarray(regressors)[0], np.asarray(logits)[0, :, 0], float(side), self._anchors)
