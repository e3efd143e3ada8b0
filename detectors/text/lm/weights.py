"""Llama hyperparameters and float32 weights read from a GGUF file (shared by numpy and torch).

Caveats first: llama.cpp's converter stores the query/key projections permuted for its
"interleaved pairs" RoPE; both forward passes here apply RoPE to adjacent pairs on those weights
as stored, which gives the same attention scores as Hugging Face's half-split layout. Output and
input embeddings are tied when the file has no ``output.weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.text.lm.gguf import GGUFError, GGUFFile


@dataclass(frozen=True)
class LlamaConfig:
    """The hyperparameters the forward pass needs (from ``<arch>.*`` GGUF metadata)."""

    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    rope_base: float
    rms_eps: float
    context_length: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_metadata(cls, meta: dict[str, object]) -> LlamaConfig:
        arch = str(meta.get("general.architecture", ""))
        if arch != "llama":
            raise GGUFError(f"architecture {arch!r} is not llama")

        def num(key: str) -> float:
            value = meta[f"llama.{key}"]
            if not isinstance(value, int | float):
                raise GGUFError(f"llama.{key} is not a number")
            return float(value)

        tokens = meta.get("tokenizer.ggml.tokens")
        vocab = int(num("vocab_size")) if "llama.vocab_size" in meta else len(tokens) if isinstance(tokens, list) else 0
        return cls(
            n_layers=int(num("block_count")),
            d_model=int(num("embedding_length")),
            d_ff=int(num("feed_forward_length")),
            n_heads=int(num("attention.head_count")),
            n_kv_heads=int(num("attention.head_count_kv")),
            vocab_size=vocab,
            rope_base=num("rope.freq_base") if "llama.rope.freq_base" in meta else 10000.0,
            rms_eps=num("attention.layer_norm_rms_epsilon"),
            context_length=int(num("context_length")),
        )


@dataclass(frozen=True)
class LayerWeights:
    """One block; projections as ``(in_features, out_features)`` so that ``y = x @ w``."""

    attn_norm: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    ffn_norm: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray


@dataclass(frozen=True)
class LlamaWeights:
    """All weights in float32: ``embedding`` (vocab, d_model); ``output`` (d_model, vocab), maybe tied."""

    config: LlamaConfig
    embedding: np.ndarray
    layers: tuple[LayerWeights, ...]
    output_norm: np.ndarray
    output: np.ndarray


def _linear(f: GGUFFile, name: str) -> np.ndarray:
    return np.ascontiguousarray(f.tensor(name).T)


def load_llama(path: Path | str) -> LlamaWeights:
    """Read and dequantise a llama-architecture GGUF. Raises GGUFError or KeyError (missing tensor)."""
    f = GGUFFile(path)
    cfg = LlamaConfig.from_metadata(f.metadata)
    layers = tuple(
        LayerWeights(
            attn_norm=f.tensor(f"blk.{i}.attn_norm.weight"),
            wq=_linear(f, f"blk.{i}.attn_q.weight"),
            wk=_linear(f, f"blk.{i}.attn_k.weight"),
            wv=_linear(f, f"blk.{i}.attn_v.weight"),
            wo=_linear(f, f"blk.{i}.attn_output.weight"),
            ffn_norm=f.tensor(f"blk.{i}.ffn_norm.weight"),
            w_gate=_linear(f, f"blk.{i}.ffn_gate.weight"),
            w_up=_linear(f, f"blk.{i}.ffn_up.weight"),
            w_down=_linear(f, f"blk.{i}.ffn_down.weight"),
        )
        for i in range(cfg.n_layers)
    )
    embedding = f.tensor("token_embd.weight")
    output = _linear(f, "output.weight") if "output.weight" in f.tensors else np.ascontiguousarray(embedding.T)
    if embedding.shape != (cfg.vocab_size, cfg.d_model):
        raise GGUFError(f"token_embd.weight has shape {embedding.shape}, expected {(cfg.vocab_size, cfg.d_model)}")
    return LlamaWeights(cfg, embedding, layers, f.tensor("output_norm.weight"), output)


def rope_tables(cfg: LlamaConfig, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin, each ``(n_positions, head_dim // 2)`` float32, for adjacent-pair RoPE."""
    inv_freq = cfg.rope_base ** (-np.arange(0, cfg.head_dim, 2, dtype=np.float64) / cfg.head_dim)
    angles = np.arange(n_positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
