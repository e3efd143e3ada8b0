"""The cascade's front score (text 0.6.0 on): the n-gram logit and the fine-tuned encoder's logit in one.

``f = a * clip(z, -40, 40) + b * e + c`` (a logistic regression on validation, ``fit_front``), where ``z`` is the
n-gram + skeleton stage's document logit and ``e`` the encoder's mean window logit
(``detectors.text.encoder.runtime``). A covered text gets both (about 7 ms + 24 ms per window of CPU; in auto mode texts
under the n-gram gate skip the encoder, ``detectors.text.stacking.choose_gate``). ``f`` then
takes the place the n-gram logit had before 0.6.0: its own calibration and thresholds (``BYLINECHECK_TEXT_LM=off``
serves them), the cascade band (texts whose front probability falls in it also run SmolLM2) and the stacker's
first column. Sentence span probabilities still come from the n-gram model alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.calibration import Calibration, Thresholds, calibration_from_dict
from detectors.contract import WeightsCorruptError

Z_CLIP = 40.0


@dataclass(frozen=True)
class Front:
    """``extra.front`` of the text manifest."""

    a: float
    b: float
    c: float
    calibration: Calibration
    thresholds: Thresholds

    @classmethod
    def from_extra(cls, spec: Mapping[str, Any]) -> Front:
        """Raises WeightsCorruptError on a malformed entry."""
        try:
            t = spec["thresholds"]
            return cls(float(spec["a"]), float(spec["b"]), float(spec["c"]), calibration_from_dict(spec["calibration"]),
                       Thresholds(float(t["likely_ai"]), float(t["likely_human"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsCorruptError(f"bad extra.front entry: {exc}") from exc

    def score(self, z: float, e: float) -> float:
        return self.a * float(np.clip(z, -Z_CLIP, Z_CLIP)) + self.b * float(e) + self.c


def front_scores(params: Mapping[str, float], z: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``Front.score`` over arrays (training side)."""
    return np.asarray(params["a"] * np.clip(z, -Z_CLIP, Z_CLIP) + params["b"] * e + params["c"], dtype=np.float64)


def fit_front(z: np.ndarray, e: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Standardised L2 logistic regression (C=1) of ``y`` on (clipped ``z``, ``e``), folded to raw-scale a, b, c."""
    from sklearn.linear_model import LogisticRegression

    x = np.column_stack([np.clip(z, -Z_CLIP, Z_CLIP), e])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=5000).fit((x - mean) / std, y, sample_weight=w)
    coef = model.coef_.ravel() / std
    return {"a": float(coef[0]), "b": float(coef[1]), "c": float(model.intercept_[0] - coef @ mean)}


def cross_fit_front(z: np.ndarray, e: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray,
                    folds: int = 5) -> np.ndarray:
    """Out-of-fold front scores (``folds`` folds grouped by ``groups``, deterministic)."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for fit_i, held_i in GroupKFold(folds).split(z, y, groups):
        oof[held_i] = front_scores(fit_front(z[fit_i], e[fit_i], y[fit_i], w[fit_i]), z[held_i], e[held_i])
    return oof
