"""Fine-tunes the MiniLM-L6 window classifier on the GPU (one self-contained run; needs python3, numpy, torch).

Reads ``data.npz`` and ``init.npz`` from ``--data`` (``detectors.text.encoder.prepare``) and writes to ``--out``:

- ``main_a.npz`` / ``main_b.npz``: the fine-tuned weights (everything but the frozen int8 word table), float16,
  in two parts under the transfer's 16 MiB per file. The model is rounded to these float16 values BEFORE the
  validation and test texts are scored, so ``scores.npz`` is what the returned weights give.
- ``scores.npz``: ``logit`` per text (mean over its windows; NaN for train texts) and ``window_logit``.
- ``holdouts.npz``: leave-one-generator-family-out and leave-one-domain-group-out runs, each on half of train
  (the stage-1 report's protocol, ``report.FOLD_TRAIN_SHARE``) for one epoch, plus ``reference``: the same
  reduced recipe with nothing held out. Each key holds the logits of every validation and test text.
- ``run.json``: arguments, timings, losses, GPU and per-phase AUROC on validation (monitoring only).

Recipe (main): the train split only (validation stays for the stacker and calibration; test is only reported),
every window of a text labelled with the text's label and weighted by stage 1's ``sample_weights``; AdamW
(lr 1e-4, weight decay 0.01), 6% warm-up then linear decay, batch 128 windows, 2 epochs, bf16 autocast,
dropout 0.1, the word table frozen. Seeded; the holdouts run while ``--budget-s`` allows.
Run: ``python3 detectors/text/encoder/gpu_train.py --data .devdata/enc_gpu --out "$OUT"``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime import CLS, SEP  # noqa: E402  (numpy only at import)
from torch_bert import VOCAB, WindowClassifier  # noqa: E402

START = time.monotonic()


def say(*parts: object, flush: bool = True) -> None:
    """Progress to stdout (the GPU tool returns the tail of it)."""
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    if flush:
        sys.stdout.flush()
PART_A = ("position.", "token_type.", "embed_norm.", "layers.0.", "layers.1.", "layers.2.")


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / max(n1 * n0, 1))


class Data:
    def __init__(self, path: Path, device: torch.device) -> None:
        d = np.load(path / "data.npz")
        self.lengths = d["lengths"].astype(np.int64)
        tokens = d["used_vocab"][d["tokens"].astype(np.int64)]
        width = int(self.lengths.max()) + 2
        padded = np.zeros((len(self.lengths), width), dtype=np.int32)  # [CLS] window [SEP] 0 ...
        padded[:, 0] = CLS
        cols = np.arange(width)[None, :]
        inside = (cols >= 1) & (cols <= self.lengths[:, None])
        padded[inside] = tokens
        padded[np.arange(len(self.lengths)), self.lengths + 1] = SEP
        self.padded = torch.from_numpy(padded).to(device)
        self.window_text = d["window_text"].astype(np.int64)
        self.split, self.fold, self.label = d["split"], d["fold"], d["label"].astype(np.int64)
        self.weight = d["weight"].astype(np.float32)
        self.family, self.domain = d["family"], d["domain"]
        self.family_names = [str(x) for x in d["family_names"]]
        self.domain_names = [str(x) for x in d["domain_names"]]
        self.device = device

    def batch(self, windows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        lens = self.lengths[windows]
        t = int(lens.max()) + 2
        ids = self.padded[torch.as_tensor(windows, device=self.device), :t].long()
        mask = (torch.arange(t, device=self.device)[None, :] < torch.as_tensor(lens + 2, device=self.device)[:, None])
        return ids, mask.long()

    def windows_of(self, text_mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(text_mask[self.window_text])


def build_model(init: dict[str, np.ndarray], used: np.ndarray, device: torch.device, seed: int) -> WindowClassifier:
    torch.manual_seed(seed)
    model = WindowClassifier()
    state = model.state_dict()
    word_q = torch.zeros(VOCAB, state["word_q"].shape[1], dtype=torch.int8)
    word_scale = torch.ones(VOCAB, 1)
    word_q[used] = torch.from_numpy(init["word_q"])
    word_scale[used] = torch.from_numpy(init["word_scale"])
    state["word_q"], state["word_scale"] = word_q, word_scale
    for k, v in init.items():
        if k not in ("word_q", "word_scale"):
            state[k] = torch.from_numpy(v.astype(np.float32))
    model.load_state_dict(state)
    return model.to(device)


def train(model: WindowClassifier, data: Data, windows: np.ndarray, epochs: int, lr: float, batch: int,
          seed: int, log: list[dict[str, float]], deadline: float) -> None:
    rng = np.random.default_rng(seed)
    params = [p for n, p in model.named_parameters()]
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim != 2]
    assert len(decay) + len(no_decay) == len(params)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-6, fused=data.device.type == "cuda")
    steps = epochs * math.ceil(len(windows) / batch)
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    w_all = torch.as_tensor(data.weight[data.window_text], device=data.device)
    y_all = torch.as_tensor(data.label[data.window_text], dtype=torch.float32, device=data.device)
    model.train()
    step = 0
    if len(windows) == 0:
        return
    for epoch in range(epochs):
        order = rng.permutation(windows)
        total, t0 = 0.0, time.monotonic()
        for b in range(0, len(order), batch):
            if time.monotonic() > deadline:
                raise TimeoutError("deadline")
            idx = order[b:b + batch]
            ids, mask = data.batch(idx)
            with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=data.device.type == "cuda"):
                z = model(ids, mask).float()
            w = w_all[idx]
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, y_all[idx], reduction="none") * w).sum() / w.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach()) * len(idx)
        log.append({"epoch": epoch, "loss": total / len(order), "seconds": time.monotonic() - t0, "steps": step})
        say(json.dumps(log[-1]), flush=True)


@torch.no_grad()
def score(model: WindowClassifier, data: Data, text_mask: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-text mean window logit (NaN outside ``text_mask``) and per-window logits (NaN outside)."""
    model.eval()
    wins = data.windows_of(text_mask)
    wins = wins[np.argsort(data.lengths[wins], kind="stable")]
    wl = np.full(len(data.lengths), np.nan, dtype=np.float32)
    for b in range(0, len(wins), batch):
        idx = wins[b:b + batch]
        ids, mask = data.batch(idx)
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=data.device.type == "cuda"):
            wl[idx] = model(ids, mask).float().cpu().numpy()
    per_text = np.full(len(data.label), np.nan, dtype=np.float32)
    sums = np.bincount(data.window_text[wins], weights=wl[wins], minlength=len(data.label))
    counts = np.bincount(data.window_text[wins], minlength=len(data.label))
    per_text[counts > 0] = (sums[counts > 0] / counts[counts > 0]).astype(np.float32)
    return per_text, wl


