"""Exploration (not shipped): richer token features, a tree stacker, the band, length interactions.

Caveats first: every number here is a VALIDATION out-of-fold number (5 folds grouped by ``pair_id``,
``GroupKFold`` exactly as ``detectors.text.stacking.cross_fit``); the test split is not read except by
``--test CONFIG`` (to be run once, for the chosen configuration and 0.2.0). Token-level features are
recomputed from the GPU run's per-token files (``token_ll`` / ``token_entropy`` / ``token_logrank``,
float16), so they carry float16 rounding (~5e-4 relative) that the float32 service path does not; the
token files hold no per-token Var[log p], so no variance-normalised per-token feature is tried.

Result (19 configurations, table in GPU_RUN.md "Phase 3"): none beats 0.2.0's OOF TPR@1%FPR (0.683); token
features keep AUROC at 0.972 and lower the tail, trees raise AUROC to 0.975 (squad 0.68 -> 0.74) but lose the tail
and raise the likely_ai FPR on human text. Weights unchanged.

Run: ``python -m detectors.text.lm.explore_stacker --data ../shared/datasets/text`` (first run builds
``.devdata/explore_stacker/cache.npz`` from the n-gram model, ~2 min; later runs read it).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.lm.stats import FEATURE_NAMES

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
RUN_DIR = REPO / ".devdata" / "lm_features_run"
CACHE = REPO / ".devdata" / "explore_stacker" / "cache.npz"
FOLDS = 5
TARGET_FPR = 0.01
BAND = (0.3, 0.9872)
WINDOW = 32


def build_cache(data_dir: Path, weights: Path, seed: int = 0) -> None:
    """n-gram logits, coverage, labels, groups and fairness slices for validation + test, saved to ``CACHE``."""
    from detectors.contract import Device
    from detectors.text.data import load_rows
    from detectors.text.detector import build_text_detector
    from detectors.text.features import _mattr, canonical
    from detectors.text.normalise import normalise, sentence_spans, words
    from detectors.text.report import flesch_reading_ease

    rows = [r for r in load_rows(data_dir, seed) if r.split in ("validation", "test")]
    rows.sort(key=lambda r: r.split != "validation")
    det = build_text_detector(weights, lm_mode="off")
    det.load(Device(intra_op_threads=1))
    z, n_words = det.raw_scores([r.text for r in rows])
    covered = np.array([det.abstain_reason(normalise(r.text).text, int(n)) is None
                        for r, n in zip(rows, n_words, strict=True)])
    p = np.array([det.ngram_calibration(float(v)) if not np.isnan(v) else 0.0 for v in z])
    mattr = np.array([_mattr(words(canonical(r.text))) if r.label == 0 else np.nan for r in rows])
    flesch = np.array([flesch_reading_ease(r.text, max(len(sentence_spans(r.text)), 1)) if r.label == 0 else np.nan
                       for r in rows])
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        CACHE, ids=np.array([r.id for r in rows]), split=np.array([r.split for r in rows]),
        y=np.array([r.label for r in rows]), z=np.nan_to_num(z), p=p, covered=covered, words=n_words,
        domain=np.array([r.domain for r in rows]), domain_group=np.array([r.domain_group for r in rows]),
        group=np.array([r.group for r in rows]), family=np.array([r.family for r in rows]), mattr=mattr, flesch=flesch,
    )


def token_arrays(ids: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per id: (log p, entropy, log rank) of its scored tokens, float64 from the float16 files."""
    f = np.load(RUN_DIR / "features.npz", allow_pickle=False)
    lengths = f["lengths"].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    at = {str(k): j for j, k in enumerate(f["ids"])}
    vals = [np.load(RUN_DIR / f"token_{n}.npz")["values"].astype(np.float64) for n in ("ll", "entropy", "logrank")]
    out = []
    for i in ids:
        j = at[str(i)]
        sl = slice(starts[j], starts[j + 1])
        out.append((vals[0][sl], vals[1][sl], vals[2][sl]))
    return out


