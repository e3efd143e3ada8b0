"""Experiment: the stage statistics of dlib's face-descriptor network as an input of the 2.4.0 face stacker.

Run (about 5 minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``)::

    git worktree add /tmp/v240 ded694c   # 2.4.0's weights (its descriptor_lr.npz is gone from 2.5.0)
    nice -n 19 .venv/bin/python -m detectors.face.explore_stages \
        --data ../shared/datasets/faces --weights /tmp/v240/weights/face > /tmp/explore_stages.md

``detectors/face/explore_stages_results.md`` is that output (seed 0) with a conclusion added.

Why: no pretrained ImageNet weights are reachable, and the CNNs trained here from scratch are data-limited (v2's
training loss reaches its label-smoothing floor). One pretrained network is at hand: dlib's face-recognition ResNet,
trained on millions of real faces, which the service already runs on every judged face for the 128-d descriptor. Its
intermediate maps hold more than identity: the early stages respond to skin, hair and background texture. Their
per-channel spatial means and standard deviations (``embedding.stage_features``: 2 x 736 values) come from the same
pass, so they cost nothing extra at inference.

What it measures (the test split is never read):

* Train faces exactly as the 2.4.0 descriptor model's (``descriptor_model.face_descriptors``: each train file as staged
  and once degraded, rng ``seed + TRAIN_RNG_OFFSET``, the shipped finder), validation faces as the stacker's (as staged
  and once degraded, ``VAL_RNG_OFFSET``), with the shipped ``model_v2.onnx``, ``cue_trees.npz`` and
  ``descriptor_lr.npz`` logits (``explore_patch.validation_faces``).
* A standardised logistic regression on the stage statistics (``descriptor_model.fit_descriptor_model``: C by grouped
  5-fold AUROC on train), on all of them and on subsets (means only; stages 1-3; stages 4-5).
* Each as a stacker input, 5-fold grouped OOF on validation: with 2.4.0's three inputs, and in place of the descriptor.
* Shortcut probe: its AUROC between the two real sources (CIPLAB vs FFHQ; 0.5 = it does not read their format).
* Transfer: the model refitted on train without one generator's AI faces, scored on that generator against the
  validation reals (and the descriptor's model the same way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.face.data import SOURCE_NAMES, Record, list_records, split_records
from detectors.face.descriptor_model import TRAIN_RNG_OFFSET, face_descriptors, fit_descriptor_model
from detectors.face.embedding import STAGE_CHANNELS
from detectors.face.explore_descriptor import bootstrap_diff, cached_arrays, experiment_args, pair_cells, say, table_header
from detectors.face.explore_patch import validation_faces
from detectors.face.stacking import VAL_RNG_OFFSET, out_of_fold, training_finder
from detectors.metrics import auroc, tpr_at_fpr

C = STAGE_CHANNELS
SUBSETS = {
    "all stage statistics (1472)": np.arange(2 * C),
    "stage means only (736)": np.arange(C),
    "stages 1-3, means and spreads (448)": np.r_[0:224, C:C + 224],
    "stages 4-5, means and spreads (1024)": np.r_[224:C, C + 224:2 * C],
}


def faces(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    return cached_arrays(f"explore_stages_{name}_seed{seed}_n{len(records)}.npz",
                         lambda: face_descriptors(records, seed, offset, training_finder(weights)))


def main() -> None:
    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    train = faces(splits["train"], args.seed, TRAIN_RNG_OFFSET, args.weights, "train")
    val_stages = faces(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    val = validation_faces(splits["validation"], args.seed, args.weights)
    y, source, files, condition = (val["meta"][:, i] for i in range(4))
    if not (np.array_equal(val_stages["record"], files) and np.array_equal(val_stages["condition"], condition)):
        raise RuntimeError("the two validation passes judged different faces")
    real = np.isin(source, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("ciplab")])
    ciplab = (source[real] == SOURCE_NAMES.index("ciplab")).astype(np.int64)
    base_x = np.column_stack([val["cnn_v2"], val["cues"], val["descriptor"]])
    base = out_of_fold(base_x, y, files)
    say(f"# dlib's face-network stage statistics as a stacker input (seed {args.seed})\n")
    say(f"train: {len(train['labels'])} faces of {len(np.unique(train['record']))} files; validation: {len(y)} judged faces "
        f"of {len(np.unique(files))} files (each as staged + 1 degraded)\n")
    say("## Validation, 5-fold grouped out-of-fold stacking\n")
    table_header(["stacker inputs", "C (train CV AUROC)", "input alone AUROC", "OOF AUROC", "OOF TPR@1%"],
                 ["staged / degraded", "AUROC diff 95% CI", "ciplab vs ffhq"])
    say(f"| cnn_v2, cues, descriptor (shipped 2.4.0) | - | - | {_row(base, y, source, condition)} | [+0.0000, +0.0000] "
        f"| {auroc(base[real], ciplab):.3f} |")
    for name, columns in SUBSETS.items():
        model, cv = fit_descriptor_model(train["stages"][:, columns], train["labels"], train["group"])
        logit = model.logits(val_stages["stages"][:, columns])
        best = cv["chosen_c"]
        chosen = f"{best} ({cv[f'cv_auroc_c{best}']:.4f})"
        designs = {f"2.4.0's three + {name}": np.column_stack([base_x, logit])}
        if name.startswith("all"):
            designs["cnn_v2, cues, " + name] = np.column_stack([val["cnn_v2"], val["cues"], logit])
        for label, x in designs.items():
            stacked = out_of_fold(x, y, files)
            lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
            say(f"| {label} | {chosen} | {auroc(logit, y):.4f} | {_row(stacked, y, source, condition)} | "
                f"[{lo:+.4f}, {hi:+.4f}] | {auroc(logit[real], ciplab):.3f} alone, {auroc(stacked[real], ciplab):.3f} stacked |")
    say("\n## Transfer to a generator left out of the model's training (validation: that generator vs all reals)\n")
    say("| left out | model | AUROC on it | TPR@1% on it | AUROC on the generator it saw |")
    say("| --- | --- | --- | --- | --- |")
    train_source = np.array([SOURCE_NAMES.index(r.source) for r in splits["train"]])[train["record"]]
    for gone in ("stylegan1", "sd21"):
        index = SOURCE_NAMES.index(gone)
        keep = train_source != index
        unseen = (y == 0) | (source == index)
        seen = (y == 0) | ((y == 1) & (source != index))
        for label, key in (("stage statistics", "stages"), ("descriptor", "descriptors")):
            model, _ = fit_descriptor_model(train[key][keep], train["labels"][keep], train["group"][keep])
            logit = model.logits(val_stages[key])
            say(f"| {gone} | {label} | {auroc(logit[unseen], y[unseen]):.4f} | {tpr_at_fpr(logit[unseen], y[unseen], 0.01):.3f} "
                f"| {auroc(logit[seen], y[seen]):.4f} |")


def _row(scores: np.ndarray, y: np.ndarray, source: np.ndarray, condition: np.ndarray) -> str:
    by_condition = " / ".join(f"{auroc(scores[condition == c], y[condition == c]):.4f}" for c in (0, 1))
    return f"{auroc(scores, y):.4f} | {tpr_at_fpr(scores, y, 0.01):.4f} | {pair_cells(scores, y, source)} | {by_condition}"


if __name__ == "__main__":
    main()
