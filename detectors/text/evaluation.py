"""Evaluation of a text detector on labelled rows: AUROC, TPR at fixed FPR, ECE, coverage (numpy only).

Caveats first: every metric except coverage is computed on the rows the detector did not abstain
on. TPR at 1%/5% FPR uses the threshold that reaches that FPR on the evaluated human rows (an
oracle threshold, the usual definition); "FPR at likely_ai" uses the manifest threshold. Per
generator, AUROC compares that generator's AI rows with all human rows. A group with a single class
reports ``None`` for the metrics that need both.

Run: ``python -m detectors.text.evaluation --input FILE.jsonl [--weights weights/text]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import DetectorOutput, Device, TextItem
from detectors.metrics import auroc as shared_auroc
from detectors.metrics import tpr_at_fpr as shared_tpr_at_fpr

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "text"
MIN_GROUP = 10


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None when a class is missing."""
    value = shared_auroc(scores, labels)
    return None if np.isnan(value) else value


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float | None:
    """Share of AI rows caught at the strictest threshold keeping FPR <= ``fpr`` on the human rows."""
    value = shared_tpr_at_fpr(scores, labels, fpr)
    return None if np.isnan(value) else value


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> float | None:
    """Weighted mean |accuracy - confidence| over ``bins`` equal-width probability bins."""
    if probs.size == 0:
        return None
    which = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(float(labels[sel].mean()) - float(probs[sel].mean()))
    return float(total / probs.size)


def group_metrics(labels: np.ndarray, raw: np.ndarray, probs: np.ndarray, covered: np.ndarray, thr: float) -> dict[str, Any]:
    """Metrics for one group. ``covered`` marks rows not abstained on."""
    y, s, p = labels[covered], raw[covered], probs[covered]
    human = y == 0
    return {
        "n": int(labels.size),
        "n_human": int((labels == 0).sum()),
        "n_ai": int((labels == 1).sum()),
        "coverage": float(covered.mean()) if labels.size else None,
        "auroc": auroc(y, s),
        "tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(y, s, 0.05),
        "fpr_at_likely_ai": float(np.mean(p[human] >= thr)) if human.any() else None,
        "tpr_at_likely_ai": float(np.mean(p[~human] >= thr)) if (~human).any() else None,
        "ece": expected_calibration_error(y, p),
    }


