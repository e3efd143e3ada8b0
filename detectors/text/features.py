"""Deterministic featurisation (numpy only): hashed word 1-2-grams, char 3-5-grams, stylometry.

Caveats first: hashes are crc32 (words) and FNV-1a (characters) with a murmur finaliser, never
Python's randomised ``hash``, so features are identical across processes and machines. Text is
lower-cased, digits are folded to ``0`` and whitespace runs to one space before hashing, so layout
(paragraph breaks, wire-service indentation) and numbers are not features. The stylometric features
use a word log-frequency table fitted on the training split only (``wordfreq.npy``).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

from detectors.text.normalise import sentence_spans

MASK32 = np.uint64(0xFFFFFFFF)
FREQ_BUCKETS = 1 << 18
CHAR_NGRAMS = (3, 4, 5)
STYLE_NAMES = (
    "log_mean_sentence_words",
    "sentence_length_cv",
    "mattr50",
    "mean_word_logfreq",
    "std_word_logfreq",
    "rare_word_share",
    "commas_per_word",
    "mean_word_chars",
    "stopword_share",
)
N_STYLE = len(STYLE_NAMES)

STOPWORDS = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "is",
        "it",
        "that",
        "was",
        "for",
        "on",
        "are",
        "as",
        "with",
        "he",
        "she",
        "they",
        "be",
        "at",
        "by",
        "this",
        "had",
        "not",
        "but",
        "from",
        "or",
        "have",
        "an",
        "were",
        "which",
        "you",
        "his",
        "her",
        "their",
        "we",
        "there",
        "been",
        "has",
        "would",
        "will",
        "its",
        "one",
        "all",
        "can",
        "if",
        "more",
        "when",
        "who",
        "so",
        "what",
        "no",
        "out",
        "up",
        "about",
        "into",
        "than",
        "them",
        "then",
        "these",
        "some",
        "could",
        "do",
        "my",
        "me",
        "him",
        "our",
        "also",
        "only",
        "other",
        "any",
        "may",
        "after",
        "over",
        "such",
        "most",
        "did",
        "should",
        "i",
        "your",
        "how",
        "where",
        "those",
        "just",
        "because",
        "very",
        "being",
        "while",
        "both",
        "each",
        "through",
        "between",
        "does",
        "before",
        "under",
        "again",
        "why",
        "here",
        "off",
        "same",
        "few",
        "own",
        "until",
        "against",
    ]
)

_TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_DIGIT_RE = re.compile(r"\d")
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class Features:
    """Sparse hashed features (``indices`` unique, ``values`` l2-normalised per block) + dense style."""

    indices: np.ndarray  # int64 [nnz]
    values: np.ndarray  # float32 [nnz]
    style: np.ndarray  # float32 [N_STYLE]


def fmix32(h: np.ndarray) -> np.ndarray:
    """Murmur3 32-bit finaliser on a uint64 array holding 32-bit values."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & MASK32
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & MASK32
    return h ^ (h >> np.uint64(16))


def canonical(text: str) -> str:
    """Lower-case, digits folded to 0, whitespace runs collapsed."""
    return _SPACE_RE.sub(" ", _DIGIT_RE.sub("0", text.lower())).strip()


def crc_hashes(tokens: list[str]) -> np.ndarray:
    return np.fromiter((zlib.crc32(t.encode("utf-8")) for t in tokens), dtype=np.uint64, count=len(tokens))


def word_hashes(canon: str) -> np.ndarray:
    """32-bit hashes of word/punctuation unigrams and bigrams."""
    h = crc_hashes(_TOKEN_RE.findall(canon))
    uni = fmix32(h ^ np.uint64(0x51))
    bi = fmix32(((h[:-1] * np.uint64(0x9E3779B1)) & MASK32) ^ h[1:] ^ np.uint64(0x52)) if h.size > 1 else h[:0]
    return np.concatenate([uni, bi])


