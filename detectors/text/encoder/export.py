"""ONNX export of the fine-tuned window classifier (training side; needs torch, safetensors, onnx).

The frozen word table is re-made here from the packaged all-MiniLM-L6-v2 checkpoint with the same int8 rounding
the GPU run used (``torch_bert.quantise_rows``); the fine-tuned rest comes from the run's two float16 parts.
The graph takes ``input_ids`` and ``attention_mask`` (int64, batch x positions, both dynamic) and returns
``logits`` (batch). ``--int8`` then quantises the matrix products' weights to int8 (ONNX Runtime dynamic
quantisation); the int8 word table stays as it is.

Run: ``python -m detectors.text.encoder.export --run .devdata/enc_run1 --parts full --out weights/text/encoder.onnx``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def load_model(run_dir: Path, parts: str) -> Any:
    import torch
    from safetensors.torch import load_file

    from detectors.text.encoder.prepare import package_dir
    from detectors.text.encoder.torch_bert import WindowClassifier, quantise_rows

    model = WindowClassifier().eval()
    state = model.state_dict()
    q, s = quantise_rows(load_file(str(package_dir() / "model.safetensors"))["embeddings.word_embeddings.weight"].float())
    state["word_q"], state["word_scale"] = q, s
    for part in ("a", "b"):
        for k, v in np.load(run_dir / f"{parts}_{part}.npz").items():
            state[k] = torch.from_numpy(v.astype(np.float32))
    model.load_state_dict(state)
    model.set_fused(False)
    return model


def export_onnx(model: Any, path: Path) -> None:
    """Trace ``model`` (a ``WindowClassifier`` with explicit attention) to float32 ONNX, batch and positions dynamic."""
    import warnings

    import torch

    model.set_fused(False)
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 1012, 102, 0]] * 2)
    mask = (ids != 0).long()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "positions"},
                                        "attention_mask": {0: "batch", 1: "positions"}, "logits": {0: "batch"}})


def export(run_dir: Path, parts: str, out: Path, int8: bool) -> None:
    model = load_model(run_dir, parts)
    target = out.with_suffix(".fp32.onnx") if int8 else out
    export_onnx(model, target)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(target), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True)  # per tensor moved the logits by 0.51 on average against float, per channel 0.10
        target.unlink()
    logger.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="the GPU run's output folder")
    ap.add_argument("--parts", default="full", choices=("main", "full"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--int8", action="store_true")
    args = ap.parse_args()
    export(args.run, args.parts, args.out, args.int8)


if __name__ == "__main__":
    main()
