"""Stage 1 fitted on train + validation, with honest validation scores by cross-fitting (text 0.5.0 on).

Caveats first: before 0.5.0 the n-gram and skeleton models saw only the train split, and the validation split was
kept for what needs scores of texts the model never saw (the n-gram + skeleton combination, the length rule,
calibration, thresholds, the LM stacker). The learning curve was still rising (validation first windows, n-gram +
skeleton: 0.927 AUROC at a quarter of train, 0.939 at half, 0.946 at three quarters, 0.948 at all of it), and a
trial that added four fifths of validation to train scored the remaining fifth at 0.9519 / TPR@1%FPR 0.524 against
0.9482 / 0.474 for train alone (``detectors/text/crossfit.py``'s development run, 2026-11-29).

So validation is cut into ``FOLDS`` folds grouped by ``pair_id`` (``validation_folds``). For each fold, both models
are refitted on train plus the other folds and score the fold: every validation text gets a score from models that
never saw it or anything sharing its ``pair_id``. Those out-of-fold scores stand in for the validation scores
everywhere the train-only model's were used. The shipped models are one more fit on train plus all of validation,
folded with the combination fitted on the out-of-fold logits. Its scores are a little stronger than the out-of-fold
ones it is calibrated on (each fold model saw 4/5 of the extra texts, the shipped one all of them): the usual
cross-fitting approximation, which errs toward scores more extreme than the calibration expects. Test is untouched:
it is only reported, as before.

The penalty (``alpha``) is still chosen by ``training.choose_c`` on train-only fits scored on validation first
windows. Leave-one-out folds (``report.holdout_folds``) still refit on half of train.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.training import (
    SETTINGS,
    Combination,
    LinearFit,
    export_model,
    fit_linear,
    fit_skeleton,
    sample_weights,
    write_manifest,
)

logger = logging.getLogger(__name__)

FOLDS = 5
OOF_FILE = "stage1_oof.npz"  # out-of-fold stage-1 scores of the validation texts, beside the LM fit inputs


def validation_folds(groups: list[str]) -> np.ndarray:
    """Fold number (0 .. FOLDS-1) of each validation row, grouped by ``pair_id`` (deterministic)."""
    from sklearn.model_selection import GroupKFold

    folds = np.zeros(len(groups), dtype=np.int64)
    for k, (_, held) in enumerate(GroupKFold(FOLDS).split(np.zeros(len(groups)), groups=np.asarray(groups))):
        folds[held] = k
    return folds


@dataclass
class CrossFit:
    """The shipped stage 1 (``final``), its ``combination``, the fold models' directories and each validation row's
    fold, with the out-of-fold first-window numbers for the report."""

    final: LinearFit
    combination: Combination
    fold_dirs: list[Path]
    folds: np.ndarray
    report: dict[str, Any]


def _fit_parts(data: dict[str, Any], va_idx: np.ndarray, alpha: float) -> tuple[LinearFit, tuple[np.ndarray, float]]:
    """The n-gram model (``alpha``) and the skeleton model on train plus the validation rows ``va_idx``."""
    from scipy import sparse

    nb = SETTINGS["n_buckets"]
    rows = list(data["rows_tr"]) + [data["rows_va"][i] for i in va_idx]
    hashed = sparse.vstack([data["h_tr"], data["h_va"][va_idx]]).tocsr()
    style = np.vstack([data["s_tr"], data["s_va"][va_idx]])
    y = np.concatenate([data["y_tr"], data["y_va"][va_idx]])
    w = sample_weights(rows)
    return fit_linear(hashed[:, :nb], style, y, w, alpha), fit_skeleton(hashed[:, nb:], y, w)


def _logits(data: dict[str, Any], idx: np.ndarray, ngram: LinearFit, skeleton: tuple[np.ndarray, float]
            ) -> tuple[np.ndarray, np.ndarray]:
    nb = SETTINGS["n_buckets"]
    h = data["h_va"][idx]
    return ngram.decision(h[:, :nb], data["s_va"][idx]), np.asarray(h[:, nb:] @ skeleton[0]).ravel() + skeleton[1]


def cross_fit_stage1(data: dict[str, Any], alpha: float, work_dir: Path, manifest: dict[str, Any],
                     wordfreq: Path) -> CrossFit:
    """Fold models on train + the other validation folds (exported under ``work_dir/fold_K`` with ``manifest`` and
    ``wordfreq``, for full-text scoring), the combination on their out-of-fold first-window logits, and the final
    models on train + all of validation."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    folds = validation_folds([r.group for r in data["rows_va"]])
    y_va, w_va = data["y_va"], sample_weights(data["rows_va"])
    n = len(y_va)
    z_ngram, z_skel = np.zeros(n), np.zeros(n)
    parts = []
    for k in range(FOLDS):
        t0 = time.monotonic()
        fit_idx, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        ngram, skeleton = _fit_parts(data, fit_idx, alpha)
        z_ngram[held], z_skel[held] = _logits(data, held, ngram, skeleton)
        parts.append((ngram, skeleton))
        logger.info("cross-fit fold %d: %d + %d texts (%.0f s)", k, len(data["y_tr"]), fit_idx.size, time.monotonic() - t0)
    combination = Combination.fit(z_ngram, z_skel, y_va, w_va)
    fold_dirs = []
    for k, (ngram, skeleton) in enumerate(parts):
        d = work_dir / f"fold_{k}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copyfile(wordfreq, d / "wordfreq.npy")
        export_model(d, combination.fold(ngram, skeleton), data)
        write_manifest(d, manifest)
        fold_dirs.append(d)
    t0 = time.monotonic()
    final = combination.fold(*_fit_parts(data, np.arange(n), alpha))
    z = combination.a * z_ngram + combination.c * z_skel + combination.d
    report = {
        "folds": FOLDS, "validation_texts": n, "combination": combination.as_dict(), "final_fit_s": time.monotonic() - t0,
        "oof_val_auroc_first_window": auroc(y_va, z), "oof_val_tpr_at_1pct_fpr": tpr_at_fpr(y_va, z, 0.01),
        "oof_ngram_val_auroc_first_window": auroc(y_va, z_ngram),
        "oof_ngram_val_tpr_at_1pct_fpr": tpr_at_fpr(y_va, z_ngram, 0.01),
        "oof_skeleton_val_auroc_first_window": auroc(y_va, z_skel),
        "oof_skeleton_val_tpr_at_1pct_fpr": tpr_at_fpr(y_va, z_skel, 0.01),
    }
    logger.info("cross-fitted stage 1: out-of-fold validation first windows AUROC %.4f TPR@1%% %.4f",
                report["oof_val_auroc_first_window"], report["oof_val_tpr_at_1pct_fpr"])
    return CrossFit(final, combination, fold_dirs, folds, report)