def char_hashes(canon: str) -> np.ndarray:
    """32-bit FNV-1a hashes of character 3-, 4- and 5-grams (text padded with one space each side)."""
    cp = np.frombuffer((" " + canon + " ").encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts = [fmix32(h) for h in (_fnv_ngrams(cp, n) for n in CHAR_NGRAMS) if h.size]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def _fnv_ngrams(cp: np.ndarray, n: int) -> np.ndarray:
    """32-bit FNV-1a (seeded with ``n``) of every ``n``-gram of the code points ``cp`` (empty when too short)."""
    count = cp.size - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.full(count, 2166136261 ^ n, dtype=np.uint64)
    for k in range(n):
        h = ((h ^ cp[k : k + count]) * np.uint64(16777619)) & MASK32
    return h


def _block(hashes: np.ndarray, offset: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucketed counts -> sublinear tf -> l2-normalised block at ``[offset, offset + size)``."""
    if hashes.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx, counts = np.unique((hashes % np.uint64(size)).astype(np.int64), return_counts=True)
    val = 1.0 + np.log(counts.astype(np.float64))
    val /= np.sqrt(np.sum(val * val)) * np.sqrt(2.0)
    return idx + offset, val.astype(np.float32)


def hashed_features(canon: str, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Word block in the first quarter of the buckets, character block in the rest."""
    word_size = n_buckets // 4
    wi, wv = _block(word_hashes(canon), 0, word_size)
    ci, cv = _block(char_hashes(canon), word_size, n_buckets - word_size)
    return np.concatenate([wi, ci]), np.concatenate([wv, cv])


def freq_buckets(words: list[str]) -> np.ndarray:
    return (crc_hashes(words) % np.uint64(FREQ_BUCKETS)).astype(np.int64)


def _mattr(tokens: list[str], window: int = 50) -> float:
    if len(tokens) <= window:
        return len(set(tokens)) / max(len(tokens), 1)
    step = max(1, (len(tokens) - window) // 20)
    ratios = [len(set(tokens[i : i + window])) / window for i in range(0, len(tokens) - window + 1, step)]
    return sum(ratios) / len(ratios)


def style_features(canon: str, logfreq: np.ndarray, rare_logfreq: float) -> np.ndarray:
    """The ``STYLE_NAMES`` features of a canonical text (floats, finite). Plain Python where arrays are tiny."""
    tokens = _WORD_RE.findall(canon)
    out = np.zeros(N_STYLE, dtype=np.float32)
    if not tokens:
        return out
    lengths = [n for s, e in sentence_spans(canon) if (n := len(_WORD_RE.findall(canon[s:e]))) > 0] or [len(tokens)]
    mean_len = sum(lengths) / len(lengths)
    lf = logfreq[freq_buckets(tokens)].astype(np.float64)
    out[0] = math.log1p(mean_len)
    out[1] = math.sqrt(sum((n - mean_len) ** 2 for n in lengths) / len(lengths)) / mean_len if len(lengths) > 1 else 0.0
    out[2] = _mattr(tokens)
    out[3] = lf.mean()
    out[4] = lf.std()
    out[5] = np.count_nonzero(lf <= rare_logfreq) / lf.size
    out[6] = canon.count(",") / len(tokens)
    out[7] = sum(map(len, tokens)) / len(tokens)
    out[8] = sum(t in STOPWORDS for t in tokens) / len(tokens)
    return out


def featurise(text: str, n_buckets: int, logfreq: np.ndarray, rare_logfreq: float) -> Features:
    """All features of one (already Unicode-normalised) text."""
    canon = canonical(text)
    idx, val = hashed_features(canon, n_buckets)
    return Features(idx, val, style_features(canon, logfreq, rare_logfreq))


def english_evidence(text: str) -> tuple[float, float]:
    """(share of Latin letters among letters, share of English stopwords among words)."""
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if c.isascii() or "a" <= c.lower() <= "z" or "\u00c0" <= c <= "\u024f")
    tokens = _WORD_RE.findall(text.lower())
    stop = sum(t in STOPWORDS for t in tokens) / len(tokens) if tokens else 0.0
    return latin / max(len(letters), 1), stop


def pad_batch(rows: list[Features]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack features into padded ``[B, K]`` index/value arrays (padding: index 0, value 0) and style."""
    width = max((f.indices.size for f in rows), default=1) or 1
    idx = np.zeros((len(rows), width), dtype=np.int64)
    val = np.zeros((len(rows), width), dtype=np.float32)
    for r, f in enumerate(rows):
        idx[r, : f.indices.size] = f.indices
        val[r, : f.values.size] = f.values
    style = np.stack([f.style for f in rows]) if rows else np.zeros((0, N_STYLE), dtype=np.float32)
    return idx, val, style.astype(np.float32)


def _row_keys_words(canons: list[str], word_size: int, n_buckets: int) -> np.ndarray:
    """``row * n_buckets + bucket`` keys of every word 1-2-gram of every row (same hashes as ``word_hashes``)."""
    tokens = [_TOKEN_RE.findall(c) for c in canons]
    rows = np.repeat(np.arange(len(canons), dtype=np.uint64), [len(t) for t in tokens])
    h = crc_hashes([tok for row in tokens for tok in row])
    uni = fmix32(h ^ np.uint64(0x51))
    same = rows[:-1] == rows[1:]
    bi = fmix32(((h[:-1][same] * np.uint64(0x9E3779B1)) & MASK32) ^ h[1:][same] ^ np.uint64(0x52))
    hashes = np.concatenate([uni, bi])
    owner = np.concatenate([rows, rows[:-1][same]])
    return (owner * np.uint64(n_buckets) + hashes % np.uint64(word_size)).astype(np.int64)


def _row_keys_chars(canons: list[str], word_size: int, n_buckets: int) -> np.ndarray:
    """Keys of every character 3-5-gram of every row (same hashes as ``char_hashes``); NUL separates rows."""
    joined = "\x00".join(" " + c + " " for c in canons)
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    is_sep = cp == 0
    seps = np.concatenate([[0], np.cumsum(is_sep)])  # seps[i] = separators before position i
    char_size = np.uint64(n_buckets - word_size)
    parts = []
    for n in CHAR_NGRAMS:
        h = _fnv_ngrams(cp, n)
        count = h.size
        if count == 0:
            continue
        valid = seps[n : n + count] == seps[:count]
        owner = seps[:count][valid].astype(np.uint64)
        parts.append(owner * np.uint64(n_buckets) + np.uint64(word_size) + fmix32(h[valid]) % char_size)
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def featurise_many(texts: list[str], n_buckets: int, logfreq: np.ndarray, rare_logfreq: float) -> list[Features]:
    """``featurise`` for many texts at once (vectorised hashing); the same features up to float rounding."""
    canons = [canonical(t) for t in texts]
    if not canons or any("\x00" in c for c in canons):
        return [featurise(t, n_buckets, logfreq, rare_logfreq) for t in texts]
    word_size = n_buckets // 4
    keys = np.concatenate([_row_keys_words(canons, word_size, n_buckets), _row_keys_chars(canons, word_size, n_buckets)])
    uniq, counts = np.unique(keys, return_counts=True)
    owner, bucket = uniq // n_buckets, uniq % n_buckets
    block = owner * 2 + (bucket >= word_size)
    val = 1.0 + np.log(counts.astype(np.float64))
    norms = np.sqrt(np.bincount(block, weights=val * val, minlength=2 * len(canons)))
    val = (val / (norms[block] * np.sqrt(2.0))).astype(np.float32)
    bounds = np.searchsorted(owner, np.arange(len(canons) + 1))
    return [
        Features(bucket[a:b], val[a:b], style_features(c, logfreq, rare_logfreq))
        for c, a, b in zip(canons, bounds[:-1], bounds[1:], strict=True)
    ]
