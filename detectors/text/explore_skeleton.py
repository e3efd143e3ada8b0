"""Exploration (not shipped): a function-word skeleton n-gram model as a further stacker input.

Caveats first: VALIDATION numbers only (the stacker is cross-fitted on validation, 5 folds grouped by ``pair_id``,
exactly as ``detectors.text.stacking.cross_fit``); the test split is read only by ``--test``. The skeleton model
is fitted on the TRAIN split's first windows (like the n-gram model), so its validation logits are honest stacker
inputs; its L2 penalty is chosen on validation (one number, a mild optimism for the model alone).

The idea: content words carry topic and domain, which is what fails to transfer (SQuAD's Wikipedia paragraphs,
PubMed); function words, punctuation and word endings carry syntax, which authorship-attribution work finds
topic-independent. Each word that is not a stopword becomes ``_`` plus its last two letters (``-ly``, ``-ed``,
``-ng``), digits become ``<n>``; word 1-4-grams of that sequence are hashed into 2^18 buckets, sublinear tf, l2.

Result (``explore_skeleton_results.md``): adopted in text 0.4.0 with three-character endings. Note that the stacker
columns are read from the SHIPPED detector: after 0.4.0 they already hold the skeleton, so later runs measure a second
skeleton on top of it (``--keep-top 300`` / ``1000`` then added nothing: AUROC gain CI 0 to +0.001).

Run: ``python -m detectors.text.explore_skeleton --data ../shared/datasets/text [--suffix K] [--max-order N]
[--keep-top N] [--test]``; ``--holdout`` for the leave-one-out table, ``--joint SCALE`` for one fit against two.
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
from detectors.text.evaluation import auroc, tpr_at_fpr
from detectors.text.features import _TOKEN_RE, canonical
from detectors.text.stopwords import STOPWORDS

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
N_FEATURES = 1 << 18
ORDERS = (1, 2, 3, 4)
ALPHAS = (1e-5, 3e-6, 1e-6)
SUFFIX = 2


KEEP: list[frozenset[str]] = [STOPWORDS]  # the words kept whole (``--keep-top`` widens it)


def skeleton(text: str, suffix: int = SUFFIX) -> list[str]:
    """Stopwords and punctuation kept, other words reduced to their last ``suffix`` letters, numbers to ``<n>``."""
    out = []
    for tok in _TOKEN_RE.findall(canonical(text)):
        if tok in KEEP[0] or not tok[0].isalnum() and tok[0] != "_":
            out.append(tok)
        elif tok[0] == "0":
            out.append("<n>")
        else:
            out.append("_" + tok[-suffix:] if suffix else "_")
    return out


def skeleton_ngrams(text: str, suffix: int = SUFFIX, orders: tuple[int, ...] = ORDERS) -> list[str]:
    toks = skeleton(text, suffix)
    return [" ".join(toks[i:i + n]) for n in orders for i in range(len(toks) - n + 1)]


def matrix(texts: list[str], suffix: int = SUFFIX, orders: tuple[int, ...] = ORDERS) -> Any:
    from functools import partial

    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.preprocessing import normalize

    vec = HashingVectorizer(analyzer=partial(skeleton_ngrams, suffix=suffix, orders=orders), n_features=N_FEATURES,
                            alternate_sign=False, norm=None)
    x = vec.transform(texts).tocsr()
    x.data = 1.0 + np.log(x.data)
    return normalize(x)


def fit(x: Any, y: np.ndarray, w: np.ndarray, alpha: float) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", alpha=alpha, max_iter=20, tol=None, random_state=0, average=True).fit(
        x, y, sample_weight=w)


class _Linear:
    """``report.holdout_folds``' model interface over a skeleton SGD fit (no style block)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def decision(self, hashed: Any, style: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(hashed), dtype=np.float64)


def holdout(rows: list[Row], suffix: int, orders: tuple[int, ...], alpha: float) -> dict[str, dict[str, Any]]:
    """The n-gram model's leave-one-out protocol (``report.holdout_folds``: seeded half of train without the held-out
    generator family or domain group, scored on its validation + test first windows) for the skeleton model."""
    from detectors.text.report import holdout_folds
    from detectors.text.training import _holdout_features, first_window, sample_weights

    idx = {s: [i for i, r in enumerate(rows) if r.split == s] for s in ("train", "validation", "test")}
    data: dict[str, Any] = {"tr": idx["train"], "va": idx["validation"], "te": idx["test"]}
    for key, split in (("tr", "train"), ("va", "validation"), ("te", "test")):
        data[f"h_{key}"] = matrix([first_window(rows[i].text) for i in idx[split]], suffix, orders)
        data[f"s_{key}"] = np.zeros((len(idx[split]), 0))
    data["y_tr"] = np.array([rows[i].label for i in idx["train"]])
    data["w_tr"] = sample_weights([rows[i] for i in idx["train"]])
    return holdout_folds(rows, data, lambda h, s, y, w: _Linear(fit(h, y, w, alpha)), time.monotonic() + 3600,
                         _holdout_features(data))


