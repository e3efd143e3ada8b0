"""Experiment: does the face's shape and symmetry (dlib's 68 landmarks) add signal to the 2.2.0 face stacker?

Run (about 5 minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``; reads the validation
logits that ``detectors.face.explore_tta`` caches, and runs it first if they are missing)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_geometry \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_geometry.md

``detectors/face/explore_geometry_results.md`` is that output (seed 0) with a conclusion added.

What it measures (train and validation splits only; the test split is never read):

* Faces exactly as ``explore_descriptor`` makes them (``judged_faces``: each file as staged and once degraded,
  the same rng offsets), the landmarks the shipped face finder gives.
* Per face, 136 + 46 shape values with the framing removed: the 68 landmarks mapped by the similarity transform
  that puts the eye and mouth centres on the alignment template (so position, size and roll in the frame, which
  the cue trees already read and which differ between sources, are gone), and the left/right asymmetry of the
  23 mirrored landmark pairs in that frame. Issue #4 asks for symmetry cues "if they help".
* A shape model (standardised logistic regression, C by grouped CV; and boosted trees) fitted on TRAIN faces,
  whose validation logit becomes a fourth stacker input: 5-fold grouped OOF AUROC / TPR@1%FPR per pair, and a
  paired file bootstrap of the AUROC difference; and how well it separates the two REAL sources (0.5 = no source
  cue).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.face.alignment import align_matrix
from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, split_records
from detectors.face.explore_descriptor import (
    CACHE_DIR,
    PAIRS,
    TRAIN_RNG_OFFSET,
    bootstrap_diff,
    experiment_args,
    fit_side_model,
    pair_mask,
    say,
)
from detectors.face.stacking import VAL_RNG_OFFSET, out_of_fold
from detectors.metrics import auroc, tpr_at_fpr

# dlib's 68-point scheme: (left, right) landmarks that mirror each other across the face's midline
MIRRORED = (
    *((i, 16 - i) for i in range(8)),  # jaw
    *((17 + i, 26 - i) for i in range(5)),  # brows
    (31, 35), (32, 34),  # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65),  # mouth
)


def shape_features(landmarks: np.ndarray) -> np.ndarray:
    """The landmarks in the template's unit frame (136 values) and the 23 mirrored pairs' asymmetry (46)."""
    matrix = align_matrix(landmarks, 1)  # onto the alignment template in a unit square
    points = np.asarray(landmarks, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    left, right = points[[i for i, _ in MIRRORED]], points[[j for _, j in MIRRORED]]
    asymmetry = np.column_stack([left[:, 0] + right[:, 0] - 1.0, left[:, 1] - right[:, 1]])
    return np.concatenate([points.ravel(), asymmetry.ravel()])


def shapes(name: str, records: list[Record], rng_offset: int, seed: int) -> dict[str, np.ndarray]:
    path = CACHE_DIR / f"explore_geometry_{name}_seed{seed}_n{len(records)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return dict(cached)
    out: dict[str, list[Any]] = {"shape": [], "meta": []}
    for judged in judged_faces(records, np.random.default_rng(seed + rng_offset), None, label=f"geometry {name}"):
        out["shape"].append(shape_features(judged.face.landmarks))
        out["meta"].append(np.array((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index,
                                     judged.condition)))
    arrays = {k: np.stack(v) for k, v in out.items()}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


def _pair_cells(scores: np.ndarray, y: np.ndarray, source: np.ndarray) -> str:
    cells = []
    for pair in PAIRS.values():
        m = pair_mask(source, pair)
        cells.append(f"{auroc(scores[m], y[m]):.4f} / {tpr_at_fpr(scores[m], y[m], 0.01):.3f}")
    return " | ".join(cells)


def main() -> None:
    from detectors.face.explore_tta import views

    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    logits = views(splits["validation"], args.seed, args.weights)
    val = shapes("validation", splits["validation"], VAL_RNG_OFFSET, args.seed)
    train = shapes("train", splits["train"], TRAIN_RNG_OFFSET, args.seed)
    if not np.array_equal(val["meta"], logits["meta"]):
        raise RuntimeError("the cached validation logits are not for the same faces")
    y, source, files, condition = (val["meta"][:, i] for i in range(4))
    ty, tfiles = train["meta"][:, 0], train["meta"][:, 2]
    reals, ciplab = y == 0, source == SOURCE_NAMES.index("ciplab")
    say(f"# Face shape and symmetry (68 landmarks) as a fourth stacker input (seed {args.seed})\n")
    say(f"validation: {len(y)} judged faces of {len(np.unique(files))} files; train: {len(ty)} faces "
        f"(staged + 1 degraded each); {val['shape'].shape[1]} shape values per face\n")
    base_cols = np.column_stack([logits["cnn"][:, 0], logits["cue_logit"], logits["desc_logit"]])
    base = out_of_fold(base_cols, y, files)
    header = " | ".join(f"{p} AUROC / TPR@1%" for p in PAIRS)
    say(f"| candidate | OOF AUROC | OOF TPR@1% | {header} |")
    say("|" + " --- |" * (3 + len(PAIRS)))
    say(f"| shipped 2.2.0 (cnn_v2 + cues + descriptor) | {auroc(base, y):.4f} | {tpr_at_fpr(base, y, 0.01):.4f} | "
        f"{_pair_cells(base, y, source)} |")
    details = []
    for kind in ("lr", "gbt"):
        model, described = fit_side_model(train["shape"], ty, tfiles, kind, args.seed)
        shape_logit = model.decision_function(val["shape"])  # type: ignore[attr-defined]
        stacked = out_of_fold(np.column_stack([base_cols, shape_logit]), y, files)
        lo, hi, p_le0 = bootstrap_diff(base, stacked, y, files, args.seed)
        say(f"| + shape {kind} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | "
            f"{_pair_cells(stacked, y, source)} |")
        alone = " / ".join(f"{auroc(shape_logit[pair_mask(source, p)], y[pair_mask(source, p)]):.3f}"
                           for p in PAIRS.values())
        details.append(
            f"- shape {kind} ({described}): alone AUROC {auroc(shape_logit, y):.4f} (per pair {alone}); staged "
            f"{auroc(shape_logit[condition == 0], y[condition == 0]):.4f}, degraded "
            f"{auroc(shape_logit[condition == 1], y[condition == 1]):.4f}; **CIPLAB vs FFHQ reals "
            f"{auroc(shape_logit[reals], ciplab[reals].astype(int)):.4f}** (0.5 = no source cue); stacked OOF AUROC "
            f"difference 95% CI [{lo:+.4f}, {hi:+.4f}], P(<= 0) {p_le0:.3f}")
    say("")
    for line in details:
        say(line)


if __name__ == "__main__":
    main()
