"""GPU job: SmolLM2 features for every text in a token-id file (torch; no bylinecheck install needed).

Caveats first: imports only numpy, torch and ``detectors.text.lm`` (plus ``detectors.text``'s numpy-
only modules). The body runs in ``--dtype`` (float32 by default, so that training features match the
numpy service path: a bf16 body moved per-text features by up to 0.27), logits always in float32.
Texts are sorted by length and batched by a token budget. ``--parity`` texts from ``parity_ref.npz``
(next to the token file) are compared with the numpy path (rescored in float32 if the body is not).

Writes to ``--out``: ``features.npz`` (``ids``, ``features`` float32 n x F, ``feature_names``,
``lengths``), ``token_ll.npz`` / ``token_entropy.npz`` / ``token_logrank.npz`` (float16, the texts'
scored tokens concatenated in file order; split by ``lengths``), ``parity.npz`` and ``run.json``.

Run (repo root): ``python3 -m detectors.text.lm.gpu_features --gguf FILE --tokens .devdata/lm_gpu/tokens.npz
--out "$OUT"``; add ``--device cpu --limit 20`` for a local smoke test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.lm.stats import FEATURE_NAMES, TokenStats, text_features
from detectors.text.lm.torch_model import TorchLlama, torch_token_stats
from detectors.text.lm.weights import load_llama


def batches(lengths: np.ndarray, token_budget: int, max_batch: int) -> list[np.ndarray]:
    """Index batches, longest texts first, each with at most ``token_budget`` padded positions."""
    order = np.argsort(-lengths.astype(np.int64), kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1) + 1
        size = max(1, min(max_batch, token_budget // width))
        out.append(order[start : start + size])
        start += size
    return out


def _stats_halving_on_oom(model: TorchLlama, tokens: np.ndarray, lengths: np.ndarray) -> list[TokenStats]:
    """``torch_token_stats``, retried on two halves of the batch when the GPU runs out of memory."""
    torch = model.torch
    try:
        return torch_token_stats(model, tokens, lengths)
    except torch.cuda.OutOfMemoryError:
        if len(lengths) < 2:
            raise
        torch.cuda.empty_cache()
    half = len(lengths) // 2
    return (_stats_halving_on_oom(model, tokens[:half], lengths[:half])
            + _stats_halving_on_oom(model, tokens[half:], lengths[half:]))


def score_all(model: TorchLlama, tokens: np.ndarray, lengths: np.ndarray, token_budget: int,
              max_batch: int) -> tuple[np.ndarray, list[TokenStats]]:
    """Features (n x F) and per-text token statistics, in the input order."""
    feats = np.full((len(lengths), len(FEATURE_NAMES)), np.nan, dtype=np.float32)
    stats: list[TokenStats | None] = [None] * len(lengths)
    for idx in batches(lengths, token_budget, max_batch):
        nonempty = idx[lengths[idx] > 0]
        for i in idx[lengths[idx] == 0]:
            stats[i] = TokenStats(*(np.zeros(0) for _ in range(4)))
        if nonempty.size:
            for i, s in zip(nonempty, _stats_halving_on_oom(model, tokens[nonempty], lengths[nonempty]), strict=True):
                stats[i] = s
        for i in idx:
            feats[i] = text_features(stats[i])
    return feats, [s for s in stats if s is not None]


def _save_token_arrays(out: Path, stats: list[TokenStats]) -> None:
    arrays = {"ll": [s.ll for s in stats], "entropy": [s.entropy for s in stats], "logrank": [np.log(s.rank) for s in stats]}
    for name, parts in arrays.items():
        flat = np.concatenate(parts).astype(np.float16) if parts else np.zeros(0, np.float16)
        np.savez_compressed(out / f"token_{name}.npz", values=flat)


def _parity(args: argparse.Namespace, weights: Any, data: Any, feats: np.ndarray, pos: dict[str, int]) -> dict[str, Any]:
    ref_path = args.tokens.parent / "parity_ref.npz"
    if args.parity <= 0 or not ref_path.exists():
        return {"skipped": True}
    ref = np.load(ref_path, allow_pickle=False)
    rows = [pos[str(i)] for i in ref["ids"][: args.parity] if str(i) in pos]
    if not rows:
        return {"skipped": True}
    rows_a = np.array(rows)
    f32 = feats[rows_a]
    if args.dtype != "float32":
        fp32 = TorchLlama(weights, args.device, "float32", "float32")
        f32, _ = score_all(fp32, data["tokens"][rows_a], data["lengths"][rows_a], args.token_budget, args.max_batch)
    ref_feats = ref["features"][[k for k, i in enumerate(ref["ids"][: args.parity]) if str(i) in pos]]
    np.savez_compressed(args.out / "parity.npz", ids=data["ids"][rows_a], features_fp32=f32, features_main=feats[rows_a],
                        features_numpy=ref_feats, feature_names=np.array(FEATURE_NAMES))

    def diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        return {n: float(np.nanmax(np.abs(a[:, j] - b[:, j]))) for j, n in enumerate(FEATURE_NAMES)}

    return {"n": len(rows), "max_abs_fp32_vs_numpy": diff(f32, ref_feats), "max_abs_main_vs_fp32": diff(feats[rows_a], f32)}


def _limited_rows(args: argparse.Namespace, ids: np.ndarray) -> np.ndarray:
    """For a smoke test: the parity texts first (up to ``--limit``), then the file's first rows."""
    ref_path = args.tokens.parent / "parity_ref.npz"
    pos = {str(i): k for k, i in enumerate(ids)}
    first = [pos[str(i)] for i in np.load(ref_path)["ids"][: args.parity] if str(i) in pos] if ref_path.exists() else []
    rest = [k for k in range(len(ids)) if k not in set(first)]
    return np.array((first + rest)[: args.limit], dtype=np.int64)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    t0 = time.perf_counter()
    data = dict(np.load(args.tokens, allow_pickle=False))
    if args.limit:
        keep = _limited_rows(args, data["ids"])
        data = {k: (v[keep] if k in ("ids", "tokens", "lengths") else v) for k, v in data.items()}
    lengths = data["lengths"].astype(np.int64)
    digest = hashlib.sha256(args.gguf.read_bytes()).hexdigest()
    if args.gguf_sha256 and digest != args.gguf_sha256:
        raise SystemExit(f"{args.gguf}: sha256 {digest} is not the expected {args.gguf_sha256} (bad concatenation?)")
    weights = load_llama(args.gguf)
    model = TorchLlama(weights, args.device, args.dtype, "float32")
    t_load = time.perf_counter() - t0
    feats, stats = score_all(model, data["tokens"], lengths, args.token_budget, args.max_batch)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_score = time.perf_counter() - t0 - t_load
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "features.npz", ids=data["ids"], features=feats, feature_names=np.array(FEATURE_NAMES),
                        lengths=data["lengths"])
    _save_token_arrays(args.out, stats)
    pos = {str(i): k for k, i in enumerate(data["ids"])}
    report = {
        "gguf_sha256": digest, "texts": len(lengths), "tokens": int(lengths.sum()), "device": args.device, "dtype": args.dtype,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu", "torch": torch.__version__,
        "fp32_matmul_precision": torch.get_float32_matmul_precision(),
        "load_s": round(t_load, 2), "score_s": round(t_score, 2),
        "nan_share": {n: float(np.isnan(feats[:, j]).mean()) for j, n in enumerate(FEATURE_NAMES)},
        "parity": _parity(args, weights, data, feats, pos),
    }
    report["total_s"] = round(time.perf_counter() - t0, 2)
    (args.out / "run.json").write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32", choices=("bfloat16", "float16", "float32"),
                        help="body dtype; float32 (default) matches the numpy service path, bf16 moved fastdetect by 0.27")
    parser.add_argument("--token-budget", type=int, default=32768, help="padded positions per batch")
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--gguf-sha256", default="", help="refuse to run unless the GGUF has this sha256")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N texts (smoke test)")
    parser.add_argument("--parity", type=int, default=64)
    report = run(parser.parse_args())
    print(json.dumps(report, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
