"""The text detector's fast featurisation (``featurise_spans``: each sentence hashed once, windows built from
sentence slices) against a straightforward per-text reference: identical indices, values and style, bit
for bit, on real texts from every domain of the shared data set and on Unicode edge cases.

The reference is the per-text definition written out plainly (regex canonical form, ``zlib.crc32`` per
token, FNV-1a per n-gram, counts, sublinear tf, per-block l2 norm summed in bucket order, stylometry with
numpy's mean/std) and shares no code with ``detectors.text.features`` except the sentence splitter.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device
from detectors.text.cleaning import clean_training_text
from detectors.text.detector import build_text_detector
from detectors.text.features import Features, canonical, featurise_many, featurise_spans
from detectors.text.normalise import normalise, sentence_spans, windows, word_count
from detectors.text.stopwords import STOPWORDS

REPO = Path(__file__).parents[1]
WEIGHTS = REPO / "weights" / "text"
DATA = REPO.parent / "shared/datasets/text"
FILES = ("l2r.jsonl", "fastdetect_glimpse.jsonl", "reuters21578_news.jsonl", "llmfake_news.jsonl")
PER_FILE = 75  # 300 real texts, each kept raw and cleaned (different whitespace and layout)
N_BUCKETS = 1 << 20
SKELETON = 1 << 18  # the skeleton block's size in the shipped weights (text 0.4.0 on)
M32 = 0xFFFFFFFF

EDGE_CASES = [
    # zero-width characters inside words, Cyrillic/Greek homoglyphs in Latin text
    "Hello\u200b wor\u200dld. This is a t\u0435st with \u0421\u0430pital \u0410 and \u03bfmicron, again. " * 6,
    # emoji (astral code points, skin tones, flags, ZWJ sequences)
    "Emoji \U0001f600 test! \U0001f44d\U0001f3fd Great. Flags \U0001f1fa\U0001f1f8 here. "
    "Family \U0001f468\u200d\U0001f469 ok. " * 6,
    # CJK with ideographic full stops, mixed with English
    "\u4e2d\u6587\u6587\u672c\u6d4b\u8bd5\u3002\u8fd9\u662f\u4e00\u4e2a\u53e5\u5b50\u3002 English words mixed in here. "
    "\u65e5\u672c\u8a9e\u3082\u3042\u308a\u307e\u3059\u3002" * 4,
    # Greek capital sigma (context-dependent lower-casing) at word, sentence and text ends
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u039a\u0391\u0399 \u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3. "
    "The Greek capital \u03a3\u0391\u03a3. Ends with \u03a3. " * 5 + "\u03a3",
    # compatibility characters (ligatures, Roman numerals, full width, superscripts), dotted capital I,
    # abbreviations, initials, paragraph breaks and bullets, digits
    "\u0130stanbul \ufb01ne \ufb02ow \u216b \u00bd \u00b2 \uff46\uff55\uff4c\uff4c width. Mr. Smith went to Washington, "
    "D.C. at 5 p.m. on Jan. 3, 2024.\n\nNew para\n- bullet one\n- bullet two\n\n\u2022 bullet three. The end...",
    # odd whitespace: tab, no-break space, line separator, ideographic space, file separators
    "Tab\tseparated\u00a0nbsp\u2028line sep\u3000ideographic space. Second sentence here, with commas, many. "
    "Odd\x1cspaces\x1fhere\x85too. " * 8,
    # closing quotes and brackets after sentence marks, ellipses, repeated marks
    "Word.\u2026 \u201cQuote.\u201d (Paren.) [Brack.] Next! Really?! Yes?? 'Single.' Done\u2026 fine. " * 5,
    # a sentence that is only digits and punctuation (no letter words) between normal ones
    "The figures are in. 2024 - 2025: 1,234.56. Growth was strong, said the minister. " * 5,
    # NUL in the text: the batched hasher's separator, so both paths fall back to per-text hashing
    "nul\x00byte in the text. It has more words here, and more. " * 10,
    # one very long sentence (no sentence marks): a single window far past the window size
    " ".join(f"word{i % 97} and the other thing" for i in range(2000)),
    "a", "...", "123 456.", "I.", "Mr. X.", "ok ok ok ok ok",
]


def _reference_canonical(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\d", "0", text.lower())).strip()


def _fmix(h: np.ndarray) -> np.ndarray:
    """Murmur3 finaliser of 32-bit values held in uint64 (products stay below 2**64)."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(M32)
    return h ^ (h >> np.uint64(16))


def _reference_hashes(canon: str) -> tuple[np.ndarray, np.ndarray]:
    """(word 1-2-gram hashes, character 3-5-gram hashes) of one canonical text."""
    crc = [zlib.crc32(t.encode("utf-8")) for t in re.findall(r"\w+(?:'\w+)*|[^\w\s]", canon)]
    pairs = [((a * 0x9E3779B1) & M32) ^ b ^ 0x52 for a, b in zip(crc, crc[1:], strict=False)]
    words = _fmix(np.array([h ^ 0x51 for h in crc] + pairs, dtype=np.uint64))
    cp = np.array([ord(c) for c in " " + canon + " "], dtype=np.uint64)
    chars = []
    for n in (3, 4, 5):  # FNV-1a of every n-gram, one character position at a time, for all n-grams at once
        count = max(cp.size - n + 1, 0)
        h = np.full(count, 2166136261 ^ n, dtype=np.uint64)
        for k in range(n):
            h = ((h ^ cp[k : k + count]) * np.uint64(16777619)) & np.uint64(M32)
        chars.append(_fmix(h))
    return words, np.concatenate(chars)


