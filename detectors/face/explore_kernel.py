"""Exploration (not adopted): a kernel model of the face network's grid statistics as a stacker input beside the
logistic one.

Caveats first: the idea came from a first look at a few RBF settings on the 2.6.0 validation faces, so validation
numbers here carry selection; the test split is the check, and it said no. Like the logistic model of the same 5,888
values (``descriptor_model``, ``grid_lr.npz``), the kernel model learns these two generators, not synthesis in general.

The model: standardise, project on the first ``dim`` principal components (whitened), then an RBF support-vector
machine; ``logit = sum_i dual_i * exp(-gamma * |z - sv_i|^2) + intercept``. The standardisation and the projection are
folded into one matrix and offset (``z = x @ projection + offset``), stored as float32 with the support vectors (about
4 MB at 128 components); numpy inference, under a millisecond per face. Settings (dim, C, gamma) by grouped 5-fold
cross-validation on train (``fit_kernel_model``); validation logits cross-fitted on train + the other validation
folds (``descriptor_model.cross_fitted``), as face 2.7.0's logistic side models are.

Results (2026-11-29, ``explore_kernel_results.md``):
- Validation, out of fold, against 2.7.0's stacker (``main``): kernel model alone 0.9726 against the logistic model's
  0.9630; as a fourth input 0.9770 -> 0.9820 (paired file-bootstrap 95% CI +0.0014 to +0.0088), FFHQ vs StyleGAN v1
  0.9656 -> 0.9730.
- Test (a development version of ``stacking.py`` with this model as the side input ``net_grid_kernel`` and the
  candidate ``v2+cues+grid+kernel``, which ``bylinecheck train faces`` then chose; the integration is not kept, its
  diff is described in the results file): overall AUROC 0.9832 -> 0.9830 (paired 95% CI of the difference -0.0040 to
  +0.0033), FFHQ vs StyleGAN v1 0.9710 -> 0.9714 (-0.0060 to +0.0069), TPR@1%FPR 0.846 -> 0.871 (-0.12 to +0.06), FPR at
  ``likely_ai`` 0.003 -> 0.006; the CI subset's 64 images 0.998 -> 0.993. No gain for 4 MB and a second model: not
  adopted.

Run: ``nice -n 19 .venv/bin/python -m detectors.face.explore_kernel --data ../shared/datasets/faces --weights
weights/face`` (arrays cached under ``/tmp/face_cache`` by ``explore_grid_sizes``; a few minutes once cached).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIMS = (128, 256)
C_GRID = (1.0, 3.0, 10.0)
GAMMA_SCALES = (0.5, 1.0, 2.0)  # gamma = scale / dim: whitened components have unit variance
FOLDS = 5


@dataclass(frozen=True)
class KernelModel:
    """``x`` (N, D) -> (N,) logits, higher = AI."""

    projection: np.ndarray  # (D, dim) float32: standardisation and whitened PCA folded together
    offset: np.ndarray  # (dim,) float32
    support: np.ndarray  # (n_sv, dim) float32
    dual: np.ndarray  # (n_sv,) float32
    intercept: float
    gamma: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != self.projection.shape[0] or not np.all(np.isfinite(x)):
            raise ValueError(f"expected finite rows of {self.projection.shape[0]} values")
        z = x @ self.projection.astype(np.float64) + self.offset.astype(np.float64)
        sv = self.support.astype(np.float64)
        sq = (z * z).sum(axis=1)[:, None] - 2.0 * z @ sv.T + (sv * sv).sum(axis=1)[None, :]
        return np.asarray(np.exp(-self.gamma * np.maximum(sq, 0.0)) @ self.dual.astype(np.float64) + self.intercept,
                          dtype=np.float64)

    def save(self, path: Path) -> None:
        np.savez(path, projection=self.projection, offset=self.offset, support=self.support, dual=self.dual,
                 intercept=np.array(self.intercept), gamma=np.array(self.gamma))

    @classmethod
    def load(cls, path: Path, dim: int) -> KernelModel:
        """A model of ``dim`` inputs; raises OSError / KeyError / ValueError on an unreadable or malformed file."""
        with np.load(path, allow_pickle=False) as data:
            projection, offset = np.asarray(data["projection"], np.float32), np.asarray(data["offset"], np.float32)
            support, dual = np.asarray(data["support"], np.float32), np.asarray(data["dual"], np.float32)
            intercept, gamma = float(data["intercept"]), float(data["gamma"])
        k = offset.shape[0] if offset.ndim == 1 else -1
        if projection.shape != (dim, k) or support.ndim != 2 or support.shape[1] != k or dual.shape != (support.shape[0],):
            raise ValueError("malformed kernel model")
        finite = all(np.all(np.isfinite(a)) for a in (projection, offset, support, dual))
        if not (gamma > 0 and np.isfinite(intercept) and finite):
            raise ValueError("malformed kernel model")
        return cls(projection, offset, support, dual, intercept, gamma)


def _projection(x: np.ndarray, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation and whitened PCA to ``dim`` components, folded: ``z = x @ projection + offset`` equals
    ``PCA(whiten=True).transform((x - mean) / scale)``."""
    from sklearn.decomposition import PCA

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    pca = PCA(dim, whiten=True, random_state=seed).fit((x - mean) / scale)
    whiten = np.sqrt(pca.explained_variance_)
    projection = (pca.components_ / scale[None, :]).T / whiten[None, :]
    offset = -((mean / scale + pca.mean_) @ pca.components_.T) / whiten
    return projection.astype(np.float32), offset.astype(np.float32)


