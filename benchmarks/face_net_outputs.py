"""CPU of dlib's face-network pass with and without the stage-statistics outputs (face 2.5.0) and the grid outputs
(face 2.6.0). A benchmark, not a test: it asserts nothing.

Caveats first: thread time of ``InferenceSession.run`` on one fixed chip, one intra-op thread, sessions built as
``OnnxFaceNet`` builds its own (sequential, all graph optimisations); the three variants are called in turn, so the
VM's drifts hit them alike. "old graph" is the pre-2.5.0 graph (descriptor output only); "new graph" is the shipped one,
asked for the descriptor alone, with 2.5.0's stage statistics, and for all five outputs (what ``FaceEmbedder.describe``
asks for from 2.6.0).

    .venv/bin/python -m benchmarks.face_net_outputs [--calls 200] [--out benchmarks/results/face_net_outputs.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def measure(calls: int) -> dict[str, Any]:
    from detectors.face.embedding import NumpyFaceNet, _check_chip, onnx_model
    from detectors.face.finding import EMBEDDING_FILE, dlib_model_path

    net = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    old = _session(onnx_model(net._convs, net._affines, net._fc).SerializeToString())
    new = _session(onnx_model(net._convs, net._affines, net._fc, stage_statistics=True).SerializeToString())
    feed = {"chip": _check_chip()[None]}
    variants = {
        "old graph, descriptor": (old, ["descriptor"]),
        "new graph, descriptor": (new, ["descriptor"]),
        "new graph, descriptor + stage statistics": (new, ["descriptor", "stage_mean", "stage_square"]),
        "new graph, descriptor + stage statistics + grid": (new, ["descriptor", "stage_mean", "stage_square", "grid_mean",
                                                                  "grid_variance"]),
    }
    for session, outputs in variants.values():
        for _ in range(10):
            session.run(outputs, feed)
    spent: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(calls):
        for name, (session, outputs) in variants.items():
            started = time.thread_time()
            session.run(outputs, feed)
            spent[name].append(time.thread_time() - started)
    return {name: {"median_ms": 1000 * float(np.median(v)), "p10_ms": 1000 * float(np.quantile(v, 0.1)),
                   "p90_ms": 1000 * float(np.quantile(v, 0.9)), "calls": calls} for name, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.calls)
    for name, row in result.items():
        print(f"{name}: median {row['median_ms']:.2f} ms (p10 {row['p10_ms']:.2f}, p90 {row['p90_ms']:.2f})")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