def _windows(v: np.ndarray, w: int) -> np.ndarray:
    if v.size <= w:
        return np.array([v.mean()])
    c = np.concatenate([[0.0], np.cumsum(v)])
    return np.asarray((c[w:] - c[:-w]) / w, dtype=np.float64)


EXTRA_NAMES = (
    "ll_p25", "ll_p75", "ll_p90", "ll_share_gt_m0.5", "ll_share_lt_m5", "ll_share_lt_m8",
    "logrank_p75", "logrank_p90", "rank_le3_share", "rank_gt100_share",
    "win_ll_max", "win_ll_min", "win_ll_std",
    "surprise_mean", "surprise_std", "surprise_p90", "surprise_pos_share",
    "entropy_p10", "entropy_p90", "low_entropy_share",
    "ll_lag1_corr", "logrank_mean_from32", "top1_share_from32", "entropy_mean_from32",
)


def extra_features(ll: np.ndarray, ent: np.ndarray, logrank: np.ndarray) -> np.ndarray:
    """``EXTRA_NAMES`` for one text's token arrays (NaN where undefined)."""
    n = ll.size
    if n == 0:
        return np.full(len(EXTRA_NAMES), np.nan)
    s = -ll - ent  # surprisal above the model's own expected surprisal (Fast-DetectGPT numerator, sign flipped)
    win = _windows(ll, WINDOW)
    tail = slice(32, None)
    lag = float(np.corrcoef(ll[:-1], ll[1:])[0, 1]) if n > 2 and ll[:-1].std() > 0 and ll[1:].std() > 0 else np.nan
    v = [
        np.percentile(ll, 25), np.percentile(ll, 75), np.percentile(ll, 90), np.mean(ll > -0.5), np.mean(ll < -5),
        np.mean(ll < -8), np.percentile(logrank, 75), np.percentile(logrank, 90), np.mean(logrank <= np.log(3) + 1e-3),
        np.mean(logrank > np.log(100)), win.max(), win.min(), win.std(),
        s.mean(), s.std(), np.percentile(s, 90), np.mean(s > 0),
        np.percentile(ent, 10), np.percentile(ent, 90), np.mean(ent < 1.0),
        lag,
        logrank[tail].mean() if n > 32 else np.nan, np.mean(logrank[tail] <= 1e-3) if n > 32 else np.nan,
        ent[tail].mean() if n > 32 else np.nan,
    ]
    return np.asarray(v, dtype=np.float64)


class Data:
    def __init__(self) -> None:
        c = np.load(CACHE, allow_pickle=False)
        self.c = {k: c[k] for k in c}
        f = np.load(RUN_DIR / "features.npz", allow_pickle=False)
        at = {str(k): j for j, k in enumerate(f["ids"])}
        idx = [at[str(i)] for i in self.c["ids"]]
        self.lm = np.asarray(f["features"], dtype=np.float64)[idx]
        extra_path = CACHE.parent / "extra.npz"
        if extra_path.is_file() and tuple(np.load(extra_path)["names"]) == EXTRA_NAMES:
            self.extra = np.load(extra_path)["values"]
        else:
            t0 = time.monotonic()
            self.extra = np.stack([extra_features(*a) for a in token_arrays(self.c["ids"])])
            np.savez_compressed(extra_path, values=self.extra, names=np.array(EXTRA_NAMES))
            logger.info("extra features %.0f s", time.monotonic() - t0)
        self.v = self.c["split"] == "validation"
        self.t = ~self.v


def base_design(d: Data, mask: np.ndarray) -> np.ndarray:
    from detectors.text.lm.stacker import design

    raw = design(d.c["z"], d.lm, FEATURE_NAMES, [np.nan] * (len(FEATURE_NAMES) + 3))
    fill = np.nan_to_num(np.nanmedian(raw[d.v], axis=0))
    return np.asarray(design(d.c["z"], d.lm, FEATURE_NAMES, list(fill))[mask], dtype=np.float64)


