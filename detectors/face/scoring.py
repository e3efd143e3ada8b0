"""The ensemble on top of the CNN: boosted trees on the engineered cues and a logistic stacker.

Caveats first: pure numpy at inference. The trees (fitted with scikit-learn's
HistGradientBoostingClassifier at training time) are stored as flat arrays in ``cue_trees.npz``
beside the model, listed with its sha256 in the manifest; the stacker's inputs, coefficients and
intercept live in the manifest's ``extra.ensemble``. The raw score is the stacker's logit (higher = more likely AI); the
manifest's calibration maps it to a probability. Cues must be finite (NaN is treated as 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

V1_INPUTS = ("cnn", "cues")
STACK_INPUTS = ("cnn", "cnn_v2", "cues", "descriptor", "net_stages", "net_grid")
_TREE_FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "roots")


@dataclass(frozen=True)
class CueTrees:
    """Flat boosted-tree ensemble: node arrays for all trees, ``roots`` = first node of each tree.

    A sample goes left when ``cues[feature] <= threshold``; the logit is ``baseline`` plus the sum
    of the reached leaves' values.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float
    depth: int

    def logits(self, cues: np.ndarray) -> np.ndarray:
        """Boosted-tree logits for (N, C) cues."""
        x = np.nan_to_num(np.atleast_2d(np.asarray(cues, dtype=np.float64)))
        nodes = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[nodes]] <= self.threshold[nodes]
            step = np.where(go_left, self.left[nodes], self.right[nodes])
            nodes = np.where(self.leaf[nodes], nodes, step)
        return np.asarray(self.value[nodes].sum(axis=1) + self.baseline, dtype=np.float64)

    @classmethod
    def from_sklearn(cls, model: Any) -> CueTrees:
        """Flatten a fitted binary HistGradientBoostingClassifier (numerical features only)."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _TREE_FIELDS}
        offset, depth = 0, 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            parts["feature"].append(nodes["feature_idx"].astype(np.int64))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["left"].append(nodes["left"].astype(np.int64) + offset)
            parts["right"].append(nodes["right"].astype(np.int64) + offset)
            parts["leaf"].append(nodes["is_leaf"].astype(bool))
            parts["value"].append(nodes["value"].astype(np.float64))
            parts["roots"].append(np.array([offset], dtype=np.int64))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        return cls(**arrays, baseline=baseline, depth=depth)

    def save(self, path: Path) -> None:
        arrays = {name: getattr(self, name) for name in _TREE_FIELDS}
        np.savez(path, baseline=np.array(self.baseline), depth=np.array(self.depth), **arrays)

    @classmethod
    def load(cls, path: Path) -> CueTrees:
        """Raises OSError / KeyError / ValueError on an unreadable or malformed file."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in _TREE_FIELDS}
            return cls(**arrays, baseline=float(data["baseline"]), depth=int(data["depth"]))


@dataclass(frozen=True)
class Ensemble:
    """raw = sum_i stack_coef[i] * logit[inputs[i]] + stack_intercept.

    ``inputs`` names the stacked logits: ``cnn`` (v1's 96 px CNN), ``cnn_v2`` (v2's 128 px CNN), ``cues`` (the
    boosted trees on the engineered cues), ``descriptor`` (a logistic regression on dlib's face descriptor) and
    ``net_stages`` (one on the stage statistics of dlib's descriptor network, 2.5.0 on) and ``net_grid`` (one on the
    same statistics per cell of a 2 x 2 grid, 2.6.0 on).
    1.0.0 manifests have no ``inputs``: ("cnn", "cues").
    """

    trees: CueTrees
    stack_coef: tuple[float, ...]
    stack_intercept: float
    inputs: tuple[str, ...] = V1_INPUTS

    def cue_logits(self, cues: np.ndarray) -> np.ndarray:
        return self.trees.logits(cues)

    def combine(self, cnn_logits: Mapping[str, np.ndarray], cues: np.ndarray) -> np.ndarray:
        """Stacked logits for N faces: ``cnn_logits`` maps each input other than ``cues`` (the CNNs, the
        descriptor model) to (N,) logits, ``cues`` is (N, C)."""
        columns = {name: np.asarray(value, dtype=np.float64) for name, value in cnn_logits.items()}
        if "cues" in self.inputs:
            columns["cues"] = self.cue_logits(cues)
        total = np.full(len(np.atleast_2d(cues)), self.stack_intercept, dtype=np.float64)
        for coef, name in zip(self.stack_coef, self.inputs, strict=True):
            total = total + coef * columns[name]
        return total

    def raw_scores(self, cnn_logits: np.ndarray, cues: np.ndarray) -> np.ndarray:
        """Stacked logits for N faces from v1's CNN logits (N,) and cues (N, C) (``inputs`` = cnn, cues)."""
        return self.combine({"cnn": cnn_logits}, cues)

    def stacker_dict(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "stack_coef": [float(v) for v in self.stack_coef],
            "stack_intercept": float(self.stack_intercept),
        }


def parse_stacker(spec: Mapping[str, Any]) -> tuple[tuple[float, ...], float, tuple[str, ...]]:
    """(stack_coef, stack_intercept, inputs) from a manifest entry; raises KeyError / ValueError when malformed."""
    inputs = tuple(str(v) for v in spec.get("inputs", V1_INPUTS))
    unknown = set(inputs) - set(STACK_INPUTS)
    if unknown or not inputs:
        raise ValueError(f"unknown or no stacker inputs {sorted(unknown)}")
    coef = tuple(float(v) for v in spec["stack_coef"])
    if len(coef) != len(inputs):
        raise ValueError(f"stack_coef needs {len(inputs)} values")
    return coef, float(spec["stack_intercept"]), inputs


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))
