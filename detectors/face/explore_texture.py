"""Experiment: do pixel-residual texture statistics (SPAM) add signal to the 2.2.0 face stacker? (Answer: no.)

Run (about 4 minutes on the shared 2-core machine; face arrays cached under ``/tmp/face_cache``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_texture \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_texture.md

``detectors/face/explore_texture_results.md`` is that output (seed 0) with a conclusion added.

What it measures (validation and train splits only; the test split is never read):

* Faces exactly as ``explore_descriptor`` makes them (``judged_faces``: each file as staged and once degraded,
  the same rng offsets), with the shipped ``cnn_v2``, ``cues`` and ``descriptor`` logits on validation.
* Per judged face, SPAM features (Pevny, Bas and Fridrich, 2010): the first- and second-order Markov transition
  probabilities of neighbouring grey-level differences clipped to +-3, averaged over the four straight and the four
  diagonal directions (2 x (49 + 343) values), on a window of at most 256 x 256 px around the face (1.6x its
  box) at the resolution the face was found in, never resampled, so that generator traces are not smoothed away.
* A texture model (standardised logistic regression, C by grouped CV; and boosted trees) fitted on TRAIN faces,
  once on all four sources and once on FFHQ + StyleGAN v1 only (the one pair whose files share size and JPEG
  settings), whose validation logit becomes a fourth stacker input; 5-fold grouped OOF AUROC / TPR@1%FPR per pair,
  and a paired file bootstrap of the AUROC difference.
* The shortcut check that decides it: how well the texture logit separates the two REAL sources (CIPLAB: 600 px,
  high-quality 4:4:4 JPEG; FFHQ: 256 px, q75 4:2:0). Far from 0.5 means it reads the file's resolution and
  compression, which the data README warns against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.contract import Box
from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, split_records
from detectors.face.descriptor_model import TRAIN_RNG_OFFSET, DescriptorModel
from detectors.face.explore_descriptor import (
    CACHE_DIR,
    PAIRS,
    bootstrap_diff,
    experiment_args,
    fit_side_model,
    pair_cells,
    pair_mask,
    say,
    table_header,
)
from detectors.face.finding import FaceEmbedder
from detectors.face.pipeline import V2_CROP
from detectors.face.scoring import CueTrees
from detectors.face.stacking import VAL_RNG_OFFSET, _onnx_logits, out_of_fold
from detectors.metrics import auroc, tpr_at_fpr

CLIP = 3  # residuals clipped to [-CLIP, CLIP] (SPAM's T)
REGION = 1.6  # window side / face box side
MAX_SIDE = 256  # central window at most this many px, never resampled


def texture_window(pixels: np.ndarray, box: Box) -> np.ndarray:
    """Grey levels (int16) of a window REGION x the face box around its centre, its central MAX_SIDE px at most."""
    height, width = pixels.shape[:2]
    cx, cy, half = box.x + box.w / 2, box.y + box.h / 2, REGION * max(box.w, box.h) / 2
    x0, x1 = int(max(0, cx - half)), int(min(width, cx + half))
    y0, y1 = int(max(0, cy - half)), int(min(height, cy + half))
    grey = cv2.cvtColor(np.ascontiguousarray(pixels[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.int16)
    oy, ox = max(0, (grey.shape[0] - MAX_SIDE) // 2), max(0, (grey.shape[1] - MAX_SIDE) // 2)
    return grey[oy : oy + MAX_SIDE, ox : ox + MAX_SIDE]


def _transitions(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """P(b | a) (49 values) and P(c | a, b) (343 values) for successive clipped residuals a, b, c."""
    k = 2 * CLIP + 1
    a, b, c = (np.clip(v, -CLIP, CLIP) + CLIP for v in (a, b, c))
    pairs = np.bincount((a * k + b).ravel(), minlength=k * k).astype(np.float64).reshape(k, k)
    triples = np.bincount(((a * k + b) * k + c).ravel(), minlength=k**3).astype(np.float64).reshape(k * k, k)
    first = pairs / np.maximum(pairs.sum(axis=1, keepdims=True), 1)
    second = triples / np.maximum(triples.sum(axis=1, keepdims=True), 1)
    return np.concatenate([first.ravel(), second.ravel()])


def spam_features(grey: np.ndarray) -> np.ndarray:
    """784 SPAM values: straight-direction average, then diagonal-direction average (each 49 + 343)."""
    straight, diagonal = [], []
    for image in (grey, grey.T):
        d = image[:, :-1] - image[:, 1:]
        for residual in (d, -d[:, ::-1]):
            straight.append(_transitions(residual[:, :-2], residual[:, 1:-1], residual[:, 2:]))
    for image in (grey, grey[:, ::-1]):
        d = image[:-1, :-1] - image[1:, 1:]
        for residual in (d, -d[::-1, ::-1]):
            diagonal.append(_transitions(residual[:-2, :-2], residual[1:-1, 1:-1], residual[2:, 2:]))
    return np.concatenate([np.mean(straight, axis=0), np.mean(diagonal, axis=0)])


def faces_with_texture(records: list[Record], rng_offset: int, seed: int) -> dict[str, np.ndarray]:
    """Per judged face: SPAM features, window side, descriptor, v2 crop, cues and (label, source, file, condition)."""
    embedder = FaceEmbedder()
    out: dict[str, list[Any]] = {k: [] for k in ("tex", "side", "desc", "wide", "cues", "meta")}
    for judged in judged_faces(records, np.random.default_rng(seed + rng_offset), V2_CROP, label="texture"):
        if judged.inputs.wide_crop is None:
            continue
        window = texture_window(judged.pixels, judged.face.box)
        out["tex"].append(spam_features(window))
        out["side"].append(min(window.shape))
        out["desc"].append(np.array(embedder.embed(judged.pixels, judged.face.landmarks)))
        out["wide"].append(judged.inputs.wide_crop)
        out["cues"].append(judged.inputs.cues)
        out["meta"].append(np.array((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index,
                                     judged.condition)))
    return {k: np.stack(v) for k, v in out.items()}


def cached_texture(name: str, records: list[Record], rng_offset: int, seed: int, weights: Path) -> dict[str, np.ndarray]:
    path = CACHE_DIR / f"explore_texture_{name}_seed{seed}_n{len(records)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return dict(cached)
    arrays = faces_with_texture(records, rng_offset, seed)
    arrays["cnn_v2"] = _onnx_logits(weights / "model_v2.onnx", arrays.pop("wide"))[:, 0]
    arrays["cue_logit"] = CueTrees.load(weights / "cue_trees.npz").logits(arrays.pop("cues"))
    arrays["desc_logit"] = DescriptorModel.load(weights / "descriptor_lr.npz").logits(arrays["desc"])
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


def main() -> None:
    args = experiment_args(__doc__)
    splits = split_records(list_records(args.data), args.seed)
    val = cached_texture("validation", splits["validation"], VAL_RNG_OFFSET, args.seed, args.weights)
    train = cached_texture("train", splits["train"], TRAIN_RNG_OFFSET, args.seed, args.weights)
    y, source, files, condition = (val["meta"][:, i] for i in range(4))
    ty, tsource, tfiles = train["meta"][:, 0], train["meta"][:, 1], train["meta"][:, 2]
    x_train, x_val = np.log(train["tex"] + 1e-4), np.log(val["tex"] + 1e-4)
    reals, ciplab = y == 0, source == SOURCE_NAMES.index("ciplab")
    say(f"# SPAM texture features as a fourth stacker input (seed {args.seed})\n")
    say(f"validation: {len(y)} judged faces of {len(np.unique(files))} files; train: {len(ty)} faces "
        f"(staged + 1 degraded each); texture window side median {np.median(val['side']):.0f} px\n")
    base_cols = np.column_stack([val["cnn_v2"], val["cue_logit"], val["desc_logit"]])
    base = out_of_fold(base_cols, y, files)
    table_header(["candidate", "OOF AUROC", "OOF TPR@1%"])
    say(f"| shipped 2.2.0 (cnn_v2 + cues + descriptor) | {auroc(base, y):.4f} | {tpr_at_fpr(base, y, 0.01):.4f} | "
        f"{pair_cells(base, y, source)} |")
    details = []
    pair_ffhq_sg = np.isin(tsource, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("stylegan1")])
    for fitted_on, rows in (("all sources", np.ones(len(ty), dtype=bool)), ("FFHQ + StyleGAN v1", pair_ffhq_sg)):
        for kind in ("lr", "gbt"):
            model, described = fit_side_model(x_train[rows], ty[rows], tfiles[rows], kind, args.seed)
            texture = model.decision_function(x_val)  # type: ignore[attr-defined]
            stacked = out_of_fold(np.column_stack([base_cols, texture]), y, files)
            lo, hi, p_le0 = bootstrap_diff(base, stacked, y, files, args.seed)
            say(f"| + texture {kind}, fitted on {fitted_on} | {auroc(stacked, y):.4f} | "
                f"{tpr_at_fpr(stacked, y, 0.01):.4f} | {pair_cells(stacked, y, source)} |")
            alone = " / ".join(f"{auroc(texture[pair_mask(source, p)], y[pair_mask(source, p)]):.3f}"
                               for p in PAIRS.values())
            details.append(
                f"- texture {kind} on {fitted_on} ({described}): alone AUROC {auroc(texture, y):.4f} (per pair {alone}); "
                f"staged {auroc(texture[condition == 0], y[condition == 0]):.4f}, degraded "
                f"{auroc(texture[condition == 1], y[condition == 1]):.4f}; **CIPLAB vs FFHQ reals "
                f"{auroc(texture[reals], ciplab[reals].astype(int)):.4f}** (0.5 = no source cue); stacked OOF AUROC "
                f"difference 95% CI [{lo:+.4f}, {hi:+.4f}], P(<= 0) {p_le0:.3f}")
    say("")
    for line in details:
        say(line)


if __name__ == "__main__":
    main()
