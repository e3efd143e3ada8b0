"""SmolLM2 token-sequence CNNs: small 1-D CNNs over the LM's per-token statistics and token ids (inference side).

Caveats first: a CNN reads, for each of the first ``max_tokens`` scored tokens, log p of the observed
token, the entropy of the next-token distribution and log rank (each divided by ``CHANNEL_SCALE``), a
flag for the first ``TAIL_START`` tokens and, in variants not shipped (``EXPLORED``), a learned 16-d embedding
of the token id; the shipped variant (``VARIANTS``) reads the statistics only.
Inputs are always padded to ``max_tokens`` with zeros and token id 0, exactly as in training (the
convolutions see the padding; a shorter tensor would shift the last positions' outputs). They were
trained on the train split from the GPU run's float16 per-token files
(``detectors.text.lm.sequence_training``); the service feeds float32 values. Each logit is one more
column of the 0.3.0 stacker, so they only run on texts that take the LM path. numpy + ONNX Runtime only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.lm.stats import TAIL_START, TokenStats


@dataclass(frozen=True)
class Variant:
    """One CNN: whether it reads the statistic channels, its token-embedding size (0: none), its file."""

    stats: bool
    embed_dim: int
    file: str
    top_tokens: int = 0  # > 0: only the most frequent train tokens get an embedding; the rest share a zero one


# Stacker column (also the manifest ``files`` key) -> variant, in the stacker's column order. Shipped: the
# statistics-only CNN. Not shipped (``EXPLORED``): CNNs with a token embedding scored better on their own split but
# failed leave-news-out (the unseen 1987 Reuters newswire pushed to the AI side; ``news_transfer.py``).
VARIANTS = {"seq_cnn_stats_logit": Variant(stats=True, embed_dim=0, file="seq_cnn_stats.onnx")}
EXPLORED = {
    "seq_cnn_logit": Variant(stats=True, embed_dim=16, file="seq_cnn.onnx"),
    "seq_cnn_tokens_logit": Variant(stats=False, embed_dim=16, file="seq_cnn_tokens.onnx"),
    "seq_cnn_top_logit": Variant(stats=True, embed_dim=16, file="seq_cnn_top.onnx", top_tokens=300),
}
ALL_VARIANTS = {**EXPLORED, **VARIANTS}
CHANNEL_SCALE = 4.0
CHANNELS = 4
INPUT_NAMES = ("channels", "mask", "tokens")


def sequence_inputs(stats: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], ids: Sequence[np.ndarray],
                    max_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs for a batch: per text (log p, entropy, log rank) arrays and its token ids (same length).

    Returns ``channels`` (B, 4, max_tokens) float32, ``mask`` (B, max_tokens) float32 and ``tokens``
    (B, max_tokens) int64, zero-padded; texts longer than ``max_tokens`` are cut."""
    b = len(stats)
    channels = np.zeros((b, CHANNELS, max_tokens), dtype=np.float32)
    mask = np.zeros((b, max_tokens), dtype=np.float32)
    tokens = np.zeros((b, max_tokens), dtype=np.int64)
    for i, ((ll, entropy, logrank), tok) in enumerate(zip(stats, ids, strict=True)):
        n = min(len(ll), max_tokens)
        if len(tok) < n or len(entropy) < n or len(logrank) < n:
            raise ValueError("token ids and statistics differ in length")
        for c, values in enumerate((ll, entropy, logrank)):
            channels[i, c, :n] = np.asarray(values[:n], dtype=np.float32) / CHANNEL_SCALE
        channels[i, 3, : min(n, TAIL_START)] = 1.0
        mask[i, :n] = 1.0
        tokens[i, :n] = np.asarray(tok[:n], dtype=np.int64)
    return channels, mask, tokens


def stats_triplet(stats: TokenStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log p, entropy, log rank) of one text's ``TokenStats``, as the training files hold them."""
    return np.asarray(stats.ll), np.asarray(stats.entropy), np.log(np.asarray(stats.rank, dtype=np.float64))


class SequenceModel:
    """An exported CNN on an ONNX Runtime session; ``logits`` returns one log-odds per text. Feeds only the
    inputs the graph declares (the exporter drops an input a variant does not read)."""

    def __init__(self, path: Path, session: Any, max_tokens: int) -> None:
        self.path, self.session, self.max_tokens = path, session, max_tokens
        self.inputs = tuple(i.name for i in session.get_inputs())

    def logits(self, stats: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], ids: Sequence[np.ndarray]) -> np.ndarray:
        if not stats:
            return np.zeros(0, dtype=np.float64)
        return self.run(dict(zip(INPUT_NAMES, sequence_inputs(stats, ids, self.max_tokens), strict=True)))

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for prepared inputs (``INPUT_NAMES`` arrays, batch first)."""
        (out,) = self.session.run(None, {k: feed[k] for k in self.inputs})
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def logit(self, stats: TokenStats, ids: np.ndarray) -> float:
        return float(self.logits([stats_triplet(stats)], [np.asarray(ids)])[0])
