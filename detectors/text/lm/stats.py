"""Per-token likelihood statistics and the per-text features built from them (numpy).

Caveats first: position ``t`` of the logits predicts token ``t + 1``; the context starts with
``<|endoftext|>`` (``CONTEXT_ID``) so the text's first token is scored too. Ranks count the tokens
with a strictly higher logit (rank 1 = the model's top choice; ties favour the observed token).
Features are computed on the first ``n`` tokens of a text only; ``*_from32`` features skip the first
32 scored tokens (little context there; in the Bao et al. data, the human prefix of AI texts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONTEXT_ID = 0  # <|endoftext|>: SmolLM2's document separator
TAIL_START = 32
FEATURE_NAMES = (
    "n_tokens",
    "ll_mean",
    "ll_std",
    "ll_p10",
    "ll_p50",
    "entropy_mean",
    "entropy_std",
    "fastdetect",
    "logrank_mean",
    "top1_share",
    "top10_share",
    "lrr",
    "ll_over_entropy",
    "ll_mean_from32",
    "fastdetect_from32",
)


@dataclass(frozen=True)
class TokenStats:
    """Per scored token: log-prob of the observed token, entropy and variance of log p, rank (>= 1)."""

    ll: np.ndarray
    entropy: np.ndarray
    variance: np.ndarray
    rank: np.ndarray


STATS_ROWS = 16  # token rows per pass: ~6 MB float64 temporaries instead of ~100 MB at 256 x 49,152


def token_stats(logits: np.ndarray, targets: np.ndarray) -> TokenStats:
    """Statistics for ``logits`` (T, vocab) predicting ``targets`` (T,).

    The shift by the row maximum and the exponential run in the logits' dtype (float32 on the service path:
    about a third of the float64 cost); the sums, the log-normaliser and everything after are float64. Against an
    all-float64 pass the statistics move by ~1e-6 (log p) and ~1e-7 (entropy, variance) on SmolLM2's logits, far
    below the ~1e-3 between the GPU features the stacker was fitted on and this path (GPU_RUN.md).

    Computed ``STATS_ROWS`` rows at a time: every statistic is a per-row reduction, so the values are
    bit-identical to one pass over the whole array, while the temporaries stay in cache (one pass over 256 x
    49,152 logits allocated and touched ~100 MB per temporary; about 1.5-2.5x the CPU time)."""
    n = targets.size
    ll, entropy, variance, rank = (np.empty(n, dtype=np.float64) for _ in range(4))
    for start in range(0, n, STATS_ROWS):
        part = slice(start, min(n, start + STATS_ROWS))
        block, wanted = logits[part], targets[part]
        z = block - block.max(axis=-1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=-1, keepdims=True, dtype=np.float64)
        logp = z.astype(np.float64)
        logp -= np.log(total)
        p = e.astype(np.float64)
        p /= total
        p *= logp  # p log p, in place
        row_entropy = -p.sum(axis=-1)
        p *= logp  # p (log p)^2
        second = p.sum(axis=-1)
        rows = np.arange(wanted.size)
        observed = block[rows, wanted]
        ll[part] = logp[rows, wanted]
        entropy[part] = row_entropy
        variance[part] = np.maximum(second - row_entropy * row_entropy, 0.0)
        rank[part] = 1 + np.count_nonzero(block > observed[:, None], axis=-1)
    return TokenStats(ll, entropy, variance, rank)


def _fastdetect(ll: np.ndarray, entropy: np.ndarray, variance: np.ndarray) -> float:
    """Fast-DetectGPT analytic discrepancy: (sum log p(x) - sum E[log p]) / sqrt(sum Var[log p])."""
    if ll.size == 0:
        return float("nan")
    return float((ll.sum() + entropy.sum()) / np.sqrt(max(variance.sum(), 1e-12)))


def text_features(s: TokenStats) -> np.ndarray:
    """The ``FEATURE_NAMES`` vector (float32) for one text's token statistics (NaN where undefined)."""
    ll, ent, var, rank = (np.asarray(a, dtype=np.float64) for a in (s.ll, s.entropy, s.variance, s.rank))
    n = ll.size
    if n == 0:
        out = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
        out[0] = 0.0
        return out
    logrank = np.log(rank)
    ll_mean, ent_mean, lr_mean = ll.mean(), ent.mean(), logrank.mean()
    tail = slice(TAIL_START, None)
    values = [
        n,
        ll_mean,
        ll.std(),
        np.percentile(ll, 10),
        np.median(ll),
        ent_mean,
        ent.std(),
        _fastdetect(ll, ent, var),
        lr_mean,
        np.mean(rank <= 1),
        np.mean(rank <= 10),
        -ll_mean / lr_mean if lr_mean > 0 else np.nan,
        -ll_mean / ent_mean if ent_mean > 0 else np.nan,
        ll[tail].mean() if n > TAIL_START else np.nan,
        _fastdetect(ll[tail], ent[tail], var[tail]) if n > TAIL_START else np.nan,
    ]
    return np.asarray(values, dtype=np.float32)


def context_ids(token_ids: np.ndarray, n: int) -> np.ndarray:
    """``[CONTEXT_ID] + first n token ids``: the model input whose logits score those ``n`` tokens."""
    ids = np.asarray(token_ids, dtype=np.int64)[:n]
    return np.concatenate([np.array([CONTEXT_ID], dtype=np.int64), ids])
