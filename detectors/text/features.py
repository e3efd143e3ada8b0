"""Deterministic featurisation (numpy only): hashed word 1-2-grams, char 3-5-grams, stylometry.

Caveats first: hashes are crc32 (words) and FNV-1a (characters) with a murmur finaliser, never
Python's randomised ``hash``, so features are identical across processes and machines. Text is
lower-cased, digits are folded to ``0`` and whitespace runs to one space before hashing, so layout
(paragraph breaks, wire-service indentation) and numbers are not features. The stylometric features
use a word log-frequency table fitted on the training split only (``wordfreq.npy``). The detector builds a
text's window and sentence rows with ``featurise_spans``, which hashes each sentence once and slices the
rows out of the whole text's hashes: the same indices and values as ``featurise_many``, bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from detectors.text.hashing import MASK32, crc_hashes, fmix32
from detectors.text.normalise import sentence_ends, sentence_spans
from detectors.text.skeleton import ORDERS as SKELETON_ORDERS
from detectors.text.skeleton import ngram_hashes as skeleton_ngram_hashes
from detectors.text.skeleton import skeleton_hashes
from detectors.text.skeleton import token_hashes as skeleton_token_hashes
from detectors.text.stopwords import STOPWORDS

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

_TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_DIGIT_RE = re.compile(r"\d")
_ASCII_NON_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())


@dataclass(frozen=True)
class Features:
    """Sparse hashed features (``indices`` unique, ``values`` l2-normalised per block) + dense style."""

    indices: np.ndarray  # int64 [nnz]
    values: np.ndarray  # float32 [nnz]
    style: np.ndarray  # float32 [N_STYLE]


def canonical(text: str) -> str:
    """Lower-case, digits folded to 0, whitespace runs collapsed to one space, ends stripped. (``str.split``
    and regex ``\\s`` agree on every code point, so this equals ``re.sub(r"\\s+", " ", ...).strip()``.)"""
    return " ".join(_DIGIT_RE.sub("0", text.lower()).split())


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


def hashed_features(canon: str, n_buckets: int, skeleton_buckets: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Word block in the first quarter of ``n_buckets``, character block in the rest; with ``skeleton_buckets``, the
    skeleton block (:mod:`detectors.text.skeleton`) in ``[n_buckets, n_buckets + skeleton_buckets)``."""
    word_size = n_buckets // 4
    wi, wv = _block(word_hashes(canon), 0, word_size)
    ci, cv = _block(char_hashes(canon), word_size, n_buckets - word_size)
    if not skeleton_buckets:
        return np.concatenate([wi, ci]), np.concatenate([wv, cv])
    si, sv = _block(skeleton_hashes(_TOKEN_RE.findall(canon)), n_buckets, skeleton_buckets)
    return np.concatenate([wi, ci, si]), np.concatenate([wv, cv, sv])


def freq_buckets(words: list[str]) -> np.ndarray:
    return (crc_hashes(words) % np.uint64(FREQ_BUCKETS)).astype(np.int64)