def round_fp16(model: WindowClassifier) -> dict[str, np.ndarray]:
    """Rounds every trainable tensor to float16 in place; returns them (the returned weights)."""
    out = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            h = p.detach().to(torch.float16)
            p.copy_(h.to(p.dtype))
            out[name] = h.cpu().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lrs", type=float, nargs="+", default=None, help="learning rates to try (default: --lr)")
    ap.add_argument("--skip-holdouts", action="store_true")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--limit", type=int, default=0, help="smoke test: at most this many texts per split")
    ap.add_argument("--holdout-epochs", type=int, default=1)
    ap.add_argument("--holdout-share", type=float, default=0.5)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    deadline = START + args.budget_s
    data = Data(args.data, device)
    init = dict(np.load(args.data / "init.npz"))
    used = np.load(args.data / "data.npz")["used_vocab"]
    run: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
                 "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "phases": {}}

    def save_run() -> None:
        run["elapsed_s"] = time.monotonic() - START
        (args.out / "run.json").write_text(json.dumps(run, indent=1))

    keep = np.ones(len(data.label), dtype=bool)
    if args.limit:
        keep[:] = False
        for s in range(3):
            keep[np.flatnonzero(data.split == s)[: args.limit]] = True
    train_mask = (data.split == 0) & keep
    eval_mask = (data.split != 0) & keep
    val_mask = (data.split == 1) & keep

    # Main model: each (--epochs, --lrs) recipe on train; the best validation AUROC (text logit) is the one returned.
    best: tuple[float, int, float] = (-1.0, 0, args.lr)
    scores: dict[str, np.ndarray] = {}
    lrs = args.lrs or [args.lr]
    for epochs, lr in [(e, r) for e in args.epochs for r in lrs]:
        name = f"main_e{epochs}" if len(lrs) == 1 else f"main_e{epochs}_lr{lr:g}"
        t0 = time.monotonic()
        model = build_model(init, used, device, args.seed)
        log: list[dict[str, float]] = []
        train(model, data, data.windows_of(train_mask), epochs, lr, args.batch, args.seed, log, START + 1e9)
        weights = round_fp16(model)
        logit, window_logit = score(model, data, eval_mask)
        val = auroc(data.label[val_mask], logit[val_mask])
        run["phases"][name] = {"log": log, "seconds": time.monotonic() - t0, "val_auroc": val, "epochs": epochs,
                               "lr": lr}
        say(name, json.dumps(run["phases"][name]), flush=True)
        scores[name.replace("main", "logit")], scores[name.replace("main", "window_logit")] = logit, window_logit
        np.savez(args.out / "scores.npz", **scores)  # type: ignore[arg-type]
        if val > best[0]:
            best = (val, epochs, lr)
            np.savez(args.out / "main_a.npz", **{k: v for k, v in weights.items() if k.startswith(PART_A)})  # type: ignore[arg-type]
            np.savez(args.out / "main_b.npz", **{k: v for k, v in weights.items() if not k.startswith(PART_A)})  # type: ignore[arg-type]
        run["chosen_epochs"], run["chosen_lr"] = best[1], best[2]
        save_run()
        del model
    chosen, chosen_lr = best[1], best[2]

    # Leave-one-out transfer runs, half of train, while the budget allows.
    sub = np.random.default_rng(0).random(len(data.label)) < args.holdout_share
    folds = [("reference", np.zeros(len(data.label), dtype=bool))]
    folds += [(f"generator: {n}", (data.label == 1) & (data.family == k)) for k, n in enumerate(data.family_names)]
    folds += [(f"domain: {n}", data.domain == k) for k, n in enumerate(data.domain_names)]
    held_out: dict[str, np.ndarray] = {}
    for name, held in folds if not args.skip_holdouts else []:
        t0 = time.monotonic()
        if deadline - t0 < 10 + 1.2 * run["phases"].get("last_holdout_s", 0.0):
            say("budget spent before", name, flush=True)
            break
        m = build_model(init, used, device, args.seed)
        try:
            train(m, data, data.windows_of(train_mask & sub & ~held), args.holdout_epochs, args.lr, args.batch,
                  args.seed, [], deadline)
        except TimeoutError:
            say("deadline inside", name, flush=True)
            break
        held_out[name], _ = score(m, data, eval_mask)
        np.savez(args.out / "holdouts.npz", **held_out)  # type: ignore[arg-type]
        run["phases"]["last_holdout_s"] = time.monotonic() - t0
        run["phases"][name] = {"seconds": time.monotonic() - t0}
        say(name, f"{time.monotonic() - t0:.1f}s", flush=True)
        save_run()
    save_run()

    # Cross-fitting (optional, last): the chosen recipe on train + 4 of the 5 validation folds scores the fifth;
    # then one model on train + all validation, returned with its test scores.
    oof = np.full(len(data.label), np.nan, dtype=np.float32)
    per_fold = max([v["seconds"] for k, v in run["phases"].items() if k.startswith("main_e")] or [0.0])
    for k in range(5):
        if deadline - time.monotonic() < 10 + 1.2 * per_fold:
            say("budget spent before fold", k, flush=True)
            break
        m = build_model(init, used, device, args.seed)
        fit_mask = train_mask | (val_mask & (data.fold != k))
        train(m, data, data.windows_of(fit_mask), chosen, chosen_lr, args.batch, args.seed, [], START + 1e9)
        round_fp16(m)
        z, _ = score(m, data, val_mask & (data.fold == k))
        oof[data.fold == k] = z[data.fold == k]
        np.savez(args.out / "crossfit.npz", oof=oof, folds_done=k + 1)
        say("fold", k, flush=True)
    else:
        if deadline - time.monotonic() > 10 + 1.2 * per_fold:
            m = build_model(init, used, device, args.seed)
            train(m, data, data.windows_of(train_mask | val_mask), chosen, chosen_lr, args.batch, args.seed, [],
                  START + 1e9)
            w = round_fp16(m)
            z, _ = score(m, data, (data.split == 2) & keep)
            np.savez(args.out / "full_a.npz", **{k: v for k, v in w.items() if k.startswith(PART_A)})  # type: ignore[arg-type]
            np.savez(args.out / "full_b.npz", **{k: v for k, v in w.items() if not k.startswith(PART_A)})  # type: ignore[arg-type]
            np.savez(args.out / "crossfit.npz", oof=oof, folds_done=5, full_test=z)
            run["phases"]["crossfit"] = {"val_oof_auroc": auroc(data.label[val_mask], oof[val_mask])}
            say("crossfit", run["phases"]["crossfit"], flush=True)
    save_run()
    say("done", f"{time.monotonic() - START:.1f}s", flush=True)


if __name__ == "__main__":
    main()
