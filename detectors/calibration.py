"""Calibration maps (raw score -> probability of AI) and thresholds (probability -> verdict).

Caveats first: calibration parameters and thresholds are fitted on a validation split that the
model never trained on; they live in the model's manifest, never in code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.contract import Verdict, WeightsCorruptError


@dataclass(frozen=True)
class PlattCalibration:
    """p = sigmoid(a * raw + b)."""

    a: float
    b: float

    def __call__(self, raw: float) -> float:
        z = self.a * raw + self.b
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)


@dataclass(frozen=True)
class IsotonicCalibration:
    """Piecewise-linear interpolation through fitted (x, y) knots, clipped at both ends."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, raw: float) -> float:
        return float(np.interp(raw, self.x, self.y))


Calibration = PlattCalibration | IsotonicCalibration


def calibration_from_dict(spec: Mapping[str, Any]) -> Calibration:
    """Build a calibration from a manifest entry. Raises WeightsCorruptError on a bad entry."""
    method = spec.get("method")
    try:
        if method == "platt":
            return PlattCalibration(a=float(spec["a"]), b=float(spec["b"]))
        if method == "isotonic":
            xs = tuple(float(v) for v in spec["x"])
            ys = tuple(float(v) for v in spec["y"])
            if len(xs) != len(ys) or len(xs) < 2:
                raise WeightsCorruptError("isotonic calibration needs >= 2 matching knots")
            return IsotonicCalibration(x=xs, y=ys)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsCorruptError(f"bad calibration entry: {exc}") from exc
    raise WeightsCorruptError(f"unknown calibration method {method!r}")


@dataclass(frozen=True)
class Thresholds:
    """Probability cut-offs: >= likely_ai is AI, <= likely_human is human, between is uncertain."""

    likely_ai: float
    likely_human: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.likely_human <= self.likely_ai <= 1.0:
            raise WeightsCorruptError("thresholds must satisfy 0 <= likely_human <= likely_ai <= 1")

    def verdict(self, probability: float) -> Verdict:
        if probability >= self.likely_ai:
            return Verdict.LIKELY_AI
        if probability <= self.likely_human:
            return Verdict.LIKELY_HUMAN
        return Verdict.UNCERTAIN


def fit_platt(raw: Sequence[float], labels: Sequence[int]) -> PlattCalibration:
    """Fit Platt scaling by Newton's method on log loss (labels 1 = AI). Pure numpy."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    a, b = 1.0, 0.0
    for _ in range(100):
        z = np.clip(a * x + b, -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        w = np.maximum(p * (1 - p), 1e-9)
        g = np.array([np.sum((p - y) * x), np.sum(p - y)])
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-8:
            break
    return PlattCalibration(a=a, b=b)
