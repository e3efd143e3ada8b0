"""Exploration behind 0.3.0's token-sequence CNN: which inputs, and what the CNN adds to 0.2.0's stacker.

Kept as the record of the card's "CNN variants" numbers; the shipped CNN is ``sequence_training`` (same
architecture and hyper-parameters; the early-stopping share there is hashed with the seed). Caveats first:
the per-token inputs are the GPU run's float16 files (log p, entropy, log rank of the first 256 tokens); the
CNN is fitted on train texts only (early stopping on 10% of the train pair groups), so its validation and test
logits are honest inputs for the validation-fitted stacker (``explore_stacker``'s out-of-fold machinery).
Needs torch (training only). The card's numbers for the embedding variants were recorded when embeddings
were initialised N(0, 1); ``sequence_training.build_model`` now starts them at zero.

Run: ``python -m detectors.text.lm.explore_seq --tag vocab16 --vocab-dim 16`` (``--no-lm``: token ids only;
``--vocab-dim 0``: statistics only), then ``stack_eval(["base", "vocab16"])`` for the out-of-fold stacker table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.lm.explore_stacker import RUN_DIR

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
OUT = REPO / ".devdata" / "explore_seq"
TOKENS = REPO / ".devdata" / "lm_gpu" / "tokens.npz"
MAX_T = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--vocab-dim", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hold-family", default="", help="drop this generator family's AI texts from training")
    parser.add_argument("--tag", default="base")
    parser.add_argument("--no-lm", action="store_true", help="zero the likelihood channels (token ids only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import hashlib

    from detectors.text.data import load_rows
    from detectors.text.lm import sequence_training as st
    from detectors.text.lm.sequence import Variant
    from detectors.text.training import sample_weights

    t0 = time.monotonic()
    at = {str(k): j for j, k in enumerate(np.load(RUN_DIR / "features.npz")["ids"])}
    rs = sorted((r for r in load_rows(args.data, 0) if r.id in at), key=lambda r: at[r.id])  # the GPU run's order
    ids = np.array([r.id for r in rs])
    data = st.load_token_data(RUN_DIR, TOKENS, rs, MAX_T)
    logger.info("loaded %d texts (%.0f s)", len(rs), time.monotonic() - t0)
    y = np.array([r.label for r in rs])
    split = np.array([r.split for r in rs])
    train = split == "train"
    if args.hold_family:
        train &= ~np.array([r.label == 1 and r.family == args.hold_family for r in rs])
    stop = train & np.array([int(hashlib.sha256(f"stop:{r.group}".encode()).hexdigest()[:8], 16) % 10 == 0 for r in rs])
    fit = train & ~stop
    w = np.zeros(len(rs))
    w[fit] = sample_weights([rs[i] for i in np.nonzero(fit)[0]])
    if args.no_lm:
        data["channels"][:, :3] = 0.0
    # The shipped architecture and loop (sequence_training.fit) with this script's own early-stopping rows.
    variant = Variant(stats=True, embed_dim=args.vocab_dim, file="")  # --no-lm zeroes the statistics in the data
    model, _ = st.fit(data, y, w, np.nonzero(fit)[0], np.nonzero(stop)[0], variant, 0, args.epochs)
    ev = np.nonzero(split != "train")[0]
    s = st.predict_torch(model, data, ev)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"scores_{args.tag}.npz", ids=ids[ev], score=s)
    from detectors.text.evaluation import auroc, tpr_at_fpr

    res: dict[str, Any] = {}
    for sp in ("validation", "test"):
        m = split[ev] == sp
        res[sp] = {"auroc": auroc(y[ev][m], s[m]), "tpr1": tpr_at_fpr(y[ev][m], s[m], 0.01)}
        if args.hold_family:
            fam = np.array([rs[i].family == args.hold_family or rs[i].label == 0 for i in ev])
            res[sp]["held_family_auroc"] = auroc(y[ev][m & fam], s[m & fam])
    logger.info("%s %s", args.tag, res)
    (OUT / f"result_{args.tag}.json").write_text(json.dumps(res, indent=1))
    return 0


def _score_column(d: Any, tag: str) -> np.ndarray:
    """The tag's saved CNN logits, in the order of ``explore_stacker.Data``'s rows."""
    z = np.load(OUT / f"scores_{tag}.npz")
    at = {str(k): j for j, k in enumerate(z["ids"])}
    return np.asarray(z["score"][[at[str(i)] for i in d.c["ids"]]], dtype=np.float64)


def _measure(d: Any, x: np.ndarray, band: tuple[float, float]) -> dict[str, Any]:
    """``explore_stacker.run_config`` metrics, two more fold draws' TPR@1%FPR and the fairness slices."""
    from detectors.text.lm import explore_stacker as es

    s, m = es.run_config(d, x, es.fit_lr, band)
    m["tpr1_seeds"] = [es.run_config(d, x, es.fit_lr, band, False, es.random_folds(d, k))[1]["tpr1"] for k in (1, 2)]
    m["fairness"] = es.fairness(d, s)
    return m


def stack_eval(tags: list[str]) -> dict[str, Any]:
    """Validation out-of-fold metrics of 0.2.0's stacker with each tag's CNN logit as one more column."""
    from detectors.text.lm import explore_stacker as es

    d = es.Data()
    base = es.base_design(d, np.ones(len(d.c["y"]), bool))
    table: dict[str, Any] = {}
    configs: dict[str, tuple[np.ndarray, tuple[float, float]]] = {"0.2.0": (base, es.BAND),
                                                                  "0.2.0 LM always": (base, (-1.0, 2.0))}
    for tag in tags:
        x = np.column_stack([base, _score_column(d, tag)])
        configs[f"+{tag}"] = (x, es.BAND)
        configs[f"+{tag} LM always"] = (x, (-1.0, 2.0))
        configs[f"+{tag} band 0.1"] = (x, (0.1, es.BAND[1]))
    for name, (x, band) in configs.items():
        m = table[name] = _measure(d, x, band)
        logger.info("%-28s auroc %.4f tpr1 %.3f (%s) min_dom %.3f %s lm %.3f fair %s", name, m["auroc"], m["tpr1"],
                    " ".join(f"{t:.3f}" for t in m["tpr1_seeds"]), m["min_dom"], m["weak"], m["lm_share"],
                    {k: round(v, 4) for k, v in m["fairness"].items()})
    return table


def stack_combined(tags: list[str]) -> dict[str, Any]:
    """Validation out-of-fold metrics of 0.2.0's stacker plus ALL the tags' CNN logits as columns (band 0.3 and 0.1)."""
    from detectors.text.lm import explore_stacker as es

    d = es.Data()
    x = np.column_stack([es.base_design(d, np.ones(len(d.c["y"]), bool)), *[_score_column(d, t) for t in tags]])
    table: dict[str, Any] = {}
    for band in (es.BAND, (0.1, es.BAND[1])):
        m = table[f"+{'+'.join(tags)} band {band[0]}"] = _measure(d, x, band)
        logger.info("%s: auroc %.4f tpr1 %.3f (%s) %s", tags, m["auroc"], m["tpr1"], m["tpr1_seeds"], m["weak"])
    return table


if __name__ == "__main__":
    raise SystemExit(main())
