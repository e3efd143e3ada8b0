"""A stacker input from dlib's 128-d face descriptor: a logistic regression fitted on the train split's faces.

Caveats first: the descriptor is an identity embedding (dlib's face-recognition network), so this input learns
where each *known* generator's faces sit in identity space, not a generic "synthetic" cue. Measured on
validation (``detectors/face/explore_descriptor_results.md``): as a third stacker input it raised out-of-fold
AUROC from 0.920 to 0.963 (FFHQ vs StyleGAN v1 0.867 -> 0.943), but a descriptor model trained without one
generator scored only 0.55 (StyleGAN v1 unseen) and 0.62 (SD 2.1 unseen) on it; expect little from it on new
generators. It barely tells the two real sources apart (0.53), but identity space also holds age, sex and
ancestry, and this data has no labels to check the rate of false alarms per group: the model card says so.
Costs nothing at inference beyond the descriptor the service computes for reuse search (~10 ms per face).

Since 2.5.0 the same class also holds the model of the descriptor network's stage statistics (``stages_lr.npz``,
input ``net_stages``; ``detectors/face/explore_stages_results.md``), which the stacker reads in place of this one;
since 2.6.0 also one of the same statistics in each cell of a 2 x 2 grid (``grid_lr.npz``, input ``net_grid``). Both
read a slice of the network summary that ``FaceNet.describe`` returns (``SUMMARY_INPUTS``).

Inference is numpy: ``logit = ((d - mean) / scale) @ coef + intercept``; the four arrays live in
``descriptor_lr.npz`` (or ``stages_lr.npz``) beside the model, listed with its sha256 in the manifest. Training
(scikit-learn) fits a standardised L2 logistic regression with C chosen by grouped cross-validated AUROC on train;
from 2.7.0 the shipped models are refitted at that C on train + validation (``cross_fitted``), and the stacker, its
calibration and thresholds read out-of-fold validation logits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from detectors.face.data import Record, judged_faces
from detectors.face.embedding import STAGES_DIM, SUMMARY_DIM
from detectors.face.finding import FaceEmbedder, FaceFinder
from detectors.face.pipeline import V2_CROP

logger = logging.getLogger(__name__)

DESCRIPTOR_FILE = "descriptor_lr.npz"
DESCRIPTOR_DIM = 128
# The same kind of model on the descriptor network's stage statistics (2.5.0 on; embedding.stage_features).
STAGES_FILE = "stages_lr.npz"
STAGES_ROLE = "stages_model"  # its role in the manifest's files
GRID_FILE = "grid_lr.npz"  # 2.6.0 on: the model of the stage statistics per cell of a 2 x 2 grid
GRID_ROLE = "grid_model"
TRAIN_RNG_OFFSET = 7  # the train faces' one degraded copy (build_cache uses +1, validation +2)
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
FOLDS = 5


@dataclass(frozen=True)
class SummaryInput:
    """A stacker input that is a model of a slice ``[start, stop)`` of the network summary, and its file."""

    role: str
    file: str
    start: int
    stop: int
    title: str

    @property
    def dim(self) -> int:
        return self.stop - self.start


SUMMARY_INPUTS = {
    "net_stages": SummaryInput(STAGES_ROLE, STAGES_FILE, 0, STAGES_DIM, "stage-statistics"),
    "net_grid": SummaryInput(GRID_ROLE, GRID_FILE, STAGES_DIM, SUMMARY_DIM, "grid-statistics"),
}


@dataclass(frozen=True)
class DescriptorModel:
    """Standardised logistic regression on the 128-d descriptor: (N, 128) -> (N,) logits (higher = AI); or on a slice
    of the network summary (``SUMMARY_INPUTS``), loaded with that slice's ``dim``."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logits(self, descriptors: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(descriptors, dtype=np.float64))
        if x.shape[1] != self.mean.shape[0] or not np.all(np.isfinite(x)):
            raise ValueError(f"expected finite rows of {self.mean.shape[0]} values")
        return np.asarray(((x - self.mean) / self.scale) @ self.coef + self.intercept, dtype=np.float64)

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, coef=self.coef, intercept=np.array(self.intercept))

    @classmethod
    def load(cls, path: Path, dim: int = DESCRIPTOR_DIM) -> DescriptorModel:
        """A model of ``dim`` inputs; raises OSError / KeyError / ValueError on an unreadable or malformed file."""
        with np.load(path, allow_pickle=False) as data:
            arrays = [np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
            intercept = float(data["intercept"])
        if any(a.shape != (dim,) for a in arrays) or not np.all(arrays[1] > 0):
            raise ValueError("malformed descriptor model")
        mean, scale, coef = arrays
        return cls(mean=mean, scale=scale, coef=coef, intercept=intercept)


def face_descriptors(records: list[Record], seed: int, rng_offset: int,
                     finder: FaceFinder | None = None, mirror: bool = False,
                     mirrored_chip: bool = False) -> dict[str, np.ndarray]:
    """Per judged face of each file as staged and once degraded (rng ``seed + rng_offset``), as
    ``stacking.validation_logits`` finds them: the descriptor and the network summary (stage statistics, then the
    grid's) on the pixels and landmarks the detector uses, the label, the record's index and its group (for grouped
    folds). ``mirror`` flips each file before the face is found (the mirror image, found again); ``mirrored_chip``
    describes the aligned chip flipped instead (the same faces, in the same order, as without it)."""
    embedder = FaceEmbedder()
    groups = {g: i for i, g in enumerate(sorted({r.group for r in records}))}
    desc, stages, meta = [], [], []
    for judged in judged_faces(records, np.random.default_rng(seed + rng_offset), V2_CROP, "descriptors", finder, mirror):
        descriptor, statistics = embedder.describe(judged.pixels, judged.face.landmarks, mirrored_chip)
        desc.append(np.asarray(descriptor, dtype=np.float64))
        stages.append(statistics)
        meta.append((judged.record.label, judged.index, groups[judged.record.group], judged.condition))
    m = np.array(meta, dtype=np.int64)
    return {"descriptors": np.stack(desc), "stages": np.stack(stages), "labels": m[:, 0], "record": m[:, 1],
            "group": m[:, 2], "condition": m[:, 3]}


def cached_face_descriptors(records: list[Record], seed: int, rng_offset: int, cache_path: Path,
                            finder: FaceFinder | None = None, mirror: bool = False,
                            mirrored_chip: bool = False) -> dict[str, np.ndarray]:
    """:func:`face_descriptors`, cached at ``cache_path`` (the caller puts the finder's settings in the name; a cache
    written before the whole network summary existed is recomputed)."""
    if cache_path.is_file():
        with np.load(cache_path) as data:
            if "stages" in data.files and data["stages"].shape[1] == SUMMARY_DIM:
                return {k: data[k] for k in data.files}
    arrays = face_descriptors(records, seed, rng_offset, finder, mirror, mirrored_chip)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache_path, **arrays)  # type: ignore[arg-type]
    return arrays


