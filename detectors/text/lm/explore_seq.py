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


def build_model(channels: int, vocab_dim: int, width: int = 32) -> Any:
    import torch
    from torch import nn

    class SeqCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(49152, vocab_dim) if vocab_dim else None
            c = channels + vocab_dim
            self.convs = nn.ModuleList([nn.Conv1d(c, width, 5, padding=2), nn.Conv1d(width, width, 5, padding=4, dilation=2),
                                        nn.Conv1d(width, width, 5, padding=8, dilation=4)])
            self.head = nn.Linear(2 * width + 1, 1)

        def forward(self, x: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            if self.emb is not None:
                x = torch.cat([x, self.emb(tokens).transpose(1, 2)], dim=1)
            h = x
            for i, conv in enumerate(self.convs):
                o = torch.relu(conv(h))
                h = o + h if i > 0 else o
            m = mask.unsqueeze(1)
            n = m.sum(-1).clamp(min=1.0)
            mean = (h * m).sum(-1) / n
            mx = (h + (m - 1.0) * 1e4).amax(-1)
            out: torch.Tensor = self.head(torch.cat([mean, mx, torch.log1p(n) / 6.0], dim=1)).squeeze(1)
            return out

    return SeqCNN()


def train_cnn(x: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, y: np.ndarray, w: np.ndarray, fit: np.ndarray,
              stop: np.ndarray, vocab_dim: int, epochs: int, seed: int = 0, width: int = 32) -> Any:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(x.shape[1], vocab_dim, width)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    xt, tt = torch.from_numpy(x), torch.from_numpy(tokens)
    mask = torch.from_numpy((np.arange(MAX_T)[None, :] < lengths[:, None]).astype(np.float32))
    yt, wt = torch.from_numpy(y.astype(np.float32)), torch.from_numpy(w.astype(np.float32))
    best, best_state = -1.0, None
    fit_idx = np.nonzero(fit)[0]
    for ep in range(epochs):
        model.train()
        t0 = time.monotonic()
        for b in np.array_split(rng.permutation(fit_idx), max(1, len(fit_idx) // 64)):
            bt = torch.from_numpy(b)
            out = model(xt[bt], mask[bt], tt[bt])
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(out, yt[bt], reduction="none") * wt[bt]).mean()
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        s = predict(model, x, lengths, tokens, np.nonzero(stop)[0])
        from detectors.text.evaluation import auroc, tpr_at_fpr

        a, t1 = auroc(y[stop], s), tpr_at_fpr(y[stop], s, 0.01)
        logger.info("epoch %d stop auroc %.4f tpr1 %.3f (%.0f s)", ep, a, t1, time.monotonic() - t0)
        if a is not None and a > best:
            best, best_state = a, {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    return model


def predict(model: Any, x: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, idx: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    out = []
    mask = (np.arange(MAX_T)[None, :] < lengths[:, None]).astype(np.float32)
    with torch.no_grad():
        for b in np.array_split(idx, max(1, len(idx) // 256)):
            out.append(model(torch.from_numpy(x[b]), torch.from_numpy(mask[b]), torch.from_numpy(tokens[b])).numpy())
    return np.concatenate(out).astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--vocab-dim", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hold-family", default="", help="drop this generator family's AI texts from training")
    parser.add_argument("--tag", default="base")
    parser.add_argument("--no-lm", action="store_true", help="zero the likelihood channels (token ids only)")
    parser.add_argument("--width", type=int, default=32)
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
    model = train_cnn(x, lengths, tokens, y, w, fit, stop, args.vocab_dim, args.epochs, width=args.width)
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