def _mattr(tokens: list[str], window: int = 50) -> float:
    if len(tokens) <= window:
        return len(set(tokens)) / max(len(tokens), 1)
    step = max(1, (len(tokens) - window) // 20)
    ratios = [len(set(tokens[i : i + window])) / window for i in range(0, len(tokens) - window + 1, step)]
    return sum(ratios) / len(ratios)


def _sentence_length_style(lengths: list[int]) -> tuple[float, float]:
    """Style features 0 and 1 from the word counts of a text's sentences (all > 0): log1p of their mean, and
    their coefficient of variation (0 for a single sentence)."""
    mean_len = sum(lengths) / len(lengths)
    spread = math.sqrt(sum((n - mean_len) ** 2 for n in lengths) / len(lengths)) / mean_len if len(lengths) > 1 else 0.0
    return math.log1p(mean_len), spread


def style_features(canon: str, logfreq: np.ndarray, rare_logfreq: float) -> np.ndarray:
    """The ``STYLE_NAMES`` features of a canonical text (floats, finite). Plain Python where arrays are tiny."""
    tokens = _WORD_RE.findall(canon)
    out = np.zeros(N_STYLE, dtype=np.float32)
    if not tokens:
        return out
    lengths = [n for s, e in sentence_spans(canon) if (n := len(_WORD_RE.findall(canon[s:e]))) > 0] or [len(tokens)]
    lf = logfreq[freq_buckets(tokens)].astype(np.float64)
    out[0], out[1] = _sentence_length_style(lengths)
    out[2] = _mattr(tokens)
    out[3] = lf.mean()
    out[4] = lf.std()
    out[5] = np.count_nonzero(lf <= rare_logfreq) / lf.size
    out[6] = canon.count(",") / len(tokens)
    out[7] = sum(map(len, tokens)) / len(tokens)
    out[8] = sum(t in STOPWORDS for t in tokens) / len(tokens)
    return out


def featurise(text: str, n_buckets: int, logfreq: np.ndarray, rare_logfreq: float, skeleton_buckets: int = 0) -> Features:
    """All features of one (already Unicode-normalised) text."""
    canon = canonical(text)
    idx, val = hashed_features(canon, n_buckets, skeleton_buckets)
    return Features(idx, val, style_features(canon, logfreq, rare_logfreq))


def english_evidence(text: str) -> tuple[float, float]:
    """(share of Latin letters among letters, share of English stopwords among words)."""
    if text.isascii():  # every letter is Latin: count them without a Python loop
        n_letters = latin = len(text.encode("ascii").translate(None, _ASCII_NON_LETTERS))
    else:
        letters = [c for c in text if c.isalpha()]
        n_letters = len(letters)
        latin = sum(1 for c in letters if c.isascii() or "a" <= c.lower() <= "z" or "\u00c0" <= c <= "\u024f")
    tokens = _WORD_RE.findall(text.lower())
    stop = sum(t in STOPWORDS for t in tokens) / len(tokens) if tokens else 0.0
    return latin / max(n_letters, 1), stop


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


def _row_keys_words(tokens: list[list[str]], word_size: int, stride: int) -> np.ndarray:
    """``row * stride + bucket`` keys of every word 1-2-gram of every row (same hashes as ``word_hashes``)."""
    rows = np.repeat(np.arange(len(tokens), dtype=np.uint64), [len(t) for t in tokens])
    h = crc_hashes([tok for row in tokens for tok in row])
    uni = fmix32(h ^ np.uint64(0x51))
    same = rows[:-1] == rows[1:]
    bi = fmix32(((h[:-1][same] * np.uint64(0x9E3779B1)) & MASK32) ^ h[1:][same] ^ np.uint64(0x52))
    hashes = np.concatenate([uni, bi])
    owner = np.concatenate([rows, rows[:-1][same]])
    return (owner * np.uint64(stride) + hashes % np.uint64(word_size)).astype(np.int64)


def _row_keys_skeleton(tokens: list[list[str]], n_buckets: int, skeleton_buckets: int, stride: int) -> np.ndarray:
    """Keys of every skeleton 1-4-gram of every row (same hashes as ``skeleton.skeleton_hashes``)."""
    rows = np.repeat(np.arange(len(tokens), dtype=np.uint64), [len(t) for t in tokens])
    h = skeleton_token_hashes([tok for row in tokens for tok in row])
    parts = []
    for n in SKELETON_ORDERS:
        g = skeleton_ngram_hashes(h, n)
        inside = rows[: g.size] == rows[n - 1 : n - 1 + g.size]
        parts.append(rows[: g.size][inside] * np.uint64(stride) + np.uint64(n_buckets)
                     + g[inside] % np.uint64(skeleton_buckets))
    return np.concatenate(parts).astype(np.int64)


def _row_keys_chars(canons: list[str], word_size: int, n_buckets: int, stride: int) -> np.ndarray:
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
        parts.append(owner * np.uint64(stride) + np.uint64(word_size) + fmix32(h[valid]) % char_size)
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def featurise_many(texts: list[str], n_buckets: int, logfreq: np.ndarray, rare_logfreq: float,
                   skeleton_buckets: int = 0) -> list[Features]:
    """``featurise`` for many texts at once (vectorised hashing); the same features up to float rounding."""
    canons = [canonical(t) for t in texts]
    if not canons or any("\x00" in c for c in canons):
        return [featurise(t, n_buckets, logfreq, rare_logfreq, skeleton_buckets) for t in texts]
    word_size, stride = n_buckets // 4, n_buckets + skeleton_buckets
    tokens = [_TOKEN_RE.findall(c) for c in canons]
    parts = [_row_keys_words(tokens, word_size, stride), _row_keys_chars(canons, word_size, n_buckets, stride)]
    if skeleton_buckets:
        parts.append(_row_keys_skeleton(tokens, n_buckets, skeleton_buckets, stride))
    uniq, counts = np.unique(np.concatenate(parts), return_counts=True)
    owner, bucket = uniq // stride, uniq % stride
    block = owner * 3 + (bucket >= word_size) + (bucket >= n_buckets)
    val = 1.0 + np.log(counts.astype(np.float64))
    norms = np.sqrt(np.bincount(block, weights=val * val, minlength=3 * len(canons)))
    val = (val / (norms[block] * np.sqrt(2.0))).astype(np.float32)
    bounds = np.searchsorted(owner, np.arange(len(canons) + 1))
    return [
        Features(bucket[a:b], val[a:b], style_features(c, logfreq, rare_logfreq))
        for c, a, b in zip(canons, bounds[:-1], bounds[1:], strict=True)
    ]


def featurise_spans(
    text: str,
    spans: list[tuple[int, int]],
    rows: list[tuple[int, int]],
    n_buckets: int,
    logfreq: np.ndarray,
    rare_logfreq: float,
    skeleton_buckets: int = 0,
) -> list[Features]:
    """``featurise_many`` of ``text[spans[a][0]:spans[b - 1][1]]`` for each ``(a, b)`` of ``rows`` (runs of
    the sentences ``spans = sentence_spans(text)``), the same features, computed once per sentence.

    The canonical form of a run of sentences is their canonical forms joined by one space, and no token,
    sentence-ending mark or word crosses that space, so every row's tokens, words, character n-grams and
    sentence cuts are slices of those of the canonical sentences joined into one document. That is
    checked (the whole ``text`` must canonicalise to that document, spans ordered and apart); otherwise,
    and for text holding NUL, this calls ``featurise_many``. Counting and normalisation are
    ``featurise_many``'s, in the same order, so indices and values are bit-identical to it.
    """
    if text.isascii():  # lower-casing and digit folding are per character: fold the whole text once
        folded = _DIGIT_RE.sub("0", text.lower())
        canons = [" ".join(folded[s:e].split()) for s, e in spans]
        whole = " ".join(folded.split())
    else:
        canons = [canonical(text[s:e]) for s, e in spans]
        whole = canonical(text)
    doc = " ".join(canons)
    valid = all(0 <= a < b <= len(spans) for a, b in rows) and all(s < e for s, e in spans)
    if (
        not rows
        or not valid
        or any(e >= s for (_, e), (s, _) in zip(spans, spans[1:], strict=False))
        or "\x00" in doc
        or doc != whole
    ):
        texts = [text[spans[a][0] : spans[b - 1][1]] for a, b in rows]
        return featurise_many(texts, n_buckets, logfreq, rare_logfreq, skeleton_buckets)
    sizes = np.array([len(c) for c in canons], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(sizes + 1)[:-1]]).astype(np.int64)  # offset of each sentence in doc
    toks = [_TOKEN_RE.findall(c) for c in canons]
    words = [_WORD_RE.findall(c) for c in canons]
    first = np.array([a for a, _ in rows], dtype=np.int64)
    last = np.array([b for _, b in rows], dtype=np.int64)
    tok_at = np.concatenate([[0], np.cumsum([len(t) for t in toks])]).astype(np.int64)
    row_doc = (start[first], start[last - 1] + sizes[last - 1])  # [p, q) of each row in doc
    keys = _doc_keys(doc, [t for ts in toks for t in ts], (tok_at[first], tok_at[last]), row_doc, n_buckets,
                     skeleton_buckets)
    style = _doc_style(doc, canons, words, start, rows, logfreq, rare_logfreq)
    return _rows_from_keys(keys, len(rows), n_buckets, skeleton_buckets, list(style))


