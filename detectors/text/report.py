"""Held-out reporting for the text model card: fairness slices, cross-generator/domain folds, speed.

Caveats first: fold AUROCs come from quick refits on the first scoring window of each text (not the
full windowed detector) of a seeded 50% subsample of the training split, with the held-out generator
family / domain group removed;
they are scored on that family's / group's validation + test rows (never trained on in the fold).
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from detectors.contract import DetectorOutput, TextItem
from detectors.text.data import Row
from detectors.text.features import _mattr, canonical
from detectors.text.normalise import words

logger = logging.getLogger(__name__)

FOLD_TRAIN_SHARE = 0.5
_VOWELS_RE = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    n = len(_VOWELS_RE.findall(word.lower()))
    if word.lower().endswith("e") and n > 1:
        n -= 1
    return max(n, 1)


def flesch_reading_ease(text: str, n_sentences: int) -> float:
    toks = [w for w in words(text) if w.isalpha()]
    if not toks:
        return 0.0
    return 206.835 - 1.015 * len(toks) / max(n_sentences, 1) - 84.6 * sum(map(syllables, toks)) / len(toks)


def plain_human_fpr(rows: Sequence[Row], outputs: Sequence[DetectorOutput], threshold: float) -> dict[str, Any]:
    """FPR at ``threshold`` on the plainest covered human texts: lowest-10% MATTR, highest-10% Flesch ease."""
    probs = np.array([np.nan if o.probability is None else o.probability for o in outputs], dtype=np.float64)
    return plain_human_fpr_arrays(rows, probs, np.array([max(len(o.spans), 1) for o in outputs]), threshold)


def plain_slices(rows: Sequence[Row], keep: Sequence[int], n_sentences: np.ndarray) -> dict[str, Any]:
    """For the human rows ``keep``: lowest-10% MATTR and highest-10% Flesch masks (over ``keep``) and their cuts."""
    mattr = np.array([_mattr(words(canonical(rows[i].text))) for i in keep])
    flesch = np.array([flesch_reading_ease(rows[i].text, int(n_sentences[i])) for i in keep])
    mattr_cut, flesch_cut = float(np.percentile(mattr, 10)), float(np.percentile(flesch, 90))
    return {"low_vocab": mattr <= mattr_cut, "easy": flesch >= flesch_cut, "mattr_cut": mattr_cut,
            "flesch_cut": flesch_cut}


def plain_human_fpr_arrays(rows: Sequence[Row], probabilities: np.ndarray, n_sentences: np.ndarray,
                           threshold: float) -> dict[str, Any]:
    """:func:`plain_human_fpr` on arrays (NaN probability = abstained; sentences for the Flesch score)."""
    keep = [i for i, r in enumerate(rows) if r.label == 0 and not np.isnan(probabilities[i])]
    sl = plain_slices(rows, keep, n_sentences)
    low_vocab, easy = sl["low_vocab"], sl["easy"]
    probs = probabilities[keep]
    reuters = np.array([rows[i].domain == "news" for i in keep])
    return {
        "all_human": {"n": int(probs.size), "fpr": float(np.mean(probs >= threshold))},
        "reuters_newswire": {"n": int(reuters.sum()), "fpr": float(np.mean(probs[reuters] >= threshold))},
        "lowest_10pct_mattr": {"n": int(low_vocab.sum()), "fpr": float(np.mean(probs[low_vocab] >= threshold)),
                               "mattr_cut": sl["mattr_cut"]},
        "highest_10pct_flesch": {"n": int(easy.sum()), "fpr": float(np.mean(probs[easy] >= threshold)),
                                 "flesch_cut": sl["flesch_cut"]},
        "both_plain": {"n": int((low_vocab | easy).sum()), "fpr": float(np.mean(probs[low_vocab | easy] >= threshold))},
    }


def holdout_folds(
    rows: Sequence[Row],
    data: dict[str, Any],
    fit: Callable[[Any, np.ndarray, np.ndarray, np.ndarray], Any],
    deadline: float,
    holdout_feats: Callable[[list[int]], tuple[Any, np.ndarray]],
) -> dict[str, dict[str, Any]]:
    """Leave-one-generator-family-out and leave-one-domain-group-out AUROC (while time allows)."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    tr = data["tr"]
    subsample = np.random.default_rng(0).random(len(tr)) < FOLD_TRAIN_SHARE
    evaluable = [i for i, r in enumerate(rows) if r.split != "train"]
    results: dict[str, dict[str, Any]] = {}
    folds = [("generator", f) for f in sorted({rows[i].family for i in tr if rows[i].label})]
    folds += [("domain", d) for d in sorted({rows[i].domain_group for i in tr})]
    for kind, name in folds:
        if time.monotonic() > deadline:
            logger.info("fold budget spent; skipping the rest")
            break
        keep = np.array([not _held(rows[i], kind, name) for i in tr]) & subsample
        test = [i for i in evaluable if _held(rows[i], kind, name) or (kind == "generator" and rows[i].label == 0)]
        y = np.array([rows[i].label for i in test])
        if y.min() == y.max():
            continue
        t0 = time.monotonic()
        model = fit(data["h_tr"][keep], data["s_tr"][keep], data["y_tr"][keep], data["w_tr"][keep])
        h, s = holdout_feats(test)
        z = model.decision(h, s)
        results[f"{kind}: {name}"] = {"n_ai": int(y.sum()), "n_human": int((1 - y).sum()), "auroc": auroc(y, z),
                                      "tpr_at_1pct_fpr": tpr_at_fpr(y, z, 0.01)}
        logger.info("fold %s %s: %s (%.0f s)", kind, name, results[f"{kind}: {name}"], time.monotonic() - t0)
    return results


def _held(row: Row, kind: str, name: str) -> bool:
    """Whether ``row`` belongs to the held-out generator family (AI rows only) or domain group."""
    if kind == "generator":
        return row.label == 1 and row.family == name
    return row.domain_group == name


def speed(detector: Any, text: str, repeats: int = 20) -> dict[str, float]:
    """Median wall and process-CPU time of preprocess + forward + postprocess for one text (batch of one)."""
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        prepared = [detector.preprocess(TextItem(text))]
        detector.postprocess(prepared, detector.forward(prepared))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    n_words = len(words(text))
    median = statistics.median(times)
    return {"words": float(n_words), "median_ms": 1000 * median, "p90_ms": 1000 * float(np.percentile(times, 90)),
            "cpu_ms": 1000 * statistics.median(cpu), "words_per_s": n_words / median}
