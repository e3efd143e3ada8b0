"""CPU time of the numpy SmolLM2 forward pass at several token counts and BLAS thread counts (prints numbers).

Caveats first: uses threadpoolctl (a scikit-learn dependency, dev side) to set BLAS threads; wall
time depends on other load on the machine, process CPU time much less. Includes the logits and the
per-token statistics (what ``LMScorer.features_from_ids`` does), not the tokenizer (~1 ms).

Run: ``python -m detectors.text.lm.bench --gguf FILE --tokens 128 256 512 --threads 1 2``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from detectors.text.lm.scorer import LMScorer


def main() -> None:
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scorer = LMScorer(args.gguf, max(args.tokens))
    ids = np.random.default_rng(0).integers(100, 40000, size=max(args.tokens))
    print("| tokens | blas threads | median wall s | median process CPU s | tokens/s (wall) |")  # noqa: T201
    print("|---:|---:|---:|---:|---:|")  # noqa: T201
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            scorer.features_from_ids(ids[:32])  # warm-up
            for n in args.tokens:
                walls, cpus = [], []
                for _ in range(args.repeats):
                    w0, c0 = time.perf_counter(), time.process_time()
                    scorer.features_from_ids(ids[:n])
                    walls.append(time.perf_counter() - w0)
                    cpus.append(time.process_time() - c0)
                wall, cpu = float(np.median(walls)), float(np.median(cpus))
                print(f"| {n} | {threads} | {wall:.3f} | {cpu:.3f} | {n / wall:.0f} |")  # noqa: T201


if __name__ == "__main__":
    main()
