"""Binary-detection metrics shared by every detector's evaluation (labels 1 = AI, scores higher = more AI).

Caveats first: with few negatives, TPR at 1% FPR is coarse (with 200 real photos, 1% is 2 photos);
all functions return ``nan`` when a class is missing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def threshold_at_fpr(scores: ArrayLike, labels: ArrayLike, max_fpr: float) -> float:
    """Smallest threshold t such that the share of negatives with score >= t is <= ``max_fpr``."""
    negatives = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(labels) == 0])[::-1]
    if len(negatives) == 0:
        return float("nan")
    allowed = int(np.floor(max_fpr * len(negatives)))
    if allowed >= len(negatives):
        return float(negatives[-1])
    return float(np.nextafter(negatives[allowed], np.inf))


def rates_at(scores: ArrayLike, labels: ArrayLike, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) when flagging score >= ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    tpr = float((s[y] >= threshold).mean()) if y.any() else float("nan")
    fpr = float((s[~y] >= threshold).mean()) if (~y).any() else float("nan")
    return tpr, fpr


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, max_fpr: float = 0.01) -> float:
    """Share of AI items caught at the strictest threshold keeping FPR <= ``max_fpr``."""
    threshold = threshold_at_fpr(scores, labels, max_fpr)
    if np.isnan(threshold):
        return float("nan")
    return rates_at(scores, labels, threshold)[0]