def run_detector(detector: Any, texts: Sequence[str]) -> list[DetectorOutput]:
    """Drive ``detector`` through preprocess / forward / postprocess in batches (sorted by length)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[DetectorOutput | None] = [None] * len(texts)
    size = int(detector.max_batch_size)
    for a in range(0, len(order), size):
        ids = order[a : a + size]
        prepared = [detector.preprocess(TextItem(texts[i])) for i in ids]
        for i, out in zip(ids, detector.postprocess(prepared, detector.forward(prepared)), strict=True):
            outputs[i] = out
    return [o for o in outputs if o is not None]


def evaluate_outputs(rows: Sequence[Mapping[str, Any]], outputs: Sequence[DetectorOutput], thr: float,
                     intervals: bool = False) -> dict[str, Any]:
    """Overall, per-domain and per-generator metrics for detector outputs on labelled rows."""
    raw = np.array([o.raw_score if o.raw_score is not None else np.nan for o in outputs], dtype=np.float64)
    probs = np.array([o.probability if o.probability is not None else np.nan for o in outputs], dtype=np.float64)
    result = evaluate_arrays(rows, raw, probs, thr, intervals)
    result["abstain_reasons"] = _count(o.abstain_reason for o in outputs if o.abstain_reason)
    return result


def evaluate_arrays(rows: Sequence[Mapping[str, Any]], raw: np.ndarray, probs: np.ndarray, thr: float,
                    intervals: bool = False) -> dict[str, Any]:
    """:func:`evaluate_outputs` on arrays of raw scores and probabilities (NaN probability = abstained). With
    ``intervals`` each domain and generator also gets ``auroc_ci``: the 95% interval of its AUROC on the covered rows
    (:func:`group_auroc_interval`), and the result ``overall_ci``: those of the overall AUROC and TPR@1%FPR
    (``metrics.headline_intervals``); both resample rows or, where given, whole ``pair_id`` groups."""
    labels = np.array([1 if r["label"] == "ai" else 0 for r in rows], dtype=np.int64)
    covered = ~np.isnan(probs)
    domains = np.array([str(r.get("domain") or "unknown") for r in rows])
    gens = np.array([str(r.get("generator") or "") for r in rows])
    result: dict[str, Any] = {"threshold_likely_ai": thr, "overall": group_metrics(labels, raw, probs, covered, thr)}
    result["per_domain"] = {
        d: group_metrics(labels[m], raw[m], probs[m], covered[m], thr)
        for d in sorted(set(domains))
        if (m := domains == d).sum() >= MIN_GROUP
    }
    human = labels == 0
    result["per_generator"] = {
        g: group_metrics(labels[m], raw[m], probs[m], covered[m], thr)
        for g in sorted(set(gens[~human]))
        if (m := (gens == g) | human).sum() - human.sum() >= MIN_GROUP
    }
    if intervals:
        from detectors.metrics import headline_intervals

        groups = np.array([str(r.get("pair_id") or f"row-{i}") for i, r in enumerate(rows)])
        result["overall_ci"] = headline_intervals(raw[covered], labels[covered], groups[covered])
        for d, metrics in result["per_domain"].items():
            metrics["auroc_ci"] = group_auroc_interval(labels, raw, covered, groups, domains == d)
        for g, metrics in result["per_generator"].items():
            metrics["auroc_ci"] = group_auroc_interval(labels, raw, covered, groups, (gens == g) | human)
    return result


def group_auroc_interval(labels: np.ndarray, raw: np.ndarray, covered: np.ndarray, groups: np.ndarray,
                         mask: np.ndarray) -> list[float] | None:
    """95% interval of one group's AUROC on its covered rows, resampling whole ``pair_id`` groups (1000 draws):
    most domains here have 20-40 human test texts, so their AUROC moves by several points between samples, and a
    per-domain target needs the interval beside the point estimate. None when a class is missing."""
    from detectors.metrics import grouped_bootstrap_ci

    m = mask & covered
    if len(set(labels[m].tolist())) < 2:
        return None
    lo, hi = grouped_bootstrap_ci(raw[m], labels[m], groups[m], shared_auroc)
    return [lo, hi]


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def evaluate_rows(detector: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run a loaded detector on rows (``text``, ``label`` human|ai, optional ``domain``, ``generator``, ``pair_id``);
    the overall AUROC and TPR@1%FPR get 95% intervals (``overall_ci``), resampling rows or, where given, whole
    ``pair_id`` groups (a human text and the AI texts made from it move together); so do each domain's and
    generator's AUROC (``auroc_ci``)."""
    outputs = run_detector(detector, [str(r["text"]) for r in rows])
    thresholds = getattr(detector, "thresholds", None) or detector.manifest.thresholds  # TextDetector: per lm_mode
    return evaluate_outputs(rows, outputs, float(thresholds.likely_ai), intervals=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


COLUMNS = ("n", "n_human", "n_ai", "coverage", "auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "fpr_at_likely_ai", "ece")


def _interval(value: Any) -> str:
    return "-" if not value else f"{value[0]:.3f}-{value[1]:.3f}"


def format_table(groups: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """A Markdown table of group metrics (with an ``auroc_95ci`` column when the groups carry ``auroc_ci``)."""
    ci = any("auroc_ci" in m for m in groups.values())
    columns = (*COLUMNS[:5], "auroc_95ci", *COLUMNS[5:]) if ci else COLUMNS
    head = f"| {title} | " + " | ".join(columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    lines = [head, sep] + [f"| {g} | " + " | ".join(_interval(m.get("auroc_ci")) if c == "auroc_95ci" else _fmt(m.get(c))
                                                   for c in columns) + " |" for g, m in groups.items()]
    return "\n".join(lines)


def format_evaluation(result: Mapping[str, Any]) -> str:
    """Human-readable Markdown report of :func:`evaluate_rows` output."""
    ci = result.get("overall_ci")
    parts = [
        f"likely_ai threshold: {result['threshold_likely_ai']:.4f}; abstentions: {dict(result.get('abstain_reasons', {}))}",
        format_table({"overall": result["overall"]}, "group")
        + ("" if not ci else f"\n\n95% intervals (bootstrap over rows, or pair_id groups where given): AUROC "
           f"{_fmt(ci['auroc'][0])}-{_fmt(ci['auroc'][1])}, TPR@1%FPR {_fmt(ci['tpr_at_1pct_fpr'][0])}-"
           f"{_fmt(ci['tpr_at_1pct_fpr'][1])}"),
        format_table(result["per_domain"], "domain"),
        format_table(result["per_generator"], "generator (vs all human)"),
    ]
    return "\n\n".join(parts) + "\n"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    from detectors.text.detector import build_text_detector

    parser = argparse.ArgumentParser(description="Evaluate the text detector on a labelled JSONL file.")
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    detector = build_text_detector(args.weights)
    detector.load(Device())
    result = evaluate_rows(detector, read_jsonl(args.input))
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else format_evaluation(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
