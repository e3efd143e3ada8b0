"""Experiment: more training faces for the grid model (extra degraded copies, mirrored copies of each train file).

Also the mirror image at inference: the grid model's logit averaged over the face and its mirror (the flipped image
with the face found again, or the aligned chip flipped: one more network pass, ~10 ms, no second face search).

Run (about 6 minutes on the shared 2-core machine, most of it computing the new copies once; cached under
``--cache-dir``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_grid_augment \
        --data ../shared/datasets/faces --weights weights/face > detectors/face/explore_grid_augment_results.md

Why: 2.7.0's strongest input is a logistic regression on 5,888 grid statistics of dlib's face network, fitted on
3,938 train faces (each file as staged and once degraded) plus validation (cross-fitted). Its C came out small
(0.003), a sign the model is short of data more than of capacity, and FFHQ vs StyleGAN v1, the pair still under the
issue's target, leans on it most (alone 0.971 on test against 0.825 for the CNN). Extra copies of the same files
(another random degradation; the file mirrored, as staged and degraded) are cheap data of the kind the shipped
augmentation already uses. Mirroring swaps the grid's left and right cells, so it also teaches the model that a
face's side carries no class.

What it measures, on the validation split only (the test split is never read): for each train set, C by grouped
5-fold AUROC on train (folds by file, so copies of a file stay together), then 2.7.0's cross-fitting with validation
(``descriptor_model.cross_fitted``: each validation fold scored by a model on train plus the other folds), and the
shipped stacker's inputs (``cnn_v2``, ``cues``, this ``net_grid``) stacked out of fold on validation, as
``stacking.compare_candidates`` does; a paired bootstrap over files against the shipped train set. Caveat: the same
validation faces chose 2.5.0-2.7.0's inputs, so a gain here is partly selection; the test split is the check.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from detectors.face.data import cache_name
from detectors.face.descriptor_model import (
    SUMMARY_INPUTS,
    TRAIN_RNG_OFFSET,
    cached_face_descriptors,
    cross_fitted,
    fit_descriptor_model,
    fit_with_c,
)
from detectors.face.explore_descriptor import (
    CACHE_DIR,
    bootstrap_diff,
    experiment_args,
    pair_cells,
    say,
    shipped_setup,
    shipped_train_descriptors,
)
from detectors.face.stacking import VAL_RNG_OFFSET, out_of_fold
from detectors.metrics import auroc, tpr_at_fpr

EXTRA_OFFSETS = (11, 13)  # further degraded copies of each train file (rng seed + offset)
MIRROR_OFFSET = 17  # the mirrored file, as staged and once degraded


def _copies(train: list[Any], seed: int, cache_dir: Path, finder: Any) -> dict[str, dict[str, np.ndarray]]:
    """The shipped train faces and each extra copy (degraded-only rows for the extra offsets)."""
    name = cache_name(seed, finder).removesuffix(".npz")
    path = cache_dir / f"descriptors_train_{name}_n{len(train)}.npz"
    out = {"shipped": shipped_train_descriptors(train, seed, finder, name)}
    for offset in EXTRA_OFFSETS:
        arrays = cached_face_descriptors(train, seed, offset, path.with_name(f"{path.stem}_off{offset}.npz"), finder)
        keep = arrays["condition"] == 1
        out[f"degraded{offset}"] = {k: v[keep] for k, v in arrays.items()}
    out["mirrored"] = cached_face_descriptors(train, seed, MIRROR_OFFSET,
                                              path.with_name(f"{path.stem}_mirror{MIRROR_OFFSET}.npz"), finder, mirror=True)
    out["flipped chips"] = cached_face_descriptors(train, seed, TRAIN_RNG_OFFSET, path.with_name(f"{path.stem}_flipchip.npz"),
                                                   finder, mirrored_chip=True)
    return out


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in ("stages", "labels", "group")}


def main() -> None:
    args = experiment_args(__doc__ or "")
    cache_dir = CACHE_DIR
    splits, finder, val, name = shipped_setup(args)
    copies = _copies(splits["train"], args.seed, cache_dir, finder)
    spec = SUMMARY_INPUTS["net_grid"]
    y, source, files = val.labels, val.source, val.record
    val_groups = np.array([splits["validation"][int(i)].group for i in val.record])
    variants = {
        "shipped (staged + 1 degraded)": ["shipped"],
        "+ 2 more degraded copies": ["shipped", *(f"degraded{o}" for o in EXTRA_OFFSETS)],
        "+ mirrored (staged + degraded)": ["shipped", "mirrored"],
        "+ both": ["shipped", *(f"degraded{o}" for o in EXTRA_OFFSETS), "mirrored"],
        "+ flipped chips of the shipped faces": ["shipped", "flipped chips"],
    }
    say("# More training faces for the grid model (validation, 5-fold out of fold)\n")
    say(f"validation: {len(y)} judged faces of {len(np.unique(files))} files; train copies: "
        + ", ".join(f"{k} {len(v['labels'])}" for k, v in copies.items()) + "\n")
    say("| train set | train faces | C | CV AUROC (train) | grid OOF AUROC | stacked OOF AUROC | stacked OOF TPR@1% | "
        "ffhq vs stylegan1 | ciplab vs sd21 | ffhq vs sd21 | ciplab vs stylegan1 | AUROC diff 95% CI |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    mirrored_val = cached_face_descriptors(splits["validation"], args.seed, VAL_RNG_OFFSET,
                                           cache_dir / f"descriptors_validation_{name}_mirror.npz", finder, mirror=True)
    flipped_val = cached_face_descriptors(splits["validation"], args.seed, VAL_RNG_OFFSET,
                                          cache_dir / f"descriptors_validation_{name}_flipchip.npz", finder,
                                          mirrored_chip=True)
    base: np.ndarray | None = None
    found: list[int] = []
    for label, parts in variants.items():
        train = _joined([copies[p] for p in parts])
        x = train["stages"][:, spec.start : spec.stop]
        _, cv = fit_descriptor_model(x, train["labels"], train["group"])
        c = float(cv["chosen_c"])
        cv_auroc = float(cv[f"cv_auroc_c{cv['chosen_c']}"])
        oof, _ = cross_fitted(x, train["labels"], val.stages[:, spec.start : spec.stop], y, val_groups,
                              partial(fit_with_c, c=c))
        grids = [(label, oof)]
        if "mirrored" in parts:
            grids.append((f"{label}, mirror averaged at inference", mirror_averaged(train, c, val, val_groups, mirrored_val,
                                                                                  found)))
        if "flipped chips" in parts:
            grids.append((f"{label}, flipped chip averaged at inference",
                          mirror_averaged(train, c, val, val_groups, flipped_val, [])))
        for row_label, grid in grids:
            stacked = out_of_fold(np.column_stack([val.columns["cnn_v2"], val.columns["cues"], grid]), y, files)
            base = stacked if base is None else base
            lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
            say(f"| {row_label} | {len(train['labels'])} | {c:g} | {cv_auroc:.4f} | {auroc(grid, y):.4f} | "
                f"{auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | {pair_cells(stacked, y, source)} | "
                f"[{lo:+.4f}, {hi:+.4f}] |")
    if found:
        say(f"\nMirror averaging: {found[0]} of {len(y)} validation faces were found again in the flipped image; the "
            "others keep their own logit.")


def mirror_averaged(train: dict[str, np.ndarray], c: float, val: Any, val_groups: np.ndarray,
                    mirrored_val: dict[str, np.ndarray], found: list[int]) -> np.ndarray:
    """Out-of-fold validation logits of the grid model (train + the other folds, as ``cross_fitted``), each face's logit
    averaged with that of the same file and condition mirrored (the face found again in the flipped image); faces
    whose mirror was not judged keep their own logit."""
    from sklearn.model_selection import GroupKFold

    spec = SUMMARY_INPUTS["net_grid"]
    x = val.stages[:, spec.start : spec.stop]
    where = {(int(r), int(cnd)): i for i, (r, cnd) in enumerate(zip(mirrored_val["record"], mirrored_val["condition"],
                                                                       strict=True))}
    partner = np.array([where.get((int(r), int(cnd)), -1) for r, cnd in zip(val.record, val.condition, strict=True)])
    mx = mirrored_val["stages"][:, spec.start : spec.stop]
    tx = train["stages"][:, spec.start : spec.stop]
    out = np.zeros(len(val.labels))
    for fit_idx, held_idx in GroupKFold(n_splits=5).split(x, val.labels, val_groups):
        model = fit_with_c(np.vstack([tx, x[fit_idx]]), np.concatenate([train["labels"], val.labels[fit_idx]]), c)
        own = model.logits(x[held_idx])
        has = partner[held_idx] >= 0
        other = own.copy()
        other[has] = model.logits(mx[partner[held_idx][has]])
        out[held_idx] = (own + other) / 2
    found.append(int((partner >= 0).sum()))
    return out


if __name__ == "__main__":
    main()
