"""Training side of the token-sequence CNN (``detectors.text.lm.sequence``): data, model, fit, ONNX export.

Caveats first: needs torch (the ``train`` extra). The inputs are the GPU run's per-token files
(``token_ll/entropy/logrank.npz``, float16, first 256 tokens of every staged text) and its token ids
(``.devdata/lm_gpu/tokens.npz``); without them this stage cannot run (computing them with the numpy path
would take ~10 CPU-hours). The CNN is fitted on the TRAIN split only (early stopping on a seeded 10% of
the train pair groups), so its validation and test logits are honest inputs for the validation-fitted
stacker. Seeded, 2 threads, full-batch order from a seeded permutation: reruns on one machine give the
same weights; other CPUs may differ in the last bits (float summation order).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.data import Row
from detectors.text.lm.sequence import CHANNELS, INPUT_NAMES, VARIANTS, Variant, sequence_inputs

logger = logging.getLogger(__name__)

VOCAB = 49152
WIDTH = 32
EPOCHS = 8
BATCH = 64
LR = 2e-3
WEIGHT_DECAY = 1e-4
STOP_SHARE = 10  # one train pair group in STOP_SHARE goes to early stopping
OPSET = 17


def load_token_data(run_dir: Path, tokens_path: Path, rows: list[Row], max_tokens: int) -> dict[str, Any]:
    """Model inputs for ``rows`` (by id) from the GPU run's per-token files; raises KeyError for a missing id."""
    f = np.load(run_dir / "features.npz", allow_pickle=False)
    ids, lengths = f["ids"], f["lengths"].astype(np.int64)
    tok = np.load(tokens_path, allow_pickle=False)
    token_table = tok["tokens"]  # read once: each ``tok[...]`` access decompresses the whole array again
    if not (tok["ids"] == ids).all():
        raise ValueError(f"{tokens_path} and {run_dir / 'features.npz'} list different texts")
    starts = np.concatenate([[0], np.cumsum(lengths)])
    vals = [np.load(run_dir / f"token_{n}.npz")["values"] for n in ("ll", "entropy", "logrank")]
    at = {str(k): j for j, k in enumerate(ids)}
    stats, tokens = [], []
    for r in rows:
        j = at[r.id]
        part = slice(starts[j], starts[j + 1])
        stats.append(tuple(v[part].astype(np.float32) for v in vals))
        tokens.append(token_table[j, : lengths[j]])
    channels, mask, token_ids = sequence_inputs(stats, tokens, max_tokens)
    return {"channels": channels, "mask": mask, "tokens": token_ids}


def token_remap(tokens: np.ndarray, mask: np.ndarray, top: int) -> np.ndarray:
    """(VOCAB,) int64: the ``top`` most frequent token ids under ``mask`` -> 1..top, every other id -> 0."""
    counts = np.bincount(tokens[mask > 0].ravel(), minlength=VOCAB)
    order = np.argsort(-counts, kind="stable")[:top]
    remap = np.zeros(VOCAB, dtype=np.int64)
    remap[order] = np.arange(1, top + 1)
    return remap