def _doc_keys(
    doc: str,
    tokens: list[str],
    row_tokens: tuple[np.ndarray, np.ndarray],
    row_doc: tuple[np.ndarray, np.ndarray],
    n_buckets: int,
    skeleton_buckets: int = 0,
) -> np.ndarray:
    """``row * stride + bucket`` (``stride = n_buckets + skeleton_buckets``) of every word 1-2-gram, character 3-5-gram
    and skeleton 1-4-gram of every row, from the hashes of the whole document: row ``r`` holds tokens
    ``[t0[r], t1[r])`` and padded characters ``[p[r], q[r] + 2)`` of ``" " + doc + " "`` (same hashes as
    ``word_hashes``, ``char_hashes`` and ``skeleton.skeleton_hashes``)."""
    word_size, stride = n_buckets // 4, n_buckets + skeleton_buckets
    h = crc_hashes(tokens)
    uni = fmix32(h ^ np.uint64(0x51)) % np.uint64(word_size)
    bi = fmix32(((h[:-1] * np.uint64(0x9E3779B1)) & MASK32) ^ h[1:] ^ np.uint64(0x52)) % np.uint64(word_size)
    cp = np.frombuffer((" " + doc + " ").encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    char_size, offset = np.uint64(n_buckets - word_size), np.uint64(word_size)
    chars = [fmix32(_fnv_ngrams(cp, n)) % char_size + offset for n in CHAR_NGRAMS]
    (t0, t1), (p, q) = row_tokens, row_doc
    dtype = _key_dtype(t0.size, stride)
    parts, firsts, sizes = [uni, bi, *chars], [t0, t0] + [p] * len(CHAR_NGRAMS), [t1 - t0, t1 - t0 - 1]
    sizes += [q - p + 3 - n for n in CHAR_NGRAMS]
    if skeleton_buckets:
        sk = skeleton_token_hashes(tokens)
        parts += [skeleton_ngram_hashes(sk, n) % np.uint64(skeleton_buckets) + np.uint64(n_buckets)
                  for n in SKELETON_ORDERS]
        firsts += [t0] * len(SKELETON_ORDERS)
        sizes += [t1 - t0 - n + 1 for n in SKELETON_ORDERS]
    table = np.concatenate(parts).astype(dtype)
    base = np.cumsum([0] + [part.size for part in parts[:-1]])
    starts = np.stack([f + base[k] for k, f in enumerate(firsts)], axis=1)
    counts = np.stack(sizes, axis=1).clip(min=0).ravel()
    ends = np.cumsum(counts)
    idx = np.arange(int(ends[-1]) if ends.size else 0, dtype=np.int64) + np.repeat(starts.ravel() - (ends - counts), counts)
    owner = np.repeat(np.arange(t0.size, dtype=dtype) * dtype.type(stride), len(parts))
    keys: np.ndarray = table[idx] + np.repeat(owner, counts)
    return keys


def _key_dtype(n_rows: int, stride: int) -> np.dtype:
    """uint32 when every ``row * stride + bucket`` fits (sorting it is about twice as fast), else int64."""
    return np.dtype(np.uint32) if n_rows * stride <= 1 << 32 else np.dtype(np.int64)


def _rows_from_keys(keys: np.ndarray, n_rows: int, n_buckets: int, skeleton_buckets: int,
                    style: list[np.ndarray]) -> list[Features]:
    """Bucketed counts -> sublinear tf -> per-block l2 normalisation, as in ``featurise_many``."""
    word_size, stride = n_buckets // 4, n_buckets + skeleton_buckets
    keys.sort()
    new = np.empty(keys.size, dtype=bool)
    new[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    at = np.flatnonzero(new)
    uniq = keys[at].astype(np.int64)
    counts = np.diff(np.append(at, keys.size))
    owner, bucket = uniq // stride, uniq % stride
    block = owner * 3 + (bucket >= word_size) + (bucket >= n_buckets)
    val = 1.0 + np.log(counts.astype(np.float64))
    norms = np.sqrt(np.bincount(block, weights=val * val, minlength=3 * n_rows))
    val = (val / (norms[block] * np.sqrt(2.0))).astype(np.float32)
    bounds = np.searchsorted(owner, np.arange(n_rows + 1))
    return [Features(bucket[a:b], val[a:b], s) for s, a, b in zip(style, bounds[:-1], bounds[1:], strict=True)]


def _doc_style(
    doc: str,
    canons: list[str],
    words: list[list[str]],
    start: np.ndarray,
    rows: list[tuple[int, int]],
    logfreq: np.ndarray,
    rare_logfreq: float,
) -> np.ndarray:
    """``style_features`` of every row (float32 ``[rows, N_STYLE]``) from per-sentence words and cuts, with
    the same arithmetic in the same order (numpy's summation of each row's slice included)."""
    # Sentence cuts of the canonical rows: the cuts inside each sentence, and whether a cut falls where
    # it meets the next one (then a row holding both has a cut there; otherwise their words add up).
    inner: list[list[int]] = [[] for _ in canons]
    cut_after = [False] * len(canons)
    for end in sentence_ends(doc):
        i = int(np.searchsorted(start, end, side="right")) - 1
        if end - start[i] == len(canons[i]):
            cut_after[i] = True
        else:
            inner[i].append(int(end - start[i]))
    pieces = [
        [len(_WORD_RE.findall(c[x:y])) for x, y in zip([0, *cut], [*cut, len(c)], strict=True)] if cut else [len(w)]
        for c, w, cut in zip(canons, words, inner, strict=True)
    ]
    flat = [w for ws in words for w in ws]
    word_at = np.concatenate([[0], np.cumsum([len(w) for w in words])]).astype(np.int64)
    lf = logfreq[freq_buckets(flat)].astype(np.float64)
    cum = np.zeros((len(flat) + 1, 3), dtype=np.int64)  # rare words, letters, stopwords
    cum[1:, 0] = np.cumsum(lf <= rare_logfreq)
    cum[1:, 1] = np.cumsum(np.fromiter(map(len, flat), dtype=np.int64, count=len(flat)))
    cum[1:, 2] = np.cumsum(np.fromiter(map(STOPWORDS.__contains__, flat), dtype=np.int64, count=len(flat)))
    commas = np.concatenate([[0], np.cumsum([c.count(",") for c in canons])]).astype(np.int64)
    out = np.zeros((len(rows), N_STYLE), dtype=np.float64)
    first = np.array([a for a, _ in rows], dtype=np.int64)
    last = np.array([b for _, b in rows], dtype=np.int64)
    has = np.flatnonzero(word_at[last] > word_at[first])  # rows without words keep zeros
    if not has.size:
        return out.astype(np.float32)
    first, last = first[has], last[has]
    w0, w1 = word_at[first], word_at[last]
    n = w1 - w0
    counts = cum[w1] - cum[w0]
    out[has, 5] = counts[:, 0] / n
    out[has, 6] = (commas[last] - commas[first]) / n
    out[has, 7] = counts[:, 1] / n
    out[has, 8] = counts[:, 2] / n
    # Mean and std of each row's log-frequencies: ndarray.mean/std's reductions on the same slices.
    seg = np.concatenate([[0], np.cumsum(n)[:-1]])
    x = lf[np.arange(int(n.sum()), dtype=np.int64) + np.repeat(w0 - seg, n)]
    mean = np.add.reduceat(x, seg) / n
    dev = x - np.repeat(mean, n)
    out[has, 3] = mean
    out[has, 4] = np.sqrt(np.add.reduceat(dev * dev, seg) / n)
    for r, a, b, lo, hi in zip(has.tolist(), first.tolist(), last.tolist(), w0.tolist(), w1.tolist(), strict=True):
        segs = list(pieces[a])
        for i in range(a + 1, b):
            if cut_after[i - 1]:
                segs.extend(pieces[i])
            else:
                segs[-1] += pieces[i][0]
                segs.extend(pieces[i][1:])
        out[r, 0], out[r, 1] = _sentence_length_style([k for k in segs if k > 0])
        out[r, 2] = _mattr(flat[lo:hi])
    return out.astype(np.float32)
