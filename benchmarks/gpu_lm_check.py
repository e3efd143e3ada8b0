"""GPU check for the text detector's SmolLM2 stage: CUDA features vs the numpy path, and NVML energy.

Runs on a CUDA machine (torch, numpy, tokenizers, nvidia-ml-py). Inputs: the GGUF (sha256-checked)
and a token-id file from ``python -m detectors.text.lm.prepare`` (texts already cut to 256 tokens).
Measures, on texts that fill the 256-token cut (an 800-word article's LM pass):
- parity: the per-text features from ``LMScorer(torch_device="cuda:0")`` (the service's GPU path)
  against the numpy path (the CPU path, and the one the stacker was fitted to);
- energy: the board's NVML energy over ~1.5 s windows of back-to-back LM passes, divided by texts:
  batch 1 through ``features_from_ids`` (how the service runs it, one item per preprocessing call)
  and batched through ``torch_token_stats`` (what a batching LM lane could reach). Board totals, idle
  included; the idle power is reported beside them.

Usage (repo root): ``python3 -m benchmarks.gpu_lm_check --gguf FILE --tokens .devdata/lm_gpu/tokens.npz --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gpu_check import energy_per_item, nvml_baseline
from detectors.manifest import sha256_file
from detectors.text.lm.scorer import LMScorer
from detectors.text.lm.stats import FEATURE_NAMES, text_features
from detectors.text.lm.torch_model import torch_token_stats

MAX_TOKENS = 256


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--gguf-sha256", default="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parity", type=int, default=4, help="texts compared with the numpy path")
    parser.add_argument("--window-s", type=float, default=1.5)
    parser.add_argument("--device", default="cuda:0", help="torch device of the GPU path ('cpu' for a smoke test)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if sha256_file(args.gguf) != args.gguf_sha256:
        raise SystemExit(f"{args.gguf} is not the expected SmolLM2 GGUF")

    import torch

    data = np.load(args.tokens, allow_pickle=False)
    full = np.flatnonzero(data["lengths"] >= MAX_TOKENS)[:64]
    tokens = data["tokens"][full, :MAX_TOKENS].astype(np.int64)
    lengths = np.full(len(full), MAX_TOKENS)
    on_gpu = args.device.startswith("cuda")
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0) if on_gpu else "none", "torch": torch.__version__,
                                 "texts": len(full), "tokens_per_text": MAX_TOKENS}

    t0 = time.perf_counter()
    gpu = LMScorer(args.gguf, MAX_TOKENS, torch_device=args.device)
    report["load_s"] = time.perf_counter() - t0
    cpu = LMScorer(args.gguf, MAX_TOKENS)
    gpu_feats = np.stack([gpu.features_from_ids(tokens[i]) for i in range(args.parity)])
    cpu_feats = np.stack([cpu.features_from_ids(tokens[i]) for i in range(args.parity)])
    diffs = np.abs(gpu_feats - cpu_feats)
    report["parity_max_abs"] = {n: float(np.nanmax(diffs[:, j])) for j, n in enumerate(FEATURE_NAMES)}
    t0 = time.process_time()
    cpu.features_from_ids(tokens[0])
    report["numpy_cpu_s_per_text_this_machine"] = time.process_time() - t0
    if not on_gpu:
        print(json.dumps(report, indent=1))
        return

    import pynvml

    handle = nvml_baseline(pynvml, report, idle_s=1.0)

    single = energy_per_item(pynvml, handle, lambda: gpu.features_from_ids(tokens[0]), 1, args.window_s)
    rows: list[dict[str, object]] = [{**single, "path": "service (features_from_ids, one text per call)"}]
    for batch in (8, 32, 64):
        b = min(batch, len(full))

        def run(b: int = b) -> None:
            for s in torch_token_stats(gpu.torch_model, tokens[:b], lengths[:b]):
                text_features(s)

        rows.append({**energy_per_item(pynvml, handle, run, b, args.window_s), "path": "batched torch_token_stats"})
    report["energy"] = rows
    (args.out / "gpu_lm_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