def build_model(variant: Variant, width: int = WIDTH, remap: np.ndarray | None = None) -> Any:
    import torch
    from torch import nn

    class SequenceCNN(nn.Module):
        """Token embedding and/or 4 statistic channels -> 3 dilated convolutions (residual) -> masked mean/max
        -> logit. A variant without statistics zeroes the three statistic channels (keeps the first-32 flag)."""

        def __init__(self) -> None:
            super().__init__()
            rows = variant.top_tokens + 1 if variant.top_tokens else VOCAB
            self.emb = nn.Embedding(rows, variant.embed_dim) if variant.embed_dim else None
            self.remap = torch.from_numpy(remap) if variant.top_tokens and remap is not None else None
            if variant.top_tokens and self.remap is None:
                raise ValueError("a top-token variant needs its token remap")
            if self.emb is not None:
                # Zero, not N(0, 1): a token never seen in training keeps a zero embedding (no evidence either
                # way) instead of a random vector that pushed unseen styles far to one side (leave-news-out:
                # the 1987 Reuters newswire scored as AI; news_transfer.py).
                nn.init.zeros_(self.emb.weight)
            keep = [1.0, 1.0, 1.0, 1.0] if variant.stats else [0.0, 0.0, 0.0, 1.0]
            self.keep = torch.tensor(keep).view(1, CHANNELS, 1)  # a constant of the traced graph
            c = CHANNELS + variant.embed_dim
            self.convs = nn.ModuleList([nn.Conv1d(c, width, 5, padding=2), nn.Conv1d(width, width, 5, padding=4, dilation=2),
                                        nn.Conv1d(width, width, 5, padding=8, dilation=4)])
            self.head = nn.Linear(2 * width + 1, 1)

        def forward(self, channels: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            h = channels * self.keep
            if self.emb is not None:
                ids = self.remap[tokens] if self.remap is not None else tokens
                e = self.emb(ids)
                if self.remap is not None:
                    e = e * (ids > 0).unsqueeze(-1).to(e.dtype)  # the shared 'other' token adds nothing
                h = torch.cat([h, e.transpose(1, 2)], dim=1)
            for i, conv in enumerate(self.convs):
                o = torch.relu(conv(h))
                h = o + h if i > 0 else o
            m = mask.unsqueeze(1)
            n = m.sum(-1).clamp(min=1.0)
            mean = (h * m).sum(-1) / n
            mx = (h + (m - 1.0) * 1e4).amax(-1)
            out: torch.Tensor = self.head(torch.cat([mean, mx, torch.log1p(n) / 6.0], dim=1)).squeeze(1)
            return out

    return SequenceCNN()


def stop_mask(rows: list[Row], seed: int) -> np.ndarray:
    """Rows whose pair group is in the seeded early-stopping share of train."""
    return np.array([int(hashlib.sha256(f"stop:{seed}:{r.group}".encode()).hexdigest()[:8], 16) % STOP_SHARE == 0
                     for r in rows])


def fit_inputs(train: list[Row], run_dir: Path, tokens_path: Path, max_tokens: int, seed: int = 0) -> dict[str, Any]:
    """Everything ``fit`` needs for the texts ``train``: model inputs, labels, sample weights (zero on the
    early-stopping rows), and the fitting and early-stopping row indices."""
    from detectors.text.training import sample_weights

    stop = stop_mask(train, seed)
    fit_rows, stop_rows = np.nonzero(~stop)[0], np.nonzero(stop)[0]
    w = np.zeros(len(train))
    w[fit_rows] = sample_weights([train[i] for i in fit_rows])
    return {"data": load_token_data(run_dir, tokens_path, train, max_tokens), "y": np.array([r.label for r in train]),
            "w": w, "fit_rows": fit_rows, "stop_rows": stop_rows}


def fit(data: dict[str, Any], y: np.ndarray, w: np.ndarray, fit_rows: np.ndarray, stop_rows: np.ndarray,
        variant: Variant, seed: int = 0, epochs: int = EPOCHS) -> tuple[Any, list[dict[str, float]]]:
    """AdamW on weighted logistic loss; keeps the epoch with the best early-stopping AUROC."""
    import torch

    from detectors.text.evaluation import auroc, tpr_at_fpr

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    remap = token_remap(data["tokens"][fit_rows], data["mask"][fit_rows], variant.top_tokens) if variant.top_tokens else None
    model = build_model(variant, remap=remap)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    ch, mk, tk = (torch.from_numpy(data[k]) for k in INPUT_NAMES)
    yt, wt = torch.from_numpy(y.astype(np.float32)), torch.from_numpy(w.astype(np.float32))
    best, best_state, log = -1.0, None, []
    for epoch in range(epochs):
        model.train()
        t0 = time.monotonic()
        for b in np.array_split(rng.permutation(fit_rows), max(1, len(fit_rows) // BATCH)):
            bt = torch.from_numpy(b)
            out = model(ch[bt], mk[bt], tk[bt])
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(out, yt[bt], reduction="none") * wt[bt]).mean()
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        s = predict_torch(model, data, stop_rows)
        a = auroc(y[stop_rows], s) or 0.0
        log.append({"epoch": epoch, "stop_auroc": a, "stop_tpr_at_1pct_fpr": tpr_at_fpr(y[stop_rows], s, 0.01) or 0.0,
                    "seconds": time.monotonic() - t0})
        logger.info("sequence CNN epoch %d: early-stopping AUROC %.4f (%.0f s)", epoch, a, log[-1]["seconds"])
        if a > best:
            best, best_state = a, {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return model, log


def predict_torch(model: Any, data: dict[str, Any], rows: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits for ``rows`` in eval mode; the model's own mode (training or not) is restored afterwards."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for b in np.array_split(rows, max(1, len(rows) // batch)):
            out.append(model(*(torch.from_numpy(data[k][b]) for k in INPUT_NAMES)).numpy())
    model.train(was_training)
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def export(model: Any, path: Path, max_tokens: int) -> None:
    """ONNX (opset 17, TorchScript exporter, dynamic batch); inputs ``INPUT_NAMES``, output ``logit``."""
    import warnings

    import torch

    model.eval()
    dummy = (torch.zeros(1, CHANNELS, max_tokens), torch.ones(1, max_tokens), torch.zeros(1, max_tokens, dtype=torch.int64))
    axes = {name: {0: "batch"} for name in (*INPUT_NAMES, "logit")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, str(path), input_names=list(INPUT_NAMES), output_names=["logit"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def train_sequence(rows: list[Row], eval_rows: list[Row], out_dir: Path, run_dir: Path, tokens_path: Path,
                   max_tokens: int, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit every ``VARIANTS`` CNN on ``rows``' train split, export each to ``out_dir`` and score ``eval_rows``.

    Returns the eval rows' logits, one column per variant in ``VARIANTS`` order (from the exported files:
    the service's code path), and a report per variant."""
    from detectors.contract import Device
    from detectors.runtime import onnx_session
    from detectors.text.lm.sequence import SequenceModel

    inputs = fit_inputs([r for r in rows if r.split == "train"], run_dir, tokens_path, max_tokens, seed)
    data, fit_rows, stop_rows = inputs["data"], inputs["fit_rows"], inputs["stop_rows"]
    ev = load_token_data(run_dir, tokens_path, eval_rows, max_tokens)
    columns, reports = [], {}
    for name, variant in VARIANTS.items():
        start = time.monotonic()
        model, log = fit(data, inputs["y"], inputs["w"], fit_rows, stop_rows, variant, seed)
        torch_stop = predict_torch(model, data, stop_rows)
        path = out_dir / variant.file
        export(model, path, max_tokens)
        onnx_model = SequenceModel(path, onnx_session(path, Device(intra_op_threads=1)), max_tokens)
        columns.append(_run_onnx(onnx_model, ev))
        stop_onnx = _run_onnx(onnx_model, {k: v[stop_rows] for k, v in data.items()})
        reports[name] = {
            "epochs": log, "n_fit": int(len(fit_rows)), "n_stop": int(len(stop_rows)),
            "best_epoch": int(np.argmax([e["stop_auroc"] for e in log])),
            "onnx_vs_torch_max_abs": float(np.max(np.abs(stop_onnx - torch_stop))), "stats": variant.stats,
            "embed_dim": variant.embed_dim, "width": WIDTH, "epochs_run": EPOCHS, "batch": BATCH, "lr": LR,
            "weight_decay": WEIGHT_DECAY, "file": variant.file, "seconds": time.monotonic() - start,
        }
        logger.info("sequence CNN %s: %s", name, {k: v for k, v in reports[name].items() if k != "epochs"})
    return np.column_stack(columns), reports


def score_shipped(eval_rows: list[Row], out_dir: Path, run_dir: Path, tokens_path: Path, max_tokens: int,
                  previous: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """``train_sequence``'s return for the CNNs already in ``out_dir``, without refitting them (no train-split
    token files needed): their ONNX files score ``eval_rows`` from ``run_dir``'s per-token files, and each report
    is ``previous``'s (the shipped training report's) with ``carried`` set."""
    from detectors.contract import Device
    from detectors.runtime import onnx_session
    from detectors.text.lm.sequence import SequenceModel

    ev = load_token_data(run_dir, tokens_path, eval_rows, max_tokens)
    columns, reports = [], {}
    for name, variant in VARIANTS.items():
        path = out_dir / variant.file
        columns.append(_run_onnx(SequenceModel(path, onnx_session(path, Device(intra_op_threads=1)), max_tokens), ev))
        reports[name] = carried_report(previous[name], "fitted by an earlier run of this command; not refitted "
                                       "(--keep-sequence)")
    return np.column_stack(columns), reports


def carried_report(previous: dict[str, Any], how: str) -> dict[str, Any]:
    """A kept CNN's training report: ``previous`` without its validation/test scores (recomputed by the caller),
    with ``carried`` saying ``how`` it was kept."""
    return {k: v for k, v in previous.items() if k not in ("validation", "test")} | {"carried": how}


def _run_onnx(model: Any, data: dict[str, Any], batch: int = 256) -> np.ndarray:
    n = len(data["mask"])
    out = [model.run({k: data[k][a : a + batch] for k in INPUT_NAMES}) for a in range(0, n, batch)]
    return np.concatenate(out) if out else np.zeros(0)
