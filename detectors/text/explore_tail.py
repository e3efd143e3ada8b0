"""Exploration (not shipped): does the text's tail without its opening words, or the spread of its sentence scores, add
to the stacker?

Caveats first: VALIDATION out-of-fold numbers only (5 folds grouped by ``pair_id``, ``stacking.cross_fit``), covered
texts, the LM on every text; the stacker columns are the shipped detector's (0.4.0). The idea: the Bao et al. AI texts
(writing, squad, pubmed) continue ~30 tokens of the human text they were made from, so their openings are human;
stage 1's logit of the text without its first N words (texts of at least N + 40 words; shorter ones keep their whole
text) is tried as one more stacker column, and beside stage 1's logit alone.

Result (2026-11-29): nothing. N=30: stacker AUROC / TPR@1%FPR 0.9748 / 0.678 -> 0.9748 / 0.675, stage 1 0.9614 / 0.575
-> 0.9615 / 0.580; N=50: 0.9749 / 0.662 and 0.9617 / 0.556. Per domain (stacker AUROC): writing 0.933 -> 0.933-0.934,
squad 0.702 -> 0.704, pubmed 0.894 -> 0.894. The LM features already include statistics after the first 32 tokens.

``--sentences``: aggregates of stage 1's per-sentence logits (the rows the detector scores anyway for the spans: max,
75th percentile, standard deviation, share above 0, mean) as stacker columns. Result (2026-11-29): nothing. All five:
stacker 0.9748 / 0.678 -> 0.9746 / 0.657, stage 1 0.9614 / 0.575 -> 0.9608 / 0.568; max and 75th percentile 0.9749 /
0.641; spread and share 0.9749 / 0.669 (stage 1 0.9613 / 0.584).

Run: ``python -m detectors.text.explore_tail --data ../shared/datasets/text [--sentences]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.data import load_rows
from detectors.text.evaluation import auroc, tpr_at_fpr

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def sentence_aggregates(detector: Any, texts: list[str]) -> np.ndarray:
    """Per text: max, 75th percentile, standard deviation, share above 0 and mean of stage 1's sentence logits."""
    out = []
    for a in range(0, len(texts), 64):
        prepared = [detector.prepare(t, with_sentences=True) for t in texts[a : a + 64]]
        for item, logits in zip(prepared, detector.ngram_logits(prepared), strict=True):
            s = logits[len(item.window_words) :]
            out.append([s.max(), np.quantile(s, 0.75), s.std(), (s > 0).mean(), s.mean()] if s.size else [0.0] * 5)
    return np.asarray(out, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    from detectors.text.stacking import cross_fit, shipped_inputs
    from detectors.text.training import sample_weights

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "text")
    parser.add_argument("--drop", type=int, nargs="+", default=[30, 50])
    parser.add_argument("--sentences", action="store_true", help="sentence-score aggregates instead of the tail")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = load_rows(args.data, 0)
    inp, detector = shipped_inputs(rows)
    ev = inp.va + inp.te
    v, y, cov = inp.v, inp.y, inp.covered
    groups, w = np.array([r.group for r in ev]), sample_weights(inp.va)
    z = np.clip(inp.z, -40, 40)
    covered = cov[v]

    def quality(s: np.ndarray) -> str:
        return f"{auroc(y[v][covered], s[covered]):.4f} / {tpr_at_fpr(y[v][covered], s[covered], 0.01):.3f}"

    base, stage1 = cross_fit(inp.x[v], y[v], w, groups[v]), cross_fit(z[v, None], y[v], w, groups[v])
    domains = np.array([r.domain for r in inp.va])
    if args.sentences:
        aggregates = sentence_aggregates(detector, [r.text for r in ev])
        for name, cols in (("all five", slice(0, 5)), ("max, q75", slice(0, 2)), ("std, share > 0", slice(2, 4))):
            plus = cross_fit(np.column_stack([inp.x[v], aggregates[v][:, cols]]), y[v], w, groups[v])
            stage1_plus = cross_fit(np.column_stack([z[v], aggregates[v][:, cols]]), y[v], w, groups[v])
            logger.info("sentences, %s: stacker %s -> %s; stage 1 %s -> %s", name, quality(base), quality(plus),
                        quality(stage1), quality(stage1_plus))
        return 0
    for drop in args.drop:
        tails = [" ".join(r.text.split()[drop:]) if len(r.text.split()) >= drop + 40 else r.text for r in ev]
        tail = np.nan_to_num(detector.raw_scores(tails)[0])
        plus = cross_fit(np.column_stack([inp.x[v], tail[v]]), y[v], w, groups[v])
        stage1_plus = cross_fit(np.column_stack([z[v], tail[v]]), y[v], w, groups[v])
        logger.info("drop %d: stacker %s -> %s; stage 1 %s -> %s", drop, quality(base), quality(plus), quality(stage1),
                    quality(stage1_plus))
        for name in ("writing", "squad", "pubmed"):
            m = covered & (domains == name)
            logger.info("  %s: %.3f -> %.3f", name, auroc(y[v][m], base[m]), auroc(y[v][m], plus[m]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