def fit_descriptor_model(
    descriptors: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[DescriptorModel, dict[str, float]]:
    """Standardised L2 logistic regression on ``descriptors`` (the descriptors, or the stage statistics), C from
    ``C_GRID`` by grouped 5-fold AUROC (ties: the smaller C). Returns the model and each C's cross-validated AUROC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores: dict[str, float] = {}
    for c in C_GRID:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        scores[str(c)] = float(np.mean(cross_val_score(model, descriptors, labels, groups=groups,
                                                       cv=GroupKFold(n_splits=FOLDS), scoring="roc_auc")))
    best = max(C_GRID, key=lambda c: scores[str(c)])
    return fit_with_c(descriptors, labels, best), {"chosen_c": best, **{f"cv_auroc_c{c}": v for c, v in scores.items()}}


def fit_with_c(x: np.ndarray, labels: np.ndarray, c: float) -> DescriptorModel:
    """The standardised L2 logistic regression of ``fit_descriptor_model`` at a given C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    fitted = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), labels)
    return DescriptorModel(mean=np.asarray(scaler.mean_, dtype=np.float64), scale=np.asarray(scaler.scale_, dtype=np.float64),
                           coef=np.asarray(fitted.coef_[0], dtype=np.float64), intercept=float(fitted.intercept_[0]))


class _Scores(Protocol):
    def logits(self, x: np.ndarray) -> np.ndarray: ...


ModelT = TypeVar("ModelT", bound=_Scores)


def cross_fitted(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, val_groups: np.ndarray,
                 fit: Callable[[np.ndarray, np.ndarray], ModelT]) -> tuple[np.ndarray, ModelT]:
    """Fit on train + validation with honest validation logits (face 2.7.0 on): each of ``FOLDS`` validation folds
    (grouped by ``val_groups``: a file, or an SD prompt) is scored by ``fit(x, y)`` on train plus the other folds;
    returns those out-of-fold logits and ``fit`` on train plus all of validation. ``fit`` is the shipped side models'
    ``fit_with_c`` at the C chosen on train (or an exploration's model, ``explore_kernel``)."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(val_y))
    for fit_idx, held_idx in GroupKFold(n_splits=FOLDS).split(val_x, val_y, val_groups):
        model = fit(np.vstack([train_x, val_x[fit_idx]]), np.concatenate([train_y, val_y[fit_idx]]))
        oof[held_idx] = model.logits(val_x[held_idx])
    return oof, fit(np.vstack([train_x, val_x]), np.concatenate([train_y, val_y]))
