"""Calibration fitting shared by detectors and ensembles: Platt scaling, thresholds at a target FPR,
and a logistic-regression stacker over member scores. Pure numpy.

Caveats first: thresholds are chosen on the rows given (no held-out split is made here: hand the
command a calibration split the models never trained on). With few human rows an FPR of 1 % can
only be met by putting the threshold above every human score; the manifest records the FPR reached
and the number of rows so that the reader can judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.calibration import PlattCalibration


@dataclass(frozen=True)
class ThresholdChoice:
    likely_ai: float
    likely_human: float
    fpr: float
    tpr: float
    fnr_at_likely_human: float


def choose_thresholds(probs: Sequence[float], labels: Sequence[int], target_fpr: float = 0.01,
                      target_fnr: float = 0.01) -> ThresholdChoice:
    """``likely_ai``: the smallest probability cut with FPR <= ``target_fpr`` on the human rows;
    ``likely_human``: the largest cut (not above it) with FNR <= ``target_fnr`` on the AI rows."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    human, ai = p[y == 0], p[y == 1]
    if len(human) == 0 or len(ai) == 0:
        raise ValueError("calibration needs both human and ai rows")
    candidates = np.unique(np.clip(np.concatenate([p, [np.nextafter(human.max(), 2.0)]]), 0.0, 1.0))
    meeting = [float(t) for t in candidates if np.mean(human >= t) <= target_fpr]
    likely_ai = min(meeting) if meeting else 1.0  # ties at 1.0: the FPR reached says the target was missed
    below = [float(t) for t in np.unique(np.concatenate([[0.0], p])) if t <= likely_ai and np.mean(ai <= t) <= target_fnr]
    likely_human = max(below) if below else 0.0
    return ThresholdChoice(likely_ai=likely_ai, likely_human=min(likely_human, likely_ai),
                           fpr=float(np.mean(human >= likely_ai)), tpr=float(np.mean(ai >= likely_ai)),
                           fnr_at_likely_human=float(np.mean(ai <= likely_human)))


def fit_platt_smoothed(raw: Sequence[float], labels: Sequence[int]) -> PlattCalibration:
    """Platt scaling with Platt's (1999) smoothed targets, ``(n_ai + 1) / (n_ai + 2)`` and ``1 / (n_human + 2)``,
    so that separable data do not drive the slope to infinity (and every probability to exactly 0 or 1)."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n_ai, n_human = int((y == 1).sum()), int((y == 0).sum())
    t = np.where(y == 1, (n_ai + 1) / (n_ai + 2), 1 / (n_human + 2))
    a, b = 0.0, float(np.log((n_ai + 1) / (n_human + 1)))
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * x + b, -30, 30)))
        w = np.maximum(p * (1 - p), 1e-12)
        g = np.array([np.sum((p - t) * x), np.sum(p - t)])
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return PlattCalibration(a=a, b=b)


def expected_calibration_error(probs: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by their share of rows."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[index == b].mean() - p[index == b].mean()) * np.mean(index == b)
                     for b in range(bins) if np.any(index == b)))


@dataclass(frozen=True)
class Stacker:
    """``p = sigmoid(bias + sum w_i * (x_i - mean_i) / scale_i)``; a missing member score counts as its mean."""

    members: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]

    def logit(self, scores: Mapping[str, float | None]) -> float:
        z = self.bias
        for name, w, mu, sd in zip(self.members, self.weights, self.means, self.scales, strict=True):
            value = scores.get(name)
            if value is not None:
                z += w * (value - mu) / sd
        return float(z)

    def probability(self, scores: Mapping[str, float | None]) -> float:
        return float(1.0 / (1.0 + np.exp(-np.clip(self.logit(scores), -30, 30))))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "logistic-regression", "members": list(self.members), "weights": list(self.weights),
                "bias": self.bias, "means": list(self.means), "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stacker:
        return cls(members=tuple(str(m) for m in data["members"]), weights=tuple(float(w) for w in data["weights"]),
                   bias=float(data["bias"]), means=tuple(float(v) for v in data["means"]),
                   scales=tuple(float(v) for v in data["scales"]))


def fit_stacker(members: Sequence[str], rows: Sequence[Mapping[str, float | None]], labels: Sequence[int],
                l2: float = 1.0) -> Stacker:
    """L2-regularised logistic regression on standardised member scores (Newton's method)."""
    x = np.array([[np.nan if r.get(m) is None else float(r[m]) for m in members] for r in rows], dtype=np.float64)  # type: ignore[arg-type]
    y = np.asarray(labels, dtype=np.float64)
    seen = ~np.isnan(x)
    empty = [m for j, m in enumerate(members) if not seen[:, j].any()]
    if empty:
        raise ValueError(f"members without a single score: {empty}")
    means = np.array([x[seen[:, j], j].mean() for j in range(x.shape[1])])
    scales = np.array([x[seen[:, j], j].std() for j in range(x.shape[1])])
    scales[scales < 1e-9] = 1.0
    z = np.nan_to_num((x - means) / scales)
    design = np.hstack([np.ones((len(z), 1)), z])
    beta = np.zeros(design.shape[1])
    penalty = l2 * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        grad = design.T @ (p - y) + penalty @ beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return Stacker(members=tuple(members), weights=tuple(float(b) for b in beta[1:]), bias=float(beta[0]),
                   means=tuple(float(m) for m in means), scales=tuple(float(s) for s in scales))
