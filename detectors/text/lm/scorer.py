"""Per-text SmolLM2 features on the service path: tokenizer + numpy forward + ``stats``.

Caveats first: the text should already be Unicode-normalised (``detectors.text.normalise``), as
the training features were; only its first ``max_tokens`` tokens are scored. Cost on one CPU core
is roughly linear in ``max_tokens`` (see GPU_RUN.md for measured times). ``torch_device`` (e.g.
``"cuda:0"``) runs the same forward pass with PyTorch there (float32, full-precision matmuls, as the
training features were computed); the default ``None`` is the CPU path: numpy (``runtime="numpy"``, the
default) or the same float32 pass in ONNX Runtime (``runtime="onnx"``: features within ~5e-6 of numpy, ~23% less
CPU, ~0.95 GB more resident memory per process; benchmarks/NOTES.md, round 11).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.lm.gguf import GGUFFile
from detectors.text.lm.numpy_model import NumpyLlama
from detectors.text.lm.onnx_model import OnnxLlama
from detectors.text.lm.stats import TokenStats, context_ids, text_features, token_stats
from detectors.text.lm.tokenizer import build_tokenizer
from detectors.text.lm.weights import load_llama

CPU_RUNTIMES = ("numpy", "onnx")


class LMScorer:
    """``features(text)`` -> ``stats.FEATURE_NAMES`` vector (float32)."""

    def __init__(self, gguf_path: Path | str, max_tokens: int = 256, torch_device: str | None = None,
                 runtime: str = "numpy") -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if runtime not in CPU_RUNTIMES:
            raise ValueError(f"runtime must be one of {CPU_RUNTIMES}")
        self.max_tokens = max_tokens
        self.tokenizer = build_tokenizer(GGUFFile(gguf_path).metadata)
        weights = load_llama(gguf_path)
        self.torch_device = torch_device
        self.torch_model: Any = None
        if torch_device is not None:
            from detectors.text.lm.torch_model import TorchLlama

            self.torch_model = TorchLlama(weights, torch_device, "float32", "float32")
            self.torch_model.torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would move the features
        self.runtime = runtime
        self.model: NumpyLlama | OnnxLlama = (
            OnnxLlama(weights, positions=max_tokens + 1) if runtime == "onnx" and torch_device is None
            else NumpyLlama(weights))

    def token_ids(self, text: str) -> np.ndarray:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids[: self.max_tokens]
        return np.asarray(ids, dtype=np.int64)

    def stats_from_ids(self, ids: np.ndarray) -> TokenStats:
        """Per-token statistics of the first ``max_tokens`` of ``ids`` (empty for no tokens)."""
        x = context_ids(ids, self.max_tokens)
        if x.size < 2:
            return token_stats(np.zeros((0, self.model.config.vocab_size)), x[1:])
        if self.torch_model is not None:
            from detectors.text.lm.torch_model import torch_token_stats

            tokens = x[1:][None, :]
            (stats,) = torch_token_stats(self.torch_model, tokens, np.array([tokens.shape[1]]))
            return stats
        return token_stats(self.model.logits(x[:-1]), x[1:])

    def features_from_ids(self, ids: np.ndarray) -> np.ndarray:
        return text_features(self.stats_from_ids(ids))

    def features(self, text: str) -> np.ndarray:
        return self.features_from_ids(self.token_ids(text))
