"""Trains the shipped text detector from ``../shared/datasets/text`` (training side).

Caveats first: heavy imports (scikit-learn, onnx) happen inside the functions. The model is a
logistic regression (averaged SGD) on hashed word 1-2-grams, character 3-5-grams and nine stylometric features, plus
the function-word skeleton model (0.4.0); from 0.5.0 both are fitted on train + validation, and the validation texts'
scores for the combination, length rule, calibration and thresholds come from fold models that never saw them
(``detectors.text.crossfit``). The test split is only reported. Stage 2 (``detectors.text.stacking``) then trains
the token-sequence CNN (train split, from the GPU run's per-token files) and adds the SmolLM2 stacker and cascade (weights 0.3.0)
from the LM features of the GPU run (or, slowly, the numpy path; the CNN needs the per-token files).

Run: ``python -m detectors.text.training --data ../shared/datasets/text --out weights/text``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.data import Row, load_rows
from detectors.text.features import FREQ_BUCKETS, STYLE_NAMES, Features, canonical, featurise_many, freq_buckets
from detectors.text.normalise import normalise, sentence_spans, windows, word_count, words

logger = logging.getLogger(__name__)

NAME = "bylinecheck-text-linear"
VERSION = "0.5.0"
SETTINGS: dict[str, Any] = {
    "n_buckets": 1 << 20,
    "skeleton_buckets": 1 << 18,
    "window_words": 250,
    "min_last_window_words": 60,
    "english_check_min_words": 15,
    "min_latin_share": 0.8,
}
C_GRID = (3e-7, 1e-6)  # SGD L2 penalties (alpha), tried in this order while time allows
SKELETON_ALPHA = 3e-6  # the skeleton block's own fit (validation, detectors/text/explore_skeleton.py)
EPOCHS = 20
STYLE_SCALE = 0.05  # standardised style features are scaled to the size of hashed entries (measured: unscaled hurt)
TARGET_FPR = 0.01
# Stage 1's own likely_ai cut (the BYLINECHECK_TEXT_LM=off mode, and the top of the LM band): half the 1% requirement on
# validation, the margin the cascade keeps too. At exactly 1% (0.1.0-0.5.0's first fit) the off mode reached 1.6% on
# non-Reuters test human texts and 1.3% on the highest-Flesch slice.
LIKELY_AI_TARGET_FPR = 0.005
LIKELY_HUMAN_MISS = 0.05
LENGTHS = (10, 20, 30, 40, 50, 60, 80, 100, 150)
CURVE_SAMPLE = 2000
MIN_AUROC_FOR_LENGTH = 0.90


def first_window(text: str) -> str:
    """The first scoring window of ``text`` (what the detector scores first), normalised."""
    norm = normalise(text).text
    spans = sentence_spans(norm)
    counts = [word_count(norm[s:e]) for s, e in spans]
    groups = windows(counts, SETTINGS["window_words"], SETTINGS["min_last_window_words"])
    if not groups:
        return norm
    a, b = groups[0]
    return norm[spans[a][0] : spans[b - 1][1]]


def fit_wordfreq(texts: list[str]) -> tuple[np.ndarray, float]:
    """Log-probability per hashed word bucket (add-one smoothed) and the 'rare' cut (count <= 1)."""
    counts = np.zeros(FREQ_BUCKETS, dtype=np.float64)
    for t in texts:
        np.add.at(counts, freq_buckets(words(canonical(t))), 1.0)
    total = counts.sum() + FREQ_BUCKETS
    return np.log((counts + 1.0) / total).astype(np.float32), float(np.log(2.0 / total))


def feature_matrix(texts: list[str], logfreq: np.ndarray, rare: float) -> tuple[Any, np.ndarray]:
    """CSR matrix of hashed features and the dense style matrix for ``texts``."""
    from scipy import sparse

    feats: list[Features] = []
    for a in range(0, len(texts), 256):
        feats += featurise_many(texts[a : a + 256], SETTINGS["n_buckets"], logfreq, rare, SETTINGS["skeleton_buckets"])
    indptr = np.cumsum([0] + [f.indices.size for f in feats])
    indices = np.concatenate([f.indices for f in feats]).astype(np.int32)
    data = np.concatenate([f.values for f in feats])
    width = SETTINGS["n_buckets"] + SETTINGS["skeleton_buckets"]
    hashed = sparse.csr_matrix((data, indices, indptr), shape=(len(texts), width))
    return hashed, np.stack([f.style for f in feats]).astype(np.float64)


def sample_weights(rows: list[Row]) -> np.ndarray:
    """Each label gets half the total weight; within a label, each domain group at most 4x another."""
    weights = np.ones(len(rows))
    for label in (0, 1):
        idx = [i for i, r in enumerate(rows) if r.label == label]
        groups: dict[str, list[int]] = {}
        for i in idx:
            groups.setdefault(rows[i].domain_group, []).append(i)
        sizes = {g: len(v) for g, v in groups.items()}
        median = float(np.median(list(sizes.values())))
        for g, members in groups.items():
            weights[members] = min(sizes[g], 4 * median) / sizes[g]
        weights[idx] *= (len(rows) / 2.0) / weights[idx].sum()
    return weights


class LinearFit:
    """A fitted model in raw feature space: hashed weights, style weights and mean/std, bias."""

    def __init__(self, hashed: np.ndarray, style: np.ndarray, mean: np.ndarray, std: np.ndarray, bias: float):
        self.hashed, self.style, self.mean, self.std, self.bias = hashed, style, mean, std, bias

    def folded(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Weights that take unscaled style features (standardisation folded in)."""
        w_style = self.style / self.std
        return self.hashed, w_style, float(self.bias - np.sum(self.style * self.mean / self.std))

    def decision(self, hashed: Any, style: np.ndarray) -> np.ndarray:
        h, ws, b = self.folded()
        return np.asarray(np.asarray(hashed @ h).ravel() + style @ ws + b, dtype=np.float64)


