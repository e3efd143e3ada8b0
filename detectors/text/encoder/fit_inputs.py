"""The encoder's validation and test logits that the stacker is fitted and reported on (training side).

Validation: the GPU run's out-of-fold logits (``crossfit.npz``: each validation text scored by a fold model fitted
on train and the other four ``pair_id``-grouped folds, as stage 1's), so they are honest stacker inputs although
the shipped encoder saw validation. Test: the SHIPPED ``encoder.onnx`` (int8) on this machine's CPU through the
service's own code (``EncoderScorer``), so test numbers are what the service computes. The GPU run's float logits
of the same model on test are kept beside them for the parity check (``gpu_test``). Written to
``weights/text/fit_inputs/encoder_valtest.npz`` with the row ids and the sha256 of the ONNX file they belong to.

Run: ``python -m detectors.text.encoder.fit_inputs --run .devdata/enc_run1 --weights weights/text``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.manifest import sha256_file
from detectors.text.encoder.runtime import EncoderScorer

logger = logging.getLogger(__name__)

FILE = "encoder_valtest.npz"
ONNX = "encoder.onnx"
TOKENIZER = "encoder_tokenizer.json"


def shipped_scorer(weights_dir: Path, threads: int = 2) -> EncoderScorer:
    """The service's scorer over the encoder files in ``weights_dir`` (CPU, ``threads`` intra-op threads)."""
    from detectors.contract import Device
    from detectors.runtime import onnx_session

    return EncoderScorer(weights_dir / TOKENIZER, onnx_session(weights_dir / ONNX, Device(intra_op_threads=threads)))


def build(run_dir: Path, weights_dir: Path, data_dir: Path) -> dict[str, float]:
    from detectors.text.data import load_rows
    from detectors.text.normalise import normalise

    rows = load_rows(data_dir, seed=0)
    cf = np.load(run_dir / "crossfit.npz")
    if int(cf["folds_done"]) != 5:
        raise ValueError(f"{run_dir}: cross-fitting incomplete")
    va = [i for i, r in enumerate(rows) if r.split == "validation"]
    te = [i for i, r in enumerate(rows) if r.split == "test"]
    scorer = shipped_scorer(weights_dir)
    t0 = time.monotonic()
    cpu = scorer.logits([normalise(rows[i].text).text for i in te])
    seconds = time.monotonic() - t0
    gpu = cf["full_test"][te].astype(np.float64)
    diff = np.abs(cpu - gpu)
    parity = {"test_texts": len(te), "cpu_seconds": seconds, "max_abs_cpu_int8_vs_gpu": float(diff.max()),
              "mean_abs_cpu_int8_vs_gpu": float(diff.mean()), "corr": float(np.corrcoef(cpu, gpu)[0, 1])}
    out = weights_dir / "fit_inputs" / FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, ids=np.array([rows[i].id for i in va + te]),
                        logit=np.concatenate([cf["oof"][va].astype(np.float64), cpu]),
                        gpu_test=gpu, onnx_sha256=np.array(sha256_file(weights_dir / ONNX)),
                        parity=np.array(json.dumps(parity)), run=np.array((run_dir / "run.json").read_text()),
                        holdouts=np.array(json.dumps(holdout_table(rows, run_dir))))
    logger.info("wrote %s: %s", out, parity)
    return parity


def holdout_table(rows: list[Any], run_dir: Path) -> dict[str, dict[str, float | int | None]]:
    """AUROC / TPR@1%FPR of the GPU run's leave-one-out encoders (``holdouts.npz``: half of train, one epoch, the
    group removed) on the held-out group's validation + test texts (generators: against every validation + test human
    text), beside ``reference`` (the same recipe, nothing removed) on the same texts: the stage-1 report's protocol."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    h = np.load(run_dir / "holdouts.npz")
    y = np.array([r.label for r in rows])
    evaluable = np.array([r.split != "train" for r in rows])
    out: dict[str, dict[str, float | int | None]] = {}
    for key in h.files:
        if key == "reference":
            continue
        kind, name = key.split(": ", 1)
        if kind == "generator":
            m = evaluable & np.array([r.label == 0 or r.family == name for r in rows])
        else:
            m = evaluable & np.array([r.domain_group == name for r in rows])
        if y[m].min() == y[m].max():
            continue
        out[key] = {"n_ai": int(y[m].sum()), "n_human": int((1 - y[m]).sum()), "auroc": auroc(y[m], h[key][m]),
                    "tpr_at_1pct_fpr": tpr_at_fpr(y[m], h[key][m], 0.01),
                    "reference_auroc": auroc(y[m], h["reference"][m])}
    return out


def run_info(weights_dir: Path) -> dict[str, Any]:
    """The GPU run's ``run.json``, the CPU/GPU parity numbers and the leave-one-out table saved with the logits."""
    f = np.load(weights_dir / "fit_inputs" / FILE, allow_pickle=False)
    return {"run": json.loads(str(f["run"])), "parity": json.loads(str(f["parity"])),
            "holdouts": json.loads(str(f["holdouts"]))}


def load(weights_dir: Path, ids: list[str]) -> np.ndarray:
    """The logits of ``ids`` (validation and test rows) for the encoder in ``weights_dir``; refuses another file's."""
    f = np.load(weights_dir / "fit_inputs" / FILE, allow_pickle=False)
    if str(f["onnx_sha256"]) != sha256_file(weights_dir / ONNX):
        raise ValueError(f"{FILE} belongs to another {ONNX}")
    from detectors.text.crossfit import values_by_id

    return values_by_id(f["ids"], f["logit"], ids, FILE)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=Path("weights/text"))
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    args = ap.parse_args()
    build(args.run, args.weights, args.data)


if __name__ == "__main__":
    main()
