"""Exploration behind 0.3.0's token-sequence CNN: which inputs, and what the CNN adds to 0.2.0's stacker.

Kept as the record of the card's "CNN variants" numbers; the shipped CNN is ``sequence_training`` (same
architecture and hyper-parameters; the early-stopping share there is hashed with the seed). Caveats first:
the per-token inputs are the GPU run's float16 files (log p, entropy, log rank of the first 256 tokens); the
CNN is fitted on train texts only (early stopping on 10% of the train pair groups), so its validation and test
logits are honest inputs for the validation-fitted stacker (``explore_stacker``'s out-of-fold machinery).
Needs torch (training only).

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
MAX_T = 256
TAIL_START = 32


def load_sequences() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, (N, 4, MAX_T) float32 channels (ll, entropy, log rank, first-32 flag), lengths, (N, MAX_T) token ids."""
    f = np.load(RUN_DIR / "features.npz", allow_pickle=False)
    ids, lengths = f["ids"], f["lengths"].astype(np.int64)
    tok = np.load(REPO / ".devdata" / "lm_gpu" / "tokens.npz", allow_pickle=False)
    assert (tok["ids"] == ids).all()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    vals = [np.load(RUN_DIR / f"token_{n}.npz")["values"].astype(np.float32) for n in ("ll", "entropy", "logrank")]
    x = np.zeros((len(ids), 4, MAX_T), dtype=np.float32)
    for j in range(len(ids)):
        n = lengths[j]
        for c in range(3):
            x[j, c, :n] = vals[c][starts[j]:starts[j + 1]]
        x[j, 3, :min(n, TAIL_START)] = 1.0
    x[:, :3] /= 4.0  # log p, entropy and log rank span ~0-20: roughly unit scale for the CNN
    return ids, x, lengths, tok["tokens"].astype(np.int64)


def _inputs(x: np.ndarray, lengths: np.ndarray, tokens: np.ndarray) -> dict[str, np.ndarray]:
    mask = (np.arange(MAX_T)[None, :] < lengths[:, None]).astype(np.float32)
    return {"channels": x, "mask": mask, "tokens": tokens}


def train_cnn(x: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, y: np.ndarray, w: np.ndarray, fit: np.ndarray,
              stop: np.ndarray, vocab_dim: int, epochs: int, seed: int = 0) -> Any:
    """``sequence_training.fit`` (the shipped architecture and loop) with this script's own early-stopping rows."""
    from detectors.text.lm.sequence import Variant
    from detectors.text.lm.sequence_training import fit as shipped_fit

    variant = Variant(stats=True, embed_dim=vocab_dim, file="")  # --no-lm zeroes the statistics in the data instead
    model, _ = shipped_fit(_inputs(x, lengths, tokens), y, w, np.nonzero(fit)[0], np.nonzero(stop)[0], variant, seed,
                           epochs)
    return model


def predict(model: Any, x: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from detectors.text.lm.sequence_training import predict_torch

    return predict_torch(model, _inputs(x, lengths, tokens), idx)


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
    import torch

    torch.set_num_threads(2)
    from detectors.text.data import load_rows
    from detectors.text.training import sample_weights

    t0 = time.monotonic()
    ids, x, lengths, tokens = load_sequences()
    rows = {r.id: r for r in load_rows(args.data, 0)}
    keep = np.array([str(i) in rows for i in ids])
    ids, x, lengths, tokens = ids[keep], x[keep], lengths[keep], tokens[keep]
    rs = [rows[str(i)] for i in ids]
    logger.info("loaded %d texts (%.0f s)", len(rs), time.monotonic() - t0)
    y = np.array([r.label for r in rs])
    split = np.array([r.split for r in rs])
    train = split == "train"
    if args.hold_family:
        train &= ~np.array([r.label == 1 and r.family == args.hold_family for r in rs])
    import hashlib

    stop = train & np.array([int(hashlib.sha256(f"stop:{r.group}".encode()).hexdigest()[:8], 16) % 10 == 0 for r in rs])
    fit = train & ~stop
    w = np.zeros(len(rs))
    w[fit] = sample_weights([rs[i] for i in np.nonzero(fit)[0]])
    if args.no_lm:
        x[:, :3] = 0.0
    model = train_cnn(x, lengths, tokens, y, w, fit, stop, args.vocab_dim, args.epochs)
    ev = np.nonzero(split != "train")[0]
    s = predict(model, x, lengths, tokens, ev)
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


if __name__ == "__main__":
    raise SystemExit(main())


def stack_eval(tags: list[str]) -> dict[str, Any]:
    """Validation out-of-fold metrics of 0.2.0's stacker with each tag's CNN logit as one more column."""
    from detectors.text.lm import explore_stacker as es

    d = es.Data()
    base = es.base_design(d, np.ones(len(d.c["y"]), bool))
    table: dict[str, Any] = {}
    configs: dict[str, tuple[np.ndarray, tuple[float, float]]] = {"0.2.0": (base, es.BAND),
                                                                  "0.2.0 LM always": (base, (-1.0, 2.0))}
    for tag in tags:
        z = np.load(OUT / f"scores_{tag}.npz")
        at = {str(k): j for j, k in enumerate(z["ids"])}
        col = z["score"][[at[str(i)] for i in d.c["ids"]]]
        x = np.column_stack([base, col])
        configs[f"+{tag}"] = (x, es.BAND)
        configs[f"+{tag} LM always"] = (x, (-1.0, 2.0))
        configs[f"+{tag} band 0.1"] = (x, (0.1, es.BAND[1]))
    for name, (x, band) in configs.items():
        s, m = es.run_config(d, x, es.fit_lr, band)
        m["fairness"] = es.fairness(d, s)
        m["tpr1_seeds"] = [es.run_config(d, x, es.fit_lr, band, False, es.random_folds(d, k))[1]["tpr1"] for k in (1, 2)]
        table[name] = m
        logger.info("%-28s auroc %.4f tpr1 %.3f (%s) min_dom %.3f %s lm %.3f fair %s", name, m["auroc"], m["tpr1"],
                    " ".join(f"{t:.3f}" for t in m["tpr1_seeds"]), m["min_dom"], m["weak"], m["lm_share"],
                    {k: round(v, 4) for k, v in m["fairness"].items()})
    return table


def stack_combined(tags: list[str]) -> dict[str, Any]:
    """Validation out-of-fold metrics of 0.2.0's stacker plus ALL the tags' CNN logits as columns (band 0.3 and 0.1)."""
    from detectors.text.lm import explore_stacker as es

    d = es.Data()
    x = es.base_design(d, np.ones(len(d.c["y"]), bool))
    for tag in tags:
        z = np.load(OUT / f"scores_{tag}.npz")
        at = {str(k): j for j, k in enumerate(z["ids"])}
        x = np.column_stack([x, z["score"][[at[str(i)] for i in d.c["ids"]]]])
    table: dict[str, Any] = {}
    for band in (es.BAND, (0.1, es.BAND[1])):
        s, m = es.run_config(d, x, es.fit_lr, band)
        m["tpr1_seeds"] = [es.run_config(d, x, es.fit_lr, band, False, es.random_folds(d, k))[1]["tpr1"] for k in (1, 2)]
        m["fairness"] = es.fairness(d, s)
        table[f"+{'+'.join(tags)} band {band[0]}"] = m
        logger.info("%s: auroc %.4f tpr1 %.3f (%s) %s", tags, m["auroc"], m["tpr1"], m["tpr1_seeds"], m["weak"])
    return table
