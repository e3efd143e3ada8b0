"""The ensemble on top of the CNN: a logistic model on the engineered cues and a logistic stacker.

Caveats first: pure numpy; the parameters live in the manifest's ``extra.ensemble``. The raw score is
the stacker's logit (higher = more likely AI); the manifest's calibration maps it to a probability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Ensemble:
    """raw = s0 * cnn_logit + s1 * cue_logit + s2, with cue_logit = w . standardised(cues) + b."""

    cue_mean: np.ndarray
    cue_scale: np.ndarray
    cue_coef: np.ndarray
    cue_intercept: float
    stack_coef: tuple[float, float]
    stack_intercept: float

    def cue_logits(self, cues: np.ndarray) -> np.ndarray:
        standard = (np.atleast_2d(cues) - self.cue_mean) / self.cue_scale
        return np.asarray(standard @ self.cue_coef + self.cue_intercept, dtype=np.float64)

    def raw_scores(self, cnn_logits: np.ndarray, cues: np.ndarray) -> np.ndarray:
        """Stacked logits for N faces: ``cnn_logits`` (N,), ``cues`` (N, C)."""
        cue = self.cue_logits(cues)
        cnn = np.asarray(cnn_logits, dtype=np.float64)
        return self.stack_coef[0] * cnn + self.stack_coef[1] * cue + self.stack_intercept

    def to_dict(self) -> dict[str, Any]:
        return {
            "cue_mean": [float(v) for v in self.cue_mean],
            "cue_scale": [float(v) for v in self.cue_scale],
            "cue_coef": [float(v) for v in self.cue_coef],
            "cue_intercept": float(self.cue_intercept),
            "stack_coef": [float(v) for v in self.stack_coef],
            "stack_intercept": float(self.stack_intercept),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Ensemble:
        """Raises KeyError / ValueError on a malformed entry."""
        coef = [float(v) for v in spec["stack_coef"]]
        if len(coef) != 2:
            raise ValueError("stack_coef needs 2 values")
        return cls(
            cue_mean=np.array(spec["cue_mean"], dtype=np.float64),
            cue_scale=np.array(spec["cue_scale"], dtype=np.float64),
            cue_coef=np.array(spec["cue_coef"], dtype=np.float64),
            cue_intercept=float(spec["cue_intercept"]),
            stack_coef=(coef[0], coef[1]),
            stack_intercept=float(spec["stack_intercept"]),
        )


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))