def fit_linear(hashed: Any, style: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> LinearFit:
    """Averaged-SGD logistic regression (L2 penalty ``alpha``), seeded, fixed epochs.

    Chosen over liblinear / lbfgs logistic regression, which took many minutes per fit on this data
    and 2 shared cores; averaging made the SGD fit stable (plain SGD swung by +-0.1 validation AUROC).
    """
    from scipy import sparse
    from sklearn.linear_model import SGDClassifier

    mean, std = style.mean(axis=0), (style.std(axis=0) + 1e-6) / STYLE_SCALE
    x = sparse.hstack([hashed, sparse.csr_matrix((style - mean) / std)]).tocsr()
    model = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=EPOCHS, tol=None, random_state=0, average=True)
    model.fit(x, y, sample_weight=w)
    coef = model.coef_.ravel()
    n = hashed.shape[1]
    return LinearFit(coef[:n].astype(np.float32), coef[n:], mean, std, float(model.intercept_[0]))


def fit_skeleton(hashed: Any, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """The skeleton block's own averaged-SGD logistic regression (``SKELETON_ALPHA``, no style features):
    (weights, bias)."""
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(loss="log_loss", alpha=SKELETON_ALPHA, max_iter=EPOCHS, tol=None, random_state=0, average=True)
    model.fit(hashed, y, sample_weight=w)
    return model.coef_.ravel().astype(np.float32), float(model.intercept_[0])


class Combination:
    """``a * ngram_logit + c * skeleton_logit + d``: how the two linear models' logits are added, fitted on validation
    first windows (a standardised logistic regression on the two logits, as the stacker's)."""

    def __init__(self, a: float, c: float, d: float) -> None:
        self.a, self.c, self.d = a, c, d

    @classmethod
    def fit(cls, ngram: np.ndarray, skeleton: np.ndarray, y: np.ndarray, w: np.ndarray) -> Combination:
        from detectors.text.stacking import fit_logistic

        p = fit_logistic(np.column_stack([ngram, skeleton]), y, w)
        a, c = p["coef"][0] / p["std"][0], p["coef"][1] / p["std"][1]
        return cls(a, c, p["bias"] - a * p["mean"][0] - c * p["mean"][1])

    def fold(self, ngram: LinearFit, skeleton: tuple[np.ndarray, float]) -> LinearFit:
        """One linear model over all three blocks whose decision is the combination of the two."""
        hashed = np.concatenate([self.a * ngram.hashed, self.c * skeleton[0]]).astype(np.float32)
        return LinearFit(hashed, self.a * ngram.style, ngram.mean, ngram.std,
                         self.a * ngram.bias + self.c * skeleton[1] + self.d)

    def as_dict(self) -> dict[str, float]:
        return {"ngram": self.a, "skeleton": self.c, "bias": self.d}


def fit_blocks(hashed: Any, style: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float,
               combination: Combination) -> LinearFit:
    """The n-gram model (``alpha``) and the skeleton model fitted apart on ``hashed``'s blocks, then folded into one
    by ``combination`` (the leave-one-out refits keep the main fit's combination)."""
    nb = SETTINGS["n_buckets"]
    return combination.fold(fit_linear(hashed[:, :nb], style, y, w, alpha), fit_skeleton(hashed[:, nb:], y, w))


def _select(rows: list[Row], split: str) -> list[int]:
    return [i for i, r in enumerate(rows) if r.split == split]


def choose_c(data: dict[str, Any], budget_end: float) -> tuple[LinearFit, float, Combination, list[dict[str, Any]]]:
    """Fit the skeleton model once and the n-gram model at each alpha in ``C_GRID`` (while time allows), each pair
    combined on validation first windows; keep the best by validation TPR@1%FPR, then AUROC. Returns the folded
    model, its alpha, its combination and the trials (with the n-gram and skeleton models' own numbers)."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    def quality(z: np.ndarray) -> tuple[float, float]:
        return auroc(data["y_va"], z) or 0.0, tpr_at_fpr(data["y_va"], z, TARGET_FPR) or 0.0

    nb = SETTINGS["n_buckets"]
    t0 = time.monotonic()
    skeleton = fit_skeleton(data["h_tr"][:, nb:], data["y_tr"], data["w_tr"])
    z_skel = np.asarray(data["h_va"][:, nb:] @ skeleton[0]).ravel() + skeleton[1]
    skel_au, skel_tp = quality(z_skel)
    logger.info("skeleton val AUROC %.4f TPR@1%% %.4f (%.0f s)", skel_au, skel_tp, time.monotonic() - t0)
    w_va = sample_weights(data["rows_va"])
    h_tr, h_va = data["h_tr"][:, :nb], data["h_va"][:, :nb]  # the n-gram block, sliced once for every alpha
    best: tuple[float, float, LinearFit, float, Combination] | None = None
    trials: list[dict[str, Any]] = []
    for c in C_GRID:
        if best is not None and time.monotonic() > budget_end:
            break
        t0 = time.monotonic()
        ngram = fit_linear(h_tr, data["s_tr"], data["y_tr"], data["w_tr"], c)
        z_ngram = ngram.decision(h_va, data["s_va"])
        combination = Combination.fit(z_ngram, z_skel, data["y_va"], w_va)
        fit = combination.fold(ngram, skeleton)
        au, tp = quality(fit.decision(data["h_va"], data["s_va"]))
        ng_au, ng_tp = quality(z_ngram)
        trials.append({"alpha": c, "val_auroc_first_window": au, "val_tpr_at_1pct_fpr": tp,
                       "ngram_val_auroc_first_window": ng_au, "ngram_val_tpr_at_1pct_fpr": ng_tp,
                       "skeleton_val_auroc_first_window": skel_au, "skeleton_val_tpr_at_1pct_fpr": skel_tp,
                       "combination": combination.as_dict(), "fit_s": time.monotonic() - t0})
        logger.info("alpha=%s val AUROC %.4f TPR@1%% %.4f (n-gram alone %.4f / %.4f; %.0f s)", c, au, tp, ng_au, ng_tp,
                    time.monotonic() - t0)
        if best is None or (tp, au) > (best[0], best[1]):
            best = (tp, au, fit, c, combination)
    if best is None:
        raise RuntimeError("no C value was fitted")
    return best[2], best[3], best[4], trials


def english_thresholds(texts: list[str]) -> float:
    """Minimum English stopword share: the 0.5th percentile on training texts, at least 0.05."""
    from detectors.text.features import english_evidence

    shares = [english_evidence(t)[1] for t in texts if word_count(t) >= SETTINGS["english_check_min_words"]]
    return float(max(0.05, np.percentile(shares, 0.5))) if shares else 0.05


def likely_ai_threshold(human_probs: np.ndarray, target_fpr: float) -> tuple[float, float]:
    """Lowest probability cut with FPR <= target on ``human_probs``; returns (threshold, FPR reached)."""
    desc = np.sort(human_probs)[::-1]
    k = int(np.floor(target_fpr * desc.size))
    threshold = float(np.nextafter(desc[min(k, desc.size - 1)], 2.0))
    return min(threshold, 1.0), float(np.mean(human_probs >= threshold))


def likely_human_threshold(ai_probs: np.ndarray, miss: float, cap: float) -> tuple[float, float]:
    """Highest cut with at most ``miss`` of AI texts at or below it; returns (threshold, miss reached)."""
    asc = np.sort(ai_probs)
    k = int(np.floor(miss * asc.size))
    threshold = float(np.nextafter(asc[min(k, asc.size - 1)], -1.0))
    threshold = min(max(threshold, 0.0), cap)
    return threshold, float(np.mean(ai_probs <= threshold))


def truncate_words(text: str, n: int) -> str:
    """The prefix of ``text`` holding its first ``n`` words."""
    import re

    match = None
    for i, match in enumerate(re.finditer(r"\w+(?:['\u2019]\w+)*", text)):
        if i + 1 == n:
            return text[: match.end()]
    return text


def length_curve(scorer: Any, texts: list[str], labels: np.ndarray, folds: np.ndarray) -> list[dict[str, float]]:
    """AUROC and TPR@1%FPR on (up to ``CURVE_SAMPLE``) validation texts cut to their first L words, each scored by
    the fold model that never saw it (``crossfit.FoldScorer``; ``folds``: each text's fold)."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    curve = []
    pick = np.random.default_rng(0).permutation(len(texts))[:CURVE_SAMPLE]
    texts, labels, folds = [texts[i] for i in pick], labels[pick], folds[pick]
    for n in LENGTHS:
        keep = [i for i, t in enumerate(texts) if word_count(t) >= n]
        z, _ = scorer.raw_scores([truncate_words(texts[i], n) for i in keep], folds[keep])
        y = labels[keep]
        curve.append({"words": n, "n": len(keep), "auroc": auroc(y, z) or 0.0, "tpr_at_1pct_fpr": tpr_at_fpr(y, z, 0.01) or 0.0})
        logger.info("length %d: AUROC %.4f", n, curve[-1]["auroc"])
    return curve


def choose_min_words(curve: list[dict[str, float]]) -> int:
    """Smallest L whose AUROC, and every longer L's, is at least ``MIN_AUROC_FOR_LENGTH``."""
    chosen = int(curve[-1]["words"])
    for point in reversed(curve):
        if point["auroc"] < MIN_AUROC_FOR_LENGTH:
            break
        chosen = int(point["words"])
    return chosen


def write_manifest(out_dir: Path, body: dict[str, Any]) -> None:
    from detectors.manifest import MANIFEST_NAME, file_entry

    body = dict(body)
    body["files"] = {
        "model": file_entry(out_dir, out_dir / "model.onnx"),
        "wordfreq": file_entry(out_dir, out_dir / "wordfreq.npy"),
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def _base_manifest(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": NAME,
        "version": VERSION,
        "modality": "text",
        "score_direction": "higher_is_ai",
        "calibration": {"method": "platt", "a": 1.0, "b": 0.0},
        "thresholds": {"likely_ai": 0.5, "likely_human": 0.5},
        "min_evidence": 0,
        "evidence_unit": "words",
        "threshold_provenance": {},
        "extra": extra,
    }


def _cached_matrix(cache: Path | None, name: str, texts: list[str], logfreq: np.ndarray, rare: float) -> tuple[Any, np.ndarray]:
    """``feature_matrix`` with an optional on-disk cache keyed by texts, settings and frequency table."""
    import hashlib

    from scipy import sparse

    if cache is None:
        return feature_matrix(texts, logfreq, rare)
    digest = hashlib.sha256(json.dumps([SETTINGS, texts], sort_keys=True).encode() + logfreq.tobytes()).hexdigest()[:16]
    path = cache / f"{name}-{digest}"
    if (path.with_suffix(".npz")).is_file():
        return sparse.load_npz(path.with_suffix(".npz")).tocsr(), np.load(path.with_suffix(".npy"))
    hashed, style = feature_matrix(texts, logfreq, rare)
    cache.mkdir(parents=True, exist_ok=True)
    sparse.save_npz(path.with_suffix(".npz"), hashed, compressed=False)
    np.save(path.with_suffix(".npy"), style)
    return hashed, style


def _featurise_splits(rows: list[Row], logfreq: np.ndarray, rare: float, cache: Path | None) -> dict[str, Any]:
    tr, va, te = _select(rows, "train"), _select(rows, "validation"), _select(rows, "test")
    h_tr, s_tr = _cached_matrix(cache, "train", [first_window(rows[i].text) for i in tr], logfreq, rare)
    h_va, s_va = _cached_matrix(cache, "validation", [first_window(rows[i].text) for i in va], logfreq, rare)
    h_te, s_te = _cached_matrix(cache, "test", [first_window(rows[i].text) for i in te], logfreq, rare)
    return {
        "tr": tr, "va": va, "te": te, "h_tr": h_tr, "s_tr": s_tr, "h_va": h_va, "s_va": s_va, "h_te": h_te, "s_te": s_te,
        "y_tr": np.array([rows[i].label for i in tr]), "y_va": np.array([rows[i].label for i in va]),
        "w_tr": sample_weights([rows[i] for i in tr]), "rows_tr": [rows[i] for i in tr], "rows_va": [rows[i] for i in va],
    }


def export_model(out_dir: Path, fit: LinearFit, data: dict[str, Any]) -> dict[str, Any]:
    """Write model.onnx (int8 when validation AUROC moves < 0.001, else float32)."""
    from detectors.text.evaluation import auroc
    from detectors.text.onnx_graph import write_linear_model

    hashed, w_style, bias = fit.folded()
    scale = float(np.abs(hashed).max() / 127.0) or 1.0
    q = np.clip(np.round(hashed / scale), -127, 127) * scale
    z_float = fit.decision(data["h_va"], data["s_va"])
    z_q = np.asarray(data["h_va"] @ q).ravel() + data["s_va"] @ w_style + bias
    delta = abs((auroc(data["y_va"], z_float) or 0.0) - (auroc(data["y_va"], z_q) or 0.0))
    quantise = delta < 0.001
    write_linear_model(out_dir / "model.onnx", hashed, w_style, bias, quantise)
    logger.info("int8 AUROC delta %.5f -> quantise=%s", delta, quantise)
    return {"quantised_int8": quantise, "int8_val_auroc_delta": delta}


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots of an isotonic fit of P(AI | raw score), strictly increasing in x."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z, y)
    xs, ys = np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)
    keep = np.r_[True, np.diff(xs) > 0]
    return [float(v) for v in xs[keep]], [float(v) for v in ys[keep]]


def fit_centred_isotonic(z: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots of a centred isotonic fit (Oron and Flournoy's CIR) of P(AI | raw score): one knot per block
    of the isotonic fit, at the block's mean raw score, so the curve rises strictly between the first and
    last blocks' centres instead of holding plateaus.

    Why: a plateau gives every text on it the same probability, so a probability cut can only sit at a
    block's edge; on the cascade's validation scores the top blocks each held more than 1% of the human
    texts, which forced the ``likely_ai`` cut above them (validation TPR there 0.24 against ~0.6 at an
    exact 1% FPR). Below the first centre and above the last the curve is flat (np.interp clips).
    """
    from sklearn.isotonic import IsotonicRegression

    z, y = np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if z.size == 0:
        raise ValueError("no scores to calibrate")
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z, y).predict(z)
    order = np.argsort(z, kind="stable")
    zs, fs = z[order], fitted[order]
    starts = np.flatnonzero(np.r_[True, np.diff(fs) != 0])  # equal z get equal fitted values: one block
    sums = np.add.reduceat(zs, starts)
    counts = np.diff(np.r_[starts, zs.size])
    xs, ys = sums / counts, fs[starts]
    if xs.size == 1:  # one block (a constant fit): two knots so the map is defined
        xs, ys = np.array([zs[0], zs[-1] if zs[-1] > zs[0] else zs[0] + 1.0]), np.repeat(ys, 2)
    return [float(v) for v in xs], [float(v) for v in ys]


def calibrate(detector: Any, rows: list[Row], data: dict[str, Any], min_words: int, z: np.ndarray,
              counts: np.ndarray) -> dict[str, Any]:
    """Isotonic calibration and thresholds on validation texts the detector would not abstain on, from their
    out-of-fold raw scores ``z`` and word ``counts`` (``crossfit.FoldScorer``).

    ``likely_ai`` keeps FPR <= ``LIKELY_AI_TARGET_FPR`` (0.5%, half the 1% requirement) both on all validation human
    texts and on those other than Reuters: with Reuters in the pool, the non-Reuters test FPR was 1.6% (measured), since
    the newswire is easy; and at exactly 1% it was 1.6% again on 0.5.0's first fit (no margin for the estimate's noise).

    Isotonic rather than Platt: the raw logits are large, and Platt probabilities saturated at exactly
    1.0 for the top 1% of human texts, which left no probability cut with FPR <= 1% (measured).
    """
    from detectors.calibration import IsotonicCalibration

    texts = [rows[i].text for i in data["va"]]
    pairs = zip(texts, counts, strict=True)
    covered = np.array([detector.abstain_reason(normalise(t).text, int(n)) is None for t, n in pairs])
    covered &= counts >= min_words
    y = data["y_va"][covered]
    xs, ys = fit_isotonic(z[covered], y)
    cal = IsotonicCalibration(tuple(xs), tuple(ys))
    p = np.array([cal(v) for v in z[covered]])
    modern = np.array([rows[i].domain != "news" for i in data["va"]])[covered]
    t_all, _ = likely_ai_threshold(p[y == 0], LIKELY_AI_TARGET_FPR)
    t_modern, _ = likely_ai_threshold(p[(y == 0) & modern], LIKELY_AI_TARGET_FPR)
    t_ai = max(t_all, t_modern)
    fpr = float(np.mean(p[y == 0] >= t_ai))
    t_h, miss = likely_human_threshold(p[y == 1], LIKELY_HUMAN_MISS, t_ai)
    return {
        "calibration": {"method": "isotonic", "x": xs, "y": ys},
        "thresholds": {"likely_ai": t_ai, "likely_human": t_h},
        "target_fpr": LIKELY_AI_TARGET_FPR,
        "fpr_reached": fpr, "fpr_reached_excluding_reuters": float(np.mean(p[(y == 0) & modern] >= t_ai)),
        "likely_human_ai_share_reached": miss,
        "val_tpr_at_likely_ai": float(np.mean(p[y == 1] >= t_ai)),
        "val_human_likely_human_share": float(np.mean(p[y == 0] <= t_h)),
        "n_val_covered": int(covered.sum()), "n_val_human": int((y == 0).sum()), "n_val_ai": int((y == 1).sum()),
    }


def _holdout_features(data: dict[str, Any]) -> Any:
    """Slices of the validation + test first-window matrices for given row indices."""
    from scipy import sparse

    h_ev = sparse.vstack([data["h_va"], data["h_te"]]).tocsr()
    s_ev = np.vstack([data["s_va"], data["s_te"]])
    position = {i: k for k, i in enumerate(list(data["va"]) + list(data["te"]))}

    def feats(idx: list[int]) -> tuple[Any, np.ndarray]:
        at = [position[i] for i in idx]
        return h_ev[at], s_ev[at]

    return feats


def _speed_text(rows: list[Row]) -> str:
    """An ~800-word human news text built from test-split Reuters articles."""
    parts, total = [], 0
    for r in rows:
        if r.split == "test" and r.domain == "news":
            parts.append(r.text)
            total += word_count(r.text)
            if total >= 800:
                break
    return truncate_words("\n\n".join(parts), 800)


def train_text_model(
    data_dir: Path, out_dir: Path, seed: int = 0, budget_s: float = 1200, cache_dir: Path | None = None,
    lm_stage: bool = True,
) -> dict[str, Any]:
    """Train, calibrate, export and report the text detector; returns the report dictionary.

    Writes ``out_dir/model.onnx``, ``wordfreq.npy``, ``manifest.json``, ``MODEL_CARD.md`` and
    ``training_report.json``. ``budget_s`` bounds the optional parts (extra penalties, leave-one-out
    folds). With ``lm_stage`` (default) stage 2 then fits the SmolLM2 stacker and the cascade (see
    ``detectors.text.stacking``; the sequence CNN too when the GPU run's features of every split are in ``.devdata``,
    else it keeps the shipped one and reads the committed validation + test inputs) and rewrites the manifest,
    report and card. ``cache_dir``
    (optional) keeps feature matrices between runs; results do not depend on it.
    """
    from detectors.contract import Device
    from detectors.manifest import sha256_file
    from detectors.text.card import write_model_card
    from detectors.text.crossfit import OOF_FILE, FoldScorer, cross_fit_stage1, save_oof
    from detectors.text.detector import build_text_detector
    from detectors.text.evaluation import evaluate_outputs, run_detector
    from detectors.text.report import holdout_folds, plain_human_fpr, speed

    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    if lm_stage:
        from detectors.text.stacking import previous_cascade

        previous = previous_cascade(out_dir)  # read before this run rewrites out_dir, for the card's comparison
    rows = load_rows(data_dir, seed)
    train_texts = [first_window(r.text) for r in rows if r.split == "train"]
    logfreq, rare = fit_wordfreq(train_texts)
    np.save(out_dir / "wordfreq.npy", logfreq.astype(np.float16))
    logfreq = logfreq.astype(np.float16).astype(np.float32)
    extra = dict(SETTINGS, rare_logfreq=rare, min_stopword_share=english_thresholds(train_texts), seed=seed,
                 style_features=list(STYLE_NAMES))
    logger.info("loaded %d rows; featurising (%.0f s)", len(rows), time.monotonic() - start)
    data = _featurise_splits(rows, logfreq, rare, cache_dir)
    logger.info("features: train %s nnz %d (%.0f s)", data["h_tr"].shape, data["h_tr"].nnz, time.monotonic() - start)
    _, c, _, trials = choose_c(data, start + 0.35 * budget_s)
    with tempfile.TemporaryDirectory(prefix="bylinecheck-crossfit-") as work:
        cf = cross_fit_stage1(data, c, Path(work), _base_manifest(extra), out_dir / "wordfreq.npy")
        combination = cf.combination
        export = export_model(out_dir, cf.final, data)
        write_manifest(out_dir, _base_manifest(extra))
        detector = build_text_detector(out_dir)
        detector.load(Device(intra_op_threads=1))
        scorer = FoldScorer([build_loaded(d, 1) for d in cf.fold_dirs])
        va_texts = [rows[i].text for i in data["va"]]
        curve = length_curve(scorer, va_texts, data["y_va"], cf.folds)
        z_va, counts_va = scorer.raw_scores(va_texts, cf.folds)
    min_words = choose_min_words(curve)
    cal = calibrate(detector, rows, data, min_words, z_va, counts_va)
    body = _base_manifest(extra)
    body.update(calibration=cal["calibration"], thresholds=cal["thresholds"], min_evidence=min_words)
    body["threshold_provenance"] = {
        "data": f"{data_dir.name}: {', '.join(sorted({r.source_file for r in rows}))}",
        "split": f"validation (pair_id-grouped, seed {seed}); {cal['n_val_covered']} texts >= {min_words} words",
        "objective": f"likely_ai: lowest cut with FPR <= {LIKELY_AI_TARGET_FPR:.1%} on validation human texts, both all of them "
        "and those other than Reuters (the easy 1987 newswire would otherwise loosen the cut); likely_human: "
        f"highest cut with <= {LIKELY_HUMAN_MISS:.0%} of validation AI texts at or below it",
        "fpr_reached": cal["fpr_reached"],
    }
    write_manifest(out_dir, body)
    detector = build_text_detector(out_dir)
    detector.load(Device(intra_op_threads=1))
    test_rows = [r for r in rows if r.split == "test"]
    outputs = run_detector(detector, [r.text for r in test_rows])
    test_eval = evaluate_outputs([r.as_eval_row() for r in test_rows], outputs, cal["thresholds"]["likely_ai"])
    logger.info("test overall %s (%.0f s)", test_eval["overall"], time.monotonic() - start)
    fairness = plain_human_fpr(test_rows, outputs, cal["thresholds"]["likely_ai"])
    no_reuters = [(r.as_eval_row(), o) for r, o in zip(test_rows, outputs, strict=True) if r.domain != "news"]
    thr = cal["thresholds"]["likely_ai"]
    test_ex = evaluate_outputs([r for r, _ in no_reuters], [o for _, o in no_reuters], thr)
    speed_1 = dict(speed(build_loaded(out_dir, 1), _speed_text(rows)), threads=1)
    folds = holdout_folds(rows, data, lambda h, s, y, w: fit_blocks(h, s, y, w, c, combination), start + budget_s,
                          _holdout_features(data))
    report = {
        "seed": seed, "alpha": c, "skeleton_alpha": SKELETON_ALPHA, "combination": combination.as_dict(),
        "crossfit": cf.report,
        "c_trials": trials, "export": export, "length_curve": curve, "min_words": min_words,
        "calibration": cal, "test": test_eval, "test_excluding_reuters": test_ex["overall"], "fairness": fairness,
        "speed": speed_1, "folds": folds,
        "split_counts": _split_counts(rows), "train_seconds": time.monotonic() - start,
    }
    save_oof(out_dir / "fit_inputs" / OOF_FILE, [rows[i].id for i in data["va"]], z_va, sha256_file(out_dir / "model.onnx"),
             cf.report)
    write_model_card(out_dir, report, body)
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    if lm_stage:
        from detectors.text.stacking import lm_inputs, train_stacker

        features, keep_sequence = lm_inputs()
        report["lm"] = train_stacker(data_dir, out_dir, seed=seed, rows=rows, features_path=features,
                                     keep_sequence=keep_sequence, replaced=previous)
    return report


def build_loaded(out_dir: Path, threads: int) -> Any:
    from detectors.contract import Device
    from detectors.text.detector import build_text_detector

    detector = build_text_detector(out_dir)
    detector.load(Device(intra_op_threads=threads))
    return detector


def _split_counts(rows: list[Row]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        entry = counts.setdefault(r.split, {"human": 0, "ai": 0, "groups": 0})
        entry["ai" if r.label else "human"] += 1
    for split in counts:
        counts[split]["groups"] = len({r.group for r in rows if r.split == split})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the bylinecheck text detector.")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--out", type=Path, default=Path("weights/text"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=1200.0)
    parser.add_argument("--cache", type=Path, default=None, help="optional feature cache folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = train_text_model(args.data, args.out, seed=args.seed, budget_s=args.budget_s, cache_dir=args.cache)
    logger.info("done in %.0f s; test AUROC %s", report["train_seconds"], report["test"]["overall"]["auroc"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
