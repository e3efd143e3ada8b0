"""Experiment: does MediaPipe's pretrained iris network, run on each eye, add signal to the 2.7.0 face stacker?

Run (about 4 minutes on the shared 2-core machine; eye features cached under ``/tmp/face_cache``)::

    pip download mediapipe==0.10.21 --no-deps -d /tmp/mp
    unzip -o /tmp/mp/mediapipe-0.10.21-*.whl 'mediapipe/modules/iris_landmark/iris_landmark.tflite' -d /tmp/mp
    python3 -m venv /tmp/cv && /tmp/cv/bin/pip install tflite2onnx==0.4.1 onnx 'numpy<2'
    /tmp/cv/bin/python -c "import sys, tflite2onnx; tflite2onnx.convert(*sys.argv[1:])" \
        /tmp/mp/mediapipe/modules/iris_landmark/iris_landmark.tflite /tmp/mp/iris_landmark.onnx
    nice -n 19 .venv/bin/python -m detectors.face.explore_iris --iris /tmp/mp/iris_landmark.onnx \
        > detectors/face/explore_iris_results.md

The iris model: ``mediapipe/modules/iris_landmark/iris_landmark.tflite`` from the PyPI wheel ``mediapipe==0.10.21``
(Apache-2.0), converted to ONNX as ``blazeface_export`` converts BlazeFace (``tflite2onnx`` 0.4.1 in a scratch
environment). It reads a 64 x 64 RGB eye crop and regresses 71 eye-contour and 5 iris points. Why it might help:
the issue names iris cues, GAN faces are known for irregular pupils and for the two eyes' highlights disagreeing,
and it is the one pretrained network here trained on eyes at high resolution (dlib's face network sees a whole face
at 150 px). Nothing in the shipped stack looks at the eyes at that scale.

Eye crops as MediaPipe makes them: centred on the two corners of each eye (dlib points 36/39 and 42/45), rotated so
the corner line is level, a square of 2.3 corner distances, resampled to 64 px; the subject's left eye is mirrored so
both eyes face the same way. Per eye, from the network: mean and standard deviation over space of two trunk maps
(128 channels at 16 x 16 and 8 x 8) and the two heads' last maps (128 x 2 x 2 each, flattened); the iris radius and
centre in eye-corner units. Per face: both eyes' features, their absolute difference, and the geometry (4,880
values).

What it measures (train and validation splits only; the test split is never read), as ``explore_grid_augment``: an
L2 logistic regression on the eye features fitted on the train faces (each file as staged and once degraded, rng
``seed + TRAIN_RNG_OFFSET``; C by grouped 5-fold AUROC on train), cross-fitted with validation as 2.7.0's grid model
is (``descriptor_model.cross_fitted``); the shipped stacker's inputs (``cnn_v2``, ``cues``, ``net_grid``) stacked
out of fold on validation with and without the eye logit, and a paired bootstrap over files.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from detectors.face.data import Record, judged_faces
from detectors.face.descriptor_model import (
    SUMMARY_INPUTS,
    TRAIN_RNG_OFFSET,
    cross_fitted,
    fit_descriptor_model,
    fit_with_c,
)
from detectors.face.explore_descriptor import (
    cached_arrays,
    experiment_args,
    pair_cells,
    say,
    shipped_setup,
    shipped_train_descriptors,
    stacked_row,
)
from detectors.face.finding import FaceFinder
from detectors.face.pipeline import V2_CROP
from detectors.face.stacking import VAL_RNG_OFFSET
from detectors.metrics import auroc, tpr_at_fpr

EYE_SIZE = 64
EYE_SCALE = 2.3  # MediaPipe's iris crop: this many corner distances on a side
EYES = ((36, 39), (45, 42))  # subject's right eye (outer, inner corner); left eye listed mirrored (outer, inner)
TAPS = ("p_re_lu_18", "p_re_lu_24", "p_re_lu_36", "p_re_lu_52")  # trunk 16x16, trunk 8x8, contour head, iris head


class IrisNet:
    """The converted iris model with its trunk and head maps exposed as outputs."""

    def __init__(self, path: Path) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))
        inferred = onnx.shape_inference.infer_shapes(model)
        known = {v.name: v for v in inferred.graph.value_info}
        for tap in TAPS:
            model.graph.output.append(known[tap])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, eyes: np.ndarray) -> list[np.ndarray]:
        """``eyes``: (n, 64, 64, 3) uint8 -> [contours (n, 213), iris (n, 15), *tap maps]."""
        x = np.ascontiguousarray(eyes.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        outs = [self.session.run(None, {self.input: x[i : i + 1]}) for i in range(len(x))]
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def eye_crop(pixels: np.ndarray, landmarks: np.ndarray, outer: int, inner: int, mirrored: bool) -> tuple[np.ndarray, float]:
    """The 64 px eye crop (level corner line, 2.3 corner distances on a side) and the corner distance in px."""
    import cv2

    a, b = np.asarray(landmarks[outer], dtype=np.float64), np.asarray(landmarks[inner], dtype=np.float64)
    centre, d = (a + b) / 2, float(np.hypot(*(b - a)))
    angle = np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])) if not mirrored else np.degrees(np.arctan2(a[1] - b[1], a[0] - b[0]))
    scale = EYE_SIZE / max(EYE_SCALE * d, 1.0)
    m = np.asarray(cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), float(scale)), dtype=np.float64)
    m[:, 2] += np.array([EYE_SIZE / 2, EYE_SIZE / 2]) - centre
    crop = cv2.warpAffine(pixels, m, (EYE_SIZE, EYE_SIZE), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return (crop[:, ::-1] if mirrored else crop), d


def eye_features(net: IrisNet, crops: np.ndarray) -> np.ndarray:
    """Per face (two crops each, consecutive): both eyes' features, their absolute difference and the geometry."""
    contours, iris, *maps = net.run(crops)
    per_eye = []
    for k, m in enumerate(maps):
        if k < 2:
            per_eye += [m.mean(axis=(2, 3)), m.std(axis=(2, 3))]
        else:
            per_eye.append(m.reshape(len(m), -1))
    pts = iris.reshape(len(iris), 5, 3)[:, :, :2] / EYE_SIZE
    centre, rim = pts[:, 0], pts[:, 1:]
    radius = np.linalg.norm(rim - centre[:, None], axis=2)
    geom = np.column_stack([centre - 0.5, radius.mean(axis=1), radius.std(axis=1)])
    eye = np.column_stack([*per_eye, geom])
    right, left = eye[0::2], eye[1::2]
    return np.column_stack([right, left, np.abs(right - left)])