def _reference_skeleton(canon: str) -> np.ndarray:
    """Skeleton 1-4-gram hashes: stopwords and punctuation kept, digit-led tokens ``<n>``, other words ``_`` + their
    last three characters; CRC-32 per skeleton token, mixed left to right, murmur3-finished with ``0x60 + n``."""
    skel = []
    for t in re.findall(r"\w+(?:'\w+)*|[^\w\s]", canon):
        if t in STOPWORDS or not re.match(r"\w", t):
            skel.append(t)
        else:
            skel.append("<n>" if t[0] == "0" else "_" + t[-3:])
    crc = [zlib.crc32(t.encode("utf-8")) for t in skel]
    out = []
    for n in (1, 2, 3, 4):
        for i in range(len(crc) - n + 1):
            acc = crc[i]
            for k in range(1, n):
                acc = ((acc * 0x9E3779B1) & M32) ^ crc[i + k]
            out.append(acc ^ (0x60 + n))
    return _fmix(np.array(out, dtype=np.uint64))


def _reference_block(buckets: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    idx, counts = np.unique(buckets.astype(np.int64), return_counts=True)
    val = 1.0 + np.log(counts.astype(np.float64))
    total = 0.0
    for v in (val * val).tolist():  # summed in bucket order, one by one
        total += v
    return idx + offset, (val / (math.sqrt(total) * math.sqrt(2.0))).astype(np.float32)


def _reference_style(canon: str, logfreq: np.ndarray, rare: float) -> np.ndarray:
    word_re = r"[^\W\d_]+(?:'[^\W\d_]+)*"
    tokens = re.findall(word_re, canon)
    out = np.zeros(9, dtype=np.float32)
    if not tokens:
        return out
    lengths = [n for s, e in sentence_spans(canon) if (n := len(re.findall(word_re, canon[s:e]))) > 0]
    mean_len = sum(lengths) / len(lengths)
    lf = logfreq[[zlib.crc32(t.encode("utf-8")) % (1 << 18) for t in tokens]].astype(np.float64)
    if len(tokens) <= 50:
        mattr = len(set(tokens)) / len(tokens)
    else:
        step = max(1, (len(tokens) - 50) // 20)
        ratios = [len(set(tokens[i : i + 50])) / 50 for i in range(0, len(tokens) - 49, step)]
        mattr = sum(ratios) / len(ratios)
    out[0] = math.log1p(mean_len)
    out[1] = math.sqrt(sum((n - mean_len) ** 2 for n in lengths) / len(lengths)) / mean_len if len(lengths) > 1 else 0.0
    out[2] = mattr
    out[3] = lf.mean()
    out[4] = lf.std()
    out[5] = np.count_nonzero(lf <= rare) / lf.size
    out[6] = canon.count(",") / len(tokens)
    out[7] = sum(map(len, tokens)) / len(tokens)
    out[8] = sum(t in STOPWORDS for t in tokens) / len(tokens)
    return out


def reference_features(text: str, n_buckets: int, logfreq: np.ndarray, rare: float, skeleton: int = 0) -> Features:
    canon = _reference_canonical(text)
    words, chars = _reference_hashes(canon)
    word_size = n_buckets // 4
    blocks = [_reference_block(words % np.uint64(word_size), 0),
              _reference_block(chars % np.uint64(n_buckets - word_size), word_size)]
    if skeleton:
        blocks.append(_reference_block(_reference_skeleton(canon) % np.uint64(skeleton), n_buckets))
    return Features(np.concatenate([i for i, _ in blocks]), np.concatenate([v for _, v in blocks]),
                    _reference_style(canon, logfreq, rare))


def _rows(norm: str, window_words: int = 250, min_last: int = 60) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(sentence spans, rows: the detector's windows then every sentence with words) of a normalised text."""
    spans = sentence_spans(norm)
    counts = [word_count(norm[s:e]) for s, e in spans]
    return spans, windows(counts, window_words, min_last) + [(i, i + 1) for i, n in enumerate(counts) if n > 0]


def _assert_same(got: list[Features], want: list[Features], label: str) -> None:
    assert len(got) == len(want), label
    for r, (g, w) in enumerate(zip(got, want, strict=True)):
        where = f"{label} row {r}"
        assert g.indices.dtype == np.int64, where
        assert g.values.dtype == np.float32, where
        assert g.style.dtype == np.float32, where
        assert np.array_equal(g.indices, w.indices), where
        assert np.array_equal(g.values, w.values), where  # bit-identical, not just close
        assert np.array_equal(g.style, w.style), f"{where}: {g.style} != {w.style}"


def _real_texts() -> list[str]:
    texts = []
    for name in FILES:
        lines = (DATA / name).read_text(encoding="utf-8").splitlines()
        for r in map(json.loads, lines[:: max(1, len(lines) // PER_FILE)][:PER_FILE]):
            texts += [r["text"], clean_training_text(r["text"], r["domain"])]
    return texts


@pytest.fixture(scope="module")
def logfreq() -> np.ndarray:
    return np.load(WEIGHTS / "wordfreq.npy", allow_pickle=False).astype(np.float32)


def test_canonical_matches_the_regex_definition() -> None:
    for text in EDGE_CASES + ["  a \t\n b  ", "", " ", "\u00a0x\u3000"]:
        assert canonical(text) == _reference_canonical(text)


@pytest.mark.parametrize(("n_buckets", "skeleton"), [(N_BUCKETS, SKELETON), (N_BUCKETS, 0), (1 << 12, 1 << 10)])
def test_edge_cases_match_the_reference(logfreq: np.ndarray, n_buckets: int, skeleton: int) -> None:
    for k, text in enumerate(EDGE_CASES):
        norm = normalise(text).text
        spans, rows = _rows(norm, 40, 10)
        texts = [norm[spans[a][0] : spans[b - 1][1]] for a, b in rows]
        want = [reference_features(t, n_buckets, logfreq, -14.0, skeleton) for t in texts]
        _assert_same(featurise_spans(norm, spans, rows, n_buckets, logfreq, -14.0, skeleton), want, f"edge {k}")
        _assert_same(featurise_many(texts, n_buckets, logfreq, -14.0, skeleton), want, f"edge {k} (many)")


@pytest.mark.skipif(not (DATA / FILES[0]).is_file(), reason="shared text data set not present")
def test_real_texts_match_the_reference(logfreq: np.ndarray) -> None:
    """600 texts (300 rows of the four data files, raw and cleaned): every window and sentence row."""
    n_rows = 0
    for k, text in enumerate(_real_texts()):
        norm = normalise(text).text
        spans, rows = _rows(norm)
        if not rows:
            continue
        texts = [norm[spans[a][0] : spans[b - 1][1]] for a, b in rows]
        want = [reference_features(t, N_BUCKETS, logfreq, -14.46, SKELETON) for t in texts]
        _assert_same(featurise_spans(norm, spans, rows, N_BUCKETS, logfreq, -14.46, SKELETON), want, f"text {k}")
        n_rows += len(rows)
    assert n_rows > 5000


def test_rows_that_are_not_sentence_runs_fall_back(logfreq: np.ndarray) -> None:
    """Spans out of order, touching, or leaving text out: the per-text path, same features."""
    text = "One sentence here. Two sentences here! Three, with a comma? Four."
    spans = sentence_spans(text)
    cases = [
        (spans, [(0, 4), (1, 3), (2, 3), (0, 1), (0, 4)]),  # overlapping rows are fine
        (spans[1:], [(0, 3), (1, 2)]),  # the first sentence left out of the spans
        ([(0, 10), (10, 18)], [(0, 2)]),  # touching spans
        ([spans[1], spans[0]], [(0, 1), (1, 2)]),  # out of order
    ]
    for k, (sp, rows) in enumerate(cases):
        texts = [text[sp[a][0] : sp[b - 1][1]] for a, b in rows]
        want = [reference_features(t, N_BUCKETS, logfreq, -14.0, SKELETON) for t in texts]
        _assert_same(featurise_spans(text, sp, rows, N_BUCKETS, logfreq, -14.0, SKELETON), want, f"case {k}")
    assert featurise_spans(text, spans, [], N_BUCKETS, logfreq, -14.0) == []


def test_detector_rows_match_the_reference() -> None:
    """``TextDetector.prepare`` with the shipped weights: windows then sentences, as the reference."""
    detector = build_text_detector(WEIGHTS, lm_mode="off")
    detector.load(Device(intra_op_threads=1))
    cfg = detector.config
    logfreq = np.load(WEIGHTS / "wordfreq.npy", allow_pickle=False).astype(np.float32)
    article = " ".join(
        "The council met on Tuesday to discuss the new budget for the town, and members said the plan would "
        f"pay for {k} new schools. Some residents were not happy with the cost." for k in range(30)
    )
    for k, text in enumerate([article, EDGE_CASES[0], EDGE_CASES[4], EDGE_CASES[8]]):
        prepared = detector.prepare(text, with_sentences=True)
        norm = normalise(text).text
        spans, rows = _rows(norm, cfg.window_words, cfg.min_last_window_words)
        if prepared.abstain_reason is not None:
            rows = rows[: len(prepared.window_words)]
        texts = [norm[spans[a][0] : spans[b - 1][1]] for a, b in rows]
        want = [reference_features(t, cfg.n_buckets, logfreq, cfg.rare_logfreq, cfg.skeleton_buckets) for t in texts]
        _assert_same(list(prepared.rows), want, f"text {k}")