def quality(y: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    return {"auroc": auroc(y, s), "tpr_1pct": tpr_at_fpr(y, s, 0.01)}


def by_group(rows: list[Row], y: np.ndarray, scores: dict[str, np.ndarray], mask: np.ndarray) -> list[str]:
    groups = sorted({r.domain_group for r in rows})
    lines = ["| domain group | n_human | n_ai | " + " | ".join(scores) + " |",
             "|---|---:|---:|" + "---:|" * len(scores)]
    for g in groups:
        m = mask & np.array([r.domain_group == g for r in rows])
        if (y[m] == 0).sum() < 5 or (y[m] == 1).sum() < 5:
            continue
        cells = [f"{auroc(y[m], s[m]):.3f}" for s in scores.values()]
        lines.append(f"| {g} | {(y[m] == 0).sum()} | {(y[m] == 1).sum()} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    from detectors.text.stacking import cross_fit, shipped_inputs
    from detectors.text.training import first_window, sample_weights

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "text")
    parser.add_argument("--test", action="store_true")
    parser.add_argument("--suffix", type=int, default=SUFFIX)
    parser.add_argument("--keep-top", type=int, default=0, help="also keep the train split's N most frequent words whole")
    parser.add_argument("--joint", type=float, default=None, help="skeleton block scale: joint-fit comparison only")
    parser.add_argument("--holdout", action="store_true", help="only the leave-one-out table of the skeleton model")
    parser.add_argument("--max-order", type=int, default=max(ORDERS))
    parser.add_argument("--out", type=Path, default=REPO / ".devdata" / "explore_skeleton.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    suffix, orders = args.suffix, tuple(range(1, args.max_order + 1))
    if args.keep_top:
        from collections import Counter

        from detectors.text.training import first_window

        counts = Counter(t for r in load_rows(args.data, 0) if r.split == "train"
                         for t in _TOKEN_RE.findall(canonical(first_window(r.text))) if t[0].isalpha())
        KEEP[0] = STOPWORDS | frozenset(w for w, _ in counts.most_common(args.keep_top))
    t0 = time.monotonic()
    if args.joint is not None:
        logger.info("%s", json.dumps(joint(args.data, suffix, orders, args.joint), indent=2))
        return 0
    rows = load_rows(args.data, 0)
    if args.holdout:
        folds = holdout(rows, suffix, orders, 3e-6)
        args.out.write_text(json.dumps(folds, indent=2), encoding="utf-8")
        for name, f in folds.items():
            logger.info("| %s | %d | %d | %.3f | %.3f |", name, f["n_ai"], f["n_human"], f["auroc"], f["tpr_at_1pct_fpr"])
        return 0
    train = [r for r in rows if r.split == "train"]
    x_tr = matrix([first_window(r.text) for r in train], suffix, orders)
    y_tr, w_tr = np.array([r.label for r in train]), sample_weights(train)
    inp, _ = shipped_inputs(rows)
    eval_rows = inp.va + inp.te
    x_ev = matrix([r.text for r in eval_rows], suffix, orders)
    logger.info("features ready (%.0f s)", time.monotonic() - t0)
    v, t, y = inp.v, inp.t, inp.y
    cov = inp.covered
    best = None
    trials = []
    for alpha in ALPHAS:
        model = fit(x_tr, y_tr, w_tr, alpha)
        z = model.decision_function(x_ev)
        q = quality(y[v & cov], z[v & cov])
        trials.append({"alpha": alpha, **q})
        logger.info("alpha %g: skeleton alone on validation %s", alpha, q)
        if best is None or (q["auroc"] or 0) > best[0]:
            best = ((q["auroc"] or 0), alpha, z)
    assert best is not None
    skel = best[2]
    groups = np.array([r.group for r in eval_rows])
    w = sample_weights(inp.va)
    base = cross_fit(inp.x[v], y[v], w, groups[v])
    plus = cross_fit(np.column_stack([inp.x[v], skel[v]]), y[v], w, groups[v])
    cv = cov[v]
    zl = np.clip(inp.z, -40, 40)
    stage1 = cross_fit(zl[v, None], y[v], w, groups[v])
    stage1_plus = cross_fit(np.column_stack([zl[v], skel[v]]), y[v], w, groups[v])
    result: dict[str, Any] = {"suffix": suffix, "orders": orders, "trials": trials, "alpha": best[1],
                              "stage1_oof": quality(y[v][cov[v]], stage1[cov[v]]),
                              "stage1_plus_oof": quality(y[v][cov[v]], stage1_plus[cov[v]]),
                              "oof_base": quality(y[v][cv], base[cv]), "oof_plus": quality(y[v][cv], plus[cv])}
    rng = np.random.default_rng(0)
    ug = np.unique(groups[v][cv])
    gi = {g: np.flatnonzero(groups[v][cv] == g) for g in ug}
    diffs = []
    for _ in range(300):
        pick = np.concatenate([gi[g] for g in rng.choice(ug, ug.size)])
        yy = y[v][cv][pick]
        diffs.append((auroc(yy, plus[cv][pick]) or 0) - (auroc(yy, base[cv][pick]) or 0))
    result["oof_auroc_diff_ci95"] = [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]
    va_rows = inp.va
    table = by_group(va_rows, y[v], {"ngram": inp.z[v], "skeleton": skel[v], "stack": base, "stack+skeleton": plus}, cv)
    result["groups_validation"] = table
    if args.test:
        from detectors.text.stacking import apply_logistic, fit_logistic

        sb = apply_logistic(fit_logistic(inp.x[v], y[v], w), inp.x[t])
        sp = apply_logistic(fit_logistic(np.column_stack([inp.x[v], skel[v]]), y[v], w),
                            np.column_stack([inp.x[t], skel[t]]))
        ct = cov[t]
        result["test_base"], result["test_plus"] = quality(y[t][ct], sb[ct]), quality(y[t][ct], sp[ct])
        result["test_skeleton_alone"] = quality(y[t][ct], skel[t][ct])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    logger.info("%s\n%s", json.dumps({k: v_ for k, v_ in result.items() if k != "groups_validation"}, indent=2),
                "\n".join(table))
    logger.info("done (%.0f s)", time.monotonic() - t0)
    return 0



def joint(data_dir: Path, suffix: int, orders: tuple[int, ...], scale: float) -> dict[str, Any]:
    """Validation first-window quality of: the n-gram model as shipped (refitted), the n-gram model with the skeleton
    block appended to its features (one SGD fit), and the two fitted apart then combined (cross-fitted on validation)."""
    from scipy import sparse

    from detectors.text.stacking import cross_fit
    from detectors.text.training import C_GRID, _featurise_splits, first_window, fit_linear, fit_wordfreq, sample_weights

    rows = load_rows(data_dir, 0)
    logfreq, rare = fit_wordfreq([first_window(r.text) for r in rows if r.split == "train"])
    logfreq = logfreq.astype(np.float16).astype(np.float32)
    data = _featurise_splits(rows, logfreq, rare, REPO / ".devdata" / "text_cache")
    sk = {k: matrix([first_window(rows[i].text) for i in data[k]], suffix, orders) for k in ("tr", "va")}
    y_va = data["y_va"]
    out: dict[str, Any] = {}
    z_sep = {}
    for alpha in C_GRID:
        base = fit_linear(data["h_tr"], data["s_tr"], data["y_tr"], data["w_tr"], alpha)
        z_sep["ngram"] = base.decision(data["h_va"], data["s_va"])
        out[f"ngram alpha={alpha}"] = quality(y_va, z_sep["ngram"])
        both = fit_linear(sparse.hstack([data["h_tr"], scale * sk["tr"]]).tocsr(), data["s_tr"], data["y_tr"],
                          data["w_tr"], alpha)
        out[f"joint alpha={alpha}"] = quality(y_va, both.decision(sparse.hstack([data["h_va"], scale * sk["va"]]).tocsr(),
                                                                  data["s_va"]))
        logger.info("%s", out)
    skel = fit(sk["tr"], data["y_tr"], data["w_tr"], 3e-6).decision_function(sk["va"])
    va_rows = [rows[i] for i in data["va"]]
    groups = np.array([r.group for r in va_rows])
    combo = cross_fit(np.column_stack([z_sep["ngram"], skel]), y_va, sample_weights(va_rows), groups)
    out["separate, combined (oof)"] = quality(y_va, combo)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