class FoldScorer:
    """Scores validation texts with the fold model that never saw them (``detector.raw_scores`` per fold)."""

    def __init__(self, detectors: list[Any]) -> None:
        self.detectors = detectors

    def raw_scores(self, texts: list[str], folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, counts = np.full(len(texts), np.nan), np.zeros(len(texts))
        for k, detector in enumerate(self.detectors):
            idx = np.flatnonzero(folds == k)
            if idx.size:
                scores[idx], counts[idx] = detector.raw_scores([texts[i] for i in idx])
        return scores, counts


def save_oof(path: Path, ids: list[str], scores: np.ndarray, model_sha256: str, report: dict[str, Any]) -> None:
    """The validation texts' out-of-fold full-text scores, with the sha256 of the shipped model they go with (and
    ``report`` without its timings, so that a rerun writes the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {k: v for k, v in report.items() if not k.endswith("_s")}
    np.savez_compressed(path, ids=np.asarray(ids), scores=scores.astype(np.float64),
                        model_sha256=np.asarray(model_sha256), report=np.asarray(json.dumps(report, default=float)))


def load_oof(path: Path, ids: list[str], model_sha256: str) -> np.ndarray | None:
    """Out-of-fold scores for ``ids`` (validation rows) from ``path``; None when there is no file (a model trained
    before 0.5.0). Raises when the file belongs to another model or lacks one of the ids."""
    if not path.is_file():
        return None
    f = np.load(path, allow_pickle=False)
    if str(f["model_sha256"]) != model_sha256:
        raise ValueError(f"{path} holds out-of-fold scores for another model (sha256 {str(f['model_sha256'])[:12]}...)")
    return values_by_id(f["ids"], f["scores"], ids, str(path))


def values_by_id(stored_ids: np.ndarray, values: np.ndarray, ids: list[str], name: str) -> np.ndarray:
    """``values`` (float64) in the order of ``ids``, looked up in ``stored_ids``; raises when one is missing."""
    where = {str(i): k for k, i in enumerate(stored_ids)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise ValueError(f"{name} lacks {len(missing)} of the ids asked for, e.g. {missing[0]}")
    return np.asarray(values, dtype=np.float64)[[where[i] for i in ids]]