def fill_nan(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    med = np.nan_to_num(np.nanmedian(ref, axis=0))
    out = x.copy()
    bad = np.isnan(out)
    out[bad] = med[np.nonzero(bad)[1]]
    return out


def fit_lr(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    m = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / std, y, sample_weight=w)
    return lambda q: np.asarray(m.decision_function((q - mean) / std), dtype=np.float64)


def fit_gbt(x: np.ndarray, y: np.ndarray, w: np.ndarray, **kw: Any) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    params = {"max_iter": 200, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 40, "l2_regularization": 1.0,
              "random_state": 0}
    params.update(kw)
    m = HistGradientBoostingClassifier(**params).fit(x, y, sample_weight=w)
    return lambda q: np.asarray(m.decision_function(q), dtype=np.float64)


def fit_blend(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Average of the logistic and the tree stacker's log-odds."""
    a, b = fit_lr(x, y, w), fit_gbt(x, y, w)
    return lambda q: 0.5 * (a(q) + b(q))


def cross_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, fit: Callable[..., Any],
              fit_mask: np.ndarray | None = None) -> np.ndarray:
    """OOF scores (GroupKFold, as stacking.cross_fit); ``fit_mask`` restricts the fitting rows (e.g. band)."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for fi, hi in GroupKFold(FOLDS).split(x, y, groups):
        if fit_mask is not None:
            fi = fi[fit_mask[fi]]
        oof[hi] = fit(x[fi], y[fi], w[fi])(x[hi])
    return oof


def metrics(d: Data, mask: np.ndarray, s: np.ndarray, inside: np.ndarray) -> dict[str, Any]:
    """AUROC, TPR@1%FPR, per-domain AUROC min, LM shares, calibrated likely_ai FPR slices on covered texts."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    cov = d.c["covered"][mask]
    y, dom = d.c["y"][mask][cov], d.c["domain"][mask][cov]
    sc = s[cov]
    per: dict[str, float] = {}
    for name in np.unique(dom):
        m = dom == name
        if 0 < y[m].sum() < m.sum():
            per[str(name)] = auroc(y[m], sc[m]) or 0.0
    weak = {k: round(per[k], 3) for k in ("squad", "pubmed", "writing", "Sports") if k in per}
    ins = inside[cov]
    return {"auroc": auroc(y, sc), "tpr1": tpr_at_fpr(y, sc, TARGET_FPR), "min_dom": min(per.values()),
            "min_dom_name": min(per, key=lambda k: per[k]), "weak": weak,
            "lm_share": float(ins.mean()), "lm_share_human": float(ins[y == 0].mean())}


def fairness(d: Data, s_val: np.ndarray) -> dict[str, float]:
    """Isotonic + likely_ai threshold exactly as stacking.calibrate_scores on validation OOF; FPR slices there."""
    from detectors.text.stacking import calibrate_scores

    v = d.v
    modern = d.c["domain"][v] != "news"
    cal = calibrate_scores(d.c["y"][v], s_val, d.c["covered"][v], modern)
    from detectors.calibration import calibration_from_dict

    f = calibration_from_dict(cal["calibration"])
    cov = d.c["covered"][v]
    y = d.c["y"][v]
    prob = np.array([f(float(x)) for x in s_val])
    thr = cal["thresholds"]["likely_ai"]
    hum = cov & (y == 0)
    mattr, flesch = d.c["mattr"][v], d.c["flesch"][v]
    plain = hum & ((mattr <= np.nanpercentile(mattr[hum], 10)) | (flesch >= np.nanpercentile(flesch[hum], 90)))
    reuters = hum & (d.c["domain"][v] == "news")
    return {"likely_ai": thr, "fpr": float(np.mean(prob[hum] >= thr)), "fpr_reuters": float(np.mean(prob[reuters] >= thr)),
            "fpr_plain": float(np.mean(prob[plain] >= thr)), "tpr_at_likely_ai": float(np.mean(prob[cov & (y == 1)] >= thr))}


def interactions(d: Data) -> np.ndarray:
    """n-gram logit x log tokens, n-gram logit squared, LM ll_mean / logrank_mean / fastdetect x log tokens."""
    z = np.clip(d.c["z"], -40, 40)
    lt = np.log1p(d.lm[:, FEATURE_NAMES.index("n_tokens")])
    cols = [z * lt, z * z]
    for n in ("ll_mean", "logrank_mean", "fastdetect", "entropy_mean"):
        cols.append(np.nan_to_num(d.lm[:, FEATURE_NAMES.index(n)]) * lt)
    return np.column_stack(cols)


EXTRA_SETS: dict[str, tuple[str, ...]] = {
    "ll_hist": ("ll_p25", "ll_p75", "ll_p90", "ll_share_gt_m0.5", "ll_share_lt_m5", "ll_share_lt_m8"),
    "rank": ("logrank_p75", "logrank_p90", "rank_le3_share", "rank_gt100_share"),
    "window": ("win_ll_max", "win_ll_min", "win_ll_std"),
    "surprise": ("surprise_mean", "surprise_std", "surprise_p90", "surprise_pos_share"),
    "entropy": ("entropy_p10", "entropy_p90", "low_entropy_share"),
    "from32": ("logrank_mean_from32", "top1_share_from32", "entropy_mean_from32"),
    "lag": ("ll_lag1_corr",),
}


def run_config(d: Data, x: np.ndarray, fit: Callable[..., Any], band: tuple[float, float], band_fit: bool = False,
               folds: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Validation OOF cascade scores and their metrics for design ``x`` (all rows) and stacker ``fit``."""
    from detectors.text.training import sample_weights

    v = d.v
    y, g = d.c["y"][v], d.c["group"][v]
    w = _weights(d, sample_weights)
    p = d.c["p"][v]
    inside = (p >= band[0]) & (p <= band[1])
    xv = x[v]
    if folds is None:
        oof = cross_fit(xv, y, w, g, fit, inside if band_fit else None)
    else:
        oof = np.zeros(len(y))
        for k in range(FOLDS):
            fi = np.nonzero((folds != k) & (inside if band_fit else True))[0]
            hi = folds == k
            oof[hi] = fit(xv[fi], y[fi], w[fi])(xv[hi])
    lin = _lin(d, w)
    s = np.where(inside, oof, lin)
    return s, metrics(d, v, s, inside)


_W: dict[str, np.ndarray] = {}


def _weights(d: Data, sample_weights: Callable[..., np.ndarray]) -> np.ndarray:
    if "w" not in _W:
        from types import SimpleNamespace

        v = np.nonzero(d.v)[0]
        rows = [SimpleNamespace(label=int(d.c["y"][i]), domain_group=str(d.c["domain_group"][i])) for i in v]
        _W["w"] = sample_weights(rows)
    return _W["w"]


def _lin(d: Data, w: np.ndarray) -> np.ndarray:
    """The n-gram logit mapped to the stacker scale (a*z+b fitted on validation, as stacking.py)."""
    from sklearn.linear_model import LogisticRegression

    z = np.clip(d.c["z"], -40, 40)[d.v]
    mean, std = z.mean(), z.std() + 1e-9
    m = LogisticRegression(C=1.0, max_iter=5000).fit(((z - mean) / std)[:, None], d.c["y"][d.v], sample_weight=w)
    return np.asarray(m.decision_function(((z - mean) / std)[:, None]), dtype=np.float64)


def random_folds(d: Data, seed: int) -> np.ndarray:
    """Fold per validation row from a seeded hash of its pair group (a second view of fold noise)."""
    import hashlib

    g = d.c["group"][d.v]
    return np.array([int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:8], 16) % FOLDS for k in g])


def explore(d: Data, only: str = "") -> dict[str, Any]:
    base = base_design(d, np.ones(len(d.c["y"]), bool))
    names = list(EXTRA_NAMES)
    extra = fill_nan(d.extra, d.extra[d.v])
    sel = {k: extra[:, [names.index(n) for n in v]] for k, v in EXTRA_SETS.items()}
    allx = np.column_stack([base, extra])
    inter = interactions(d)
    always = (-1.0, 2.0)
    configs: dict[str, tuple[np.ndarray, Callable[..., Any], tuple[float, float], bool]] = {
        "0.2.0 (LR, 18 cols, band 0.3-0.987)": (base, fit_lr, BAND, False),
        "0.2.0 stacker, LM always": (base, fit_lr, always, False),
    }
    for k, v in sel.items():
        configs[f"LR + {k}"] = (np.column_stack([base, v]), fit_lr, BAND, False)
    configs["LR + all extra (24)"] = (allx, fit_lr, BAND, False)
    configs["LR + all extra, C=0.1"] = (allx, lambda a, b, c: fit_lr(a, b, c, 0.1), BAND, False)
    configs["LR + interactions"] = (np.column_stack([base, inter]), fit_lr, BAND, False)
    configs["LR + all extra + interactions"] = (np.column_stack([allx, inter]), fit_lr, BAND, False)
    configs["LR fit on band only"] = (base, fit_lr, BAND, True)
    configs["LR + all extra, fit on band only"] = (allx, fit_lr, BAND, True)
    configs["GBT base"] = (base, fit_gbt, BAND, False)
    configs["GBT + all extra"] = (allx, fit_gbt, BAND, False)
    configs["GBT + all extra, fit on band only"] = (allx, fit_gbt, BAND, True)
    configs["GBT base, depth 2, 100 x 0.1"] = (base, lambda a, b, c: fit_gbt(a, b, c, max_depth=2, max_iter=100,
                                                                           learning_rate=0.1), BAND, False)
    configs["mean of LR and GBT logits (base)"] = (base, fit_blend, BAND, False)
    configs["LR, human weight x3"] = (base, lambda a, b, c: fit_lr(a, b, np.where(b == 0, 3.0, 1.0) * c), BAND, False)
    configs["LR + all extra, human weight x3"] = (allx, lambda a, b, c: fit_lr(a, b, np.where(b == 0, 3.0, 1.0) * c), BAND,
                                                  False)
    for lo in (0.0, 0.1, 0.2):
        configs[f"LR + all extra, band {lo}-0.987"] = (allx, fit_lr, (lo, BAND[1]), False)
    configs["LR + all extra, band 0.3-1"] = (allx, fit_lr, (0.3, 1.01), False)
    configs["LR + all extra, LM always"] = (allx, fit_lr, always, False)
    configs["0.2.0 stacker, band 0.3-1"] = (base, fit_lr, (0.3, 1.01), False)
    table: dict[str, Any] = {}
    for name, (x, fit, band, bf) in configs.items():
        if only and only not in name:
            continue
        t0 = time.monotonic()
        s, m = run_config(d, x, fit, band, bf)
        m["fairness"] = fairness(d, s)
        m["tpr1_seeds"] = [run_config(d, x, fit, band, bf, random_folds(d, k))[1]["tpr1"] for k in (1, 2)]
        table[name] = m
        logger.info("%-45s auroc %.4f tpr1 %.3f (%s) min_dom %.3f %s lm %.3f/%.3f fair %s (%.0f s)", name, m["auroc"],
                    m["tpr1"], " ".join(f"{t:.3f}" for t in m["tpr1_seeds"]), m["min_dom"], m["weak"], m["lm_share"],
                    m["lm_share_human"], {k: round(v, 4) for k, v in m["fairness"].items()}, time.monotonic() - t0)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--weights", type=Path, default=REPO / "weights" / "text")
    parser.add_argument("--out", type=Path, default=REPO / ".devdata" / "explore_stacker" / "table.json")
    parser.add_argument("--only", default="", help="run only the configurations whose name contains this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not CACHE.is_file():
        build_cache(args.data, args.weights)
    d = Data()
    table = explore(d, args.only)
    args.out.write_text(json.dumps(table, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