def _model(projection: np.ndarray, offset: np.ndarray, x: np.ndarray, labels: np.ndarray, c: float,
           gamma: float) -> KernelModel:
    from sklearn.svm import SVC

    z = x @ projection.astype(np.float64) + offset.astype(np.float64)
    svm = SVC(C=c, gamma=gamma).fit(z, labels)
    return KernelModel(projection, offset, svm.support_vectors_.astype(np.float32), svm.dual_coef_[0].astype(np.float32),
                       float(svm.intercept_[0]), gamma)


def fit_with(x: np.ndarray, labels: np.ndarray, dim: int, c: float, gamma_scale: float) -> KernelModel:
    """Standardise, whitened PCA to ``dim`` components, RBF SVM (C ``c``, gamma ``gamma_scale / dim``)."""
    projection, offset = _projection(x, dim)
    return _model(projection, offset, x, labels, c, gamma_scale / dim)


def fit_kernel_model(x: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                     dims: tuple[int, ...] = DIMS) -> tuple[KernelModel, dict[str, float]]:
    """(dim from ``dims``, C, gamma) by grouped 5-fold cross-validated AUROC on ``x`` (ties: the earlier, smaller
    setting), then one fit on all of it. Returns the model and each setting's cross-validated AUROC."""
    from sklearn.model_selection import GroupKFold

    from detectors.metrics import auroc

    values: dict[tuple[int, float, float], list[float]] = {}
    for a, b in GroupKFold(n_splits=FOLDS).split(x, labels, groups):
        for dim in dims:
            projection, offset = _projection(x[a], dim)
            for c, g in itertools.product(C_GRID, GAMMA_SCALES):
                model = _model(projection, offset, x[a], labels[a], c, g / dim)
                values.setdefault((dim, c, g), []).append(auroc(model.logits(x[b]), labels[b]))
    scores = {k: float(np.mean(v)) for k, v in values.items()}
    best = max(scores, key=lambda k: scores[k])
    summary: dict[str, float] = {"chosen_dim": best[0], "chosen_c": best[1], "chosen_gamma_scale": best[2],
                                 **{f"cv_auroc_dim{d}_c{c:g}_g{g:g}": v for (d, c, g), v in scores.items()}}
    return fit_with(x, labels, *best), summary


def main() -> None:
    """The validation comparison: 2.7.0's stacker inputs (v2 CNN, cues, cross-fitted logistic grid model) with and
    without the cross-fitted kernel model, 5-fold grouped out-of-fold stacking."""
    from detectors.face.data import list_records, split_records
    from detectors.face.descriptor_model import TRAIN_RNG_OFFSET, cross_fitted, fit_with_c
    from detectors.face.explore_descriptor import experiment_args, pair_cells, say, stacked_row
    from detectors.face.explore_grid_sizes import arrays
    from detectors.face.stacking import VAL_RNG_OFFSET, out_of_fold
    from detectors.metrics import auroc, tpr_at_fpr

    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    train = arrays(splits["train"], args.seed, TRAIN_RNG_OFFSET, args.weights, "train")
    val = arrays(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    y, source, files = val["meta"][:, 0], val["meta"][:, 1], val["meta"][:, 2]
    groups = np.array([splits["validation"][int(i)].group for i in files])
    train_x, val_x = train["grid2"].astype(np.float64), val["grid2"].astype(np.float64)
    train_y, train_groups = train["meta"][:, 0], train["meta"][:, 4]
    linear, _ = cross_fitted(train_x, train_y, val_x, y, groups, lambda a, b: fit_with_c(a, b, 0.003))
    _, summary = fit_kernel_model(train_x, train_y, train_groups)
    setting = (int(summary["chosen_dim"]), float(summary["chosen_c"]), float(summary["chosen_gamma_scale"]))
    kernel, _ = cross_fitted(train_x, train_y, val_x, y, groups, lambda a, b: fit_with(a, b, *setting))
    base = out_of_fold(np.column_stack([val["cnn_v2"], val["cue_logit"], linear]), y, files)
    say(f"settings by grouped CV on train: dim {setting[0]}, C {setting[1]}, gamma {setting[2]} / dim "
        f"(CV AUROC {max(v for k, v in summary.items() if k.startswith('cv_auroc')):.4f})\n")
    say(f"alone, out of fold: logistic {auroc(linear, y):.4f}, kernel {auroc(kernel, y):.4f}\n")
    say("| stacker inputs | OOF AUROC | OOF TPR@1% | ffhq vs stylegan1 | ciplab vs sd21 | ffhq vs sd21 | ciplab vs stylegan1 "
        "| AUROC diff 95% CI |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    say(f"| cnn_v2, cues, net_grid (2.7.0) | {auroc(base, y):.4f} | {tpr_at_fpr(base, y, 0.01):.4f} | "
        f"{pair_cells(base, y, source)} | - |")
    for label, cols in (("+ kernel", [val["cnn_v2"], val["cue_logit"], linear, kernel]),
                        ("kernel in place of net_grid", [val["cnn_v2"], val["cue_logit"], kernel])):
        say(stacked_row(label, cols, base, y, files, source, args.seed)[1] + " |")


if __name__ == "__main__":
    main()
