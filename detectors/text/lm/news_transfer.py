"""Development measurement: how the cascade's inputs transfer to news they never saw (leave-news-out).

Caveats first: every model is refitted without the news domain group (Reuters + LLMFake, both labels): the
n-gram model (first window, a seeded 50% of the remaining train split as the card's n-gram leave-one-out, the
shipped alpha, a word-frequency table from the remaining train texts), each token-sequence CNN
(``sequence_training.fit``, all remaining train texts) and the stacker (validation texts outside news, 5-fold-
free single fit). Scored on the news texts of the validation split (the choice) and the test split (reported),
with the LM on every text (no band). It asks which stacker columns keep working on news styles the models
never saw, which is what a newsroom meets; it is not a measurement of the shipped weights. Needs torch and
scikit-learn; ~15 minutes on 2 cores.

Run: ``python -m detectors.text.lm.news_transfer --data ../shared/datasets/text``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.data import Row, load_rows

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
RUN_DIR = REPO / ".devdata" / "lm_features_run"
TOKENS = REPO / ".devdata" / "lm_gpu" / "tokens.npz"
OUT = REPO / ".devdata" / "news_transfer.json"
NEWS = "news (Reuters + LLMFake)"


def ngram_logits(rows: list[Row], ev: list[Row], alpha: float) -> np.ndarray:
    """First-window n-gram logits for ``ev`` from a refit without news (50% seeded train subsample)."""
    from detectors.text.report import FOLD_TRAIN_SHARE
    from detectors.text.training import _cached_matrix, first_window, fit_linear, fit_wordfreq, sample_weights

    train = [r for r in rows if r.split == "train" and r.domain_group != NEWS]
    keep = np.random.default_rng(0).random(len(train)) < FOLD_TRAIN_SHARE
    train = [r for r, k in zip(train, keep, strict=True) if k]
    logfreq, rare = fit_wordfreq([first_window(r.text) for r in train])
    h, s = _cached_matrix(None, "train", [first_window(r.text) for r in train], logfreq, rare)
    model = fit_linear(h, s, np.array([r.label for r in train]), sample_weights(train), alpha)
    he, se = _cached_matrix(None, "eval", [first_window(r.text) for r in ev], logfreq, rare)
    return np.asarray(model.decision(he, se), dtype=np.float64)


def cnn_logits(rows: list[Row], ev: list[Row], names: list[str]) -> dict[str, np.ndarray]:
    from detectors.text.lm import sequence_training as st
    from detectors.text.lm.sequence import ALL_VARIANTS

    inputs = st.fit_inputs([r for r in rows if r.split == "train" and r.domain_group != NEWS], RUN_DIR, TOKENS, 256)
    evd = st.load_token_data(RUN_DIR, TOKENS, ev, 256)
    out = {}
    for name in names:
        variant = ALL_VARIANTS[name]
        model, _ = st.fit(inputs["data"], inputs["y"], inputs["w"], inputs["fit_rows"], inputs["stop_rows"], variant)
        out[name] = st.predict_torch(model, evd, np.arange(len(ev)))
    return out


def stack(ev: list[Row], z: np.ndarray, lm: np.ndarray, names: tuple[str, ...], split: str) -> dict[str, Any]:
    """Fit on validation non-news, score ``split``'s news texts (validation: the choice; test: reported);
    AUROC / TPR@1%FPR and per-source mean log-odds."""
    from detectors.text.evaluation import auroc, tpr_at_fpr
    from detectors.text.lm.stacker import design
    from detectors.text.stacking import apply_logistic, fit_logistic
    from detectors.text.training import sample_weights

    raw = design(z, lm, names, [np.nan] * (len(names) + 3))
    va = np.array([r.split == "validation" and r.domain_group != NEWS for r in ev])
    te = np.array([r.split == split and r.domain_group == NEWS for r in ev])
    fill = list(np.nan_to_num(np.nanmedian(raw[va], axis=0)))
    x = design(z, lm, names, fill)
    params = fit_logistic(x[va], np.array([r.label for r in ev])[va], sample_weights([r for r, k in zip(ev, va, strict=True)
                                                                                         if k]))
    s = apply_logistic(params, x[te])
    y = np.array([r.label for r in ev])[te]
    dom = np.array([r.domain for r in ev])[te]
    return {"auroc": auroc(y, s), "tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01),
            "reuters_human_mean": float(s[dom == "news"].mean()),
            "llmfake_human_mean": float(s[(dom != "news") & (y == 0)].mean()),
            "llmfake_ai_mean": float(s[y == 1].mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--variant", action="append", default=[], help="CNN variants to refit (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from detectors.text.lm.sequence import ALL_VARIANTS
    from detectors.text.lm.stats import FEATURE_NAMES
    from detectors.text.stacking import lm_features

    t0 = time.monotonic()
    rows = load_rows(args.data, 0)
    ev = [r for r in rows if r.split != "train"]
    alpha = float(json.loads((REPO / "weights" / "text" / "training_report.json").read_text())["alpha"])
    z = ngram_logits(rows, ev, alpha)
    logger.info("n-gram refit done (%.0f s)", time.monotonic() - t0)
    names = args.variant or list(ALL_VARIANTS)
    cnn = cnn_logits(rows, ev, names)
    logger.info("CNN refits done (%.0f s)", time.monotonic() - t0)
    lm = lm_features(ev, RUN_DIR / "features.npz")
    arrays: dict[str, Any] = {"ids": np.array([r.id for r in ev]), "ngram": z, **cnn}
    np.savez_compressed(args.out.with_suffix(".npz"), **arrays)
    configs: dict[str, tuple[str, ...]] = {"0.2.0 columns": ()}
    for name in names:
        configs[f"+ {name}"] = (name,)
    if len(names) > 1:
        configs["+ all refitted CNNs"] = tuple(names)
    result: dict[str, Any] = {}
    for label, extra in configs.items():
        cols = np.column_stack([lm, *[cnn[n] for n in extra]]) if extra else lm
        result[label] = {sp: stack(ev, z, cols, (*FEATURE_NAMES, *extra), sp) for sp in ("validation", "test")}
        logger.info("%s: %s", label, result[label])
    from detectors.text.evaluation import auroc

    for sp in ("validation", "test"):
        te = np.array([r.split == sp and r.domain_group == NEWS for r in ev])
        y = np.array([r.label for r in ev])[te]
        result[f"inputs alone ({sp} news AUROC)"] = {"ngram": auroc(y, z[te]), **{n: auroc(y, v[te]) for n, v in cnn.items()}}
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    logger.info("done (%.0f s)", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
