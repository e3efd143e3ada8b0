"""A quick, small-sample look at the SmolLM2 features' value on CPU (development aid, training side).

Caveats first: a few hundred validation texts only (AUROC standard errors of ~0.03-0.06 per
domain); features from the numpy path on the token ids the GPU job uses; each feature's AUROC is
reported as max(a, 1 - a) with its sign, since direction is not fitted here. The shipped linear
detector's AUROC on the same texts is printed for comparison.

Run: ``python -m detectors.text.lm.quicklook --gguf FILE --tokens .devdata/lm_gpu/tokens.npz
--meta .devdata/lm_meta/meta.npz --weak 150 --other 150``.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from detectors.metrics import auroc
from detectors.text.lm.scorer import LMScorer
from detectors.text.lm.stats import FEATURE_NAMES

WEAK = ("squad", "pubmed", "writing")


def sample(meta: dict[str, np.ndarray], n_weak: int, n_other: int) -> np.ndarray:
    """Validation rows: ``n_weak`` from the weak domains (equal per domain), ``n_other`` from the rest, half per label."""
    key = np.array([hashlib.sha256(str(i).encode()).hexdigest() for i in meta["ids"]])
    val = meta["split"] == "validation"
    picks: list[np.ndarray] = []
    groups = [(np.isin(meta["domain"], [d]), n_weak // len(WEAK)) for d in WEAK]
    groups.append((~np.isin(meta["domain"], WEAK), n_other))
    for mask, n in groups:
        for label in (0, 1):
            idx = np.flatnonzero(val & mask & (meta["label"] == label))
            picks.append(idx[np.argsort(key[idx])][: n // 2])
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--meta", type=Path, required=True)
    parser.add_argument("--weak", type=int, default=150)
    parser.add_argument("--other", type=int, default=150)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--data", type=Path, help="staged data: also score the shipped linear detector")
    parser.add_argument("--weights", type=Path, default=Path("weights/text"))
    args = parser.parse_args()
    meta = dict(np.load(args.meta, allow_pickle=False))
    tok = np.load(args.tokens, allow_pickle=False)
    if not np.array_equal(tok["ids"], meta["ids"]):
        raise ValueError("token file and meta file disagree on row order")
    rows = sample(meta, args.weak, args.other)
    scorer = LMScorer(args.gguf, int(tok["max_tokens"]))
    t0 = time.perf_counter()
    feats = np.stack([scorer.features_from_ids(tok["tokens"][i, : tok["lengths"][i]].astype(np.int64)) for i in rows])
    print(f"{len(rows)} texts scored in {time.perf_counter() - t0:.0f} s")  # noqa: T201
    if args.save:
        np.savez_compressed(args.save, rows=rows, ids=meta["ids"][rows], features=feats)
    names = list(FEATURE_NAMES)
    if args.data:
        feats = np.column_stack([feats, linear_scores(args.data, args.weights, meta["ids"][rows])])
        names.append("shipped linear detector")
    report(meta, rows, feats, names)


def linear_scores(data: Path, weights: Path, ids: np.ndarray) -> np.ndarray:
    """The shipped detector's raw scores for the cleaned texts of ``ids``."""
    from detectors.contract import Device
    from detectors.text.data import load_rows
    from detectors.text.detector import build_text_detector

    text = {r.id: r.text for r in load_rows(data, seed=0)}
    detector = build_text_detector(weights)
    detector.load(Device(intra_op_threads=1))
    scores, _ = detector.raw_scores([text[str(i)] for i in ids])
    return scores


def report(meta: dict[str, np.ndarray], rows: np.ndarray, feats: np.ndarray, names: list[str]) -> None:
    y, dom = meta["label"][rows], meta["domain"][rows]
    groups = {"all": np.ones(len(rows), bool), "weak (squad+pubmed+writing)": np.isin(dom, WEAK)}
    groups |= {d: dom == d for d in WEAK}
    groups["other domains"] = ~np.isin(dom, WEAK)
    header = "| feature | " + " | ".join(f"{g} (n={int(m.sum())}, ai={int(y[m].sum())})" for g, m in groups.items()) + " |"
    print(header)  # noqa: T201
    print("|---|" + "---:|" * len(groups))  # noqa: T201
    for j, name in enumerate(names):
        cells = []
        for m in groups.values():
            ok = m & ~np.isnan(feats[:, j])
            a = auroc(feats[ok, j].astype(np.float64), y[ok]) if 0 < y[ok].sum() < ok.sum() else float("nan")
            cells.append(f"{max(a, 1 - a):.3f} ({'+' if a >= 0.5 else '-'})")
        print(f"| {name} | " + " | ".join(cells) + " |")  # noqa: T201


if __name__ == "__main__":
    main()