def faces_eyes(records: list[Record], seed: int, rng_offset: int, finder: FaceFinder, net: IrisNet) -> dict[str, np.ndarray]:
    """Eye features of every judged face (files as staged and once degraded), keyed like ``face_descriptors``."""
    groups = {g: i for i, g in enumerate(sorted({r.group for r in records}))}
    feats, meta = [], []
    for judged in judged_faces(records, np.random.default_rng(seed + rng_offset), V2_CROP, "eyes", finder):
        crops = [eye_crop(judged.pixels, judged.face.landmarks, o, i, k == 1)[0] for k, (o, i) in enumerate(EYES)]
        feats.append(eye_features(net, np.stack(crops))[0])
        meta.append((judged.record.label, judged.index, groups[judged.record.group], judged.condition))
    m = np.array(meta, dtype=np.int64)
    return {"eyes": np.stack(feats), "labels": m[:, 0], "record": m[:, 1], "group": m[:, 2], "condition": m[:, 3]}


def main() -> None:
    args = experiment_args(__doc__ or "", lambda parser: parser.add_argument("--iris", type=Path, required=True,
                                                                             help="the iris model converted to ONNX"))
    splits, finder, val, name = shipped_setup(args)
    net = IrisNet(args.iris)
    train_desc = shipped_train_descriptors(splits["train"], args.seed, finder, name)
    train_eyes = cached_arrays(f"eyes_train_{name}_n{len(splits['train'])}.npz",
                               lambda: faces_eyes(splits["train"], args.seed, TRAIN_RNG_OFFSET, finder, net))
    val_eyes = cached_arrays(f"eyes_validation_{name}.npz",
                             lambda: faces_eyes(splits["validation"], args.seed, VAL_RNG_OFFSET, finder, net))
    key = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(val_eyes["record"], val_eyes["condition"], strict=True))}
    order = np.array([key[(int(r), int(c))] for r, c in zip(val.record, val.condition, strict=True)])
    vx = val_eyes["eyes"][order]
    y, source, files = val.labels, val.source, val.record
    val_groups = np.array([splits["validation"][int(i)].group for i in val.record])
    spec = SUMMARY_INPUTS["net_grid"]
    if not all(np.array_equal(train_eyes[k], train_desc[k]) for k in ("labels", "record", "condition")):
        raise SystemExit("train eye features and descriptors are not aligned")
    _, cv = fit_descriptor_model(train_desc["stages"][:, spec.start : spec.stop], train_desc["labels"], train_desc["group"])
    grid, _ = cross_fitted(train_desc["stages"][:, spec.start : spec.stop], train_desc["labels"],
                           val.stages[:, spec.start : spec.stop], y, val_groups, partial(fit_with_c, c=float(cv["chosen_c"])))
    tx = train_eyes["eyes"]
    _, eye_cv = fit_descriptor_model(tx, train_eyes["labels"], train_eyes["group"])
    c = float(eye_cv["chosen_c"])
    eyes, _ = cross_fitted(tx, train_eyes["labels"], vx, y, val_groups, partial(fit_with_c, c=c))
    say("# MediaPipe's iris network on each eye as a fourth stacker input (validation, 5-fold out of fold)\n")
    say(f"validation: {len(y)} judged faces of {len(np.unique(files))} files; train faces {len(tx)}; eye features "
        f"{tx.shape[1]}; C {c:g} (grouped CV AUROC on train "
        + ", ".join(f"C={k.removeprefix('cv_auroc_c')} {float(v):.4f}" for k, v in eye_cv.items() if k.startswith("cv_auroc_c"))
        + ")\n")
    say(f"Eye logit alone (out of fold): AUROC {auroc(eyes, y):.4f}, TPR@1%FPR {tpr_at_fpr(eyes, y, 0.01):.4f}; "
        f"per pair {pair_cells(eyes, y, source)}\n")
    say("| stacker inputs | OOF AUROC | OOF TPR@1% | ffhq vs stylegan1 | ciplab vs sd21 | ffhq vs sd21 | ciplab vs stylegan1 | "
        "AUROC diff 95% CI (share <= 0) |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base: np.ndarray | None = None
    for label, cols in (("cnn_v2, cues, net_grid (2.7.0)", [val.columns["cnn_v2"], val.columns["cues"], grid]),
                        ("+ eyes", [val.columns["cnn_v2"], val.columns["cues"], grid, eyes]),
                        ("cnn_v2, cues, eyes", [val.columns["cnn_v2"], val.columns["cues"], eyes])):
        stacked, row, share = stacked_row(label, cols, base, y, files, source, args.seed)
        base = stacked if base is None else base
        say(f"{row} ({share:.2f}) |")

if __name__ == "__main__":
    main()
