"""Cost per check of each declared-detector kind, on models built here with random weights.

``--size tiny`` uses the tests' tiny models; ``--size base`` the published *shapes* (RoBERTa-base
125 M, two GPT-2-medium 355 M LMs for Binoculars / one for Fast-DetectGPT, ViT-base 86 M) with random
weights: the compute, hence time and energy, of a check does not depend on the weights' values.
Each kind is loaded from its folder and ``preprocess + forward + postprocess`` of a ~300-word
article (text) or a 512x512 image is timed at batch 1 and 8, repeated inside one energy window of at
least ``--window-s`` seconds (so that the NVML counter advances) and divided by the checks. Energy: NVML on ``--device cuda``
(measured, whole GPU), else the service's CPU-time estimate (CPU seconds x 6.75 W per core). ONNX
kinds run on the CPU (onnxruntime). Imports nothing from ``service`` (runs where only torch is).

    .venv/bin/python -m benchmarks.bench_custom_detectors
    python3 -m benchmarks.bench_custom_detectors --device cuda --size base --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import Detector, Device, DeviceKind, ImageItem, Modality, TextItem
from detectors.custom import CustomKind, CustomSpec, build_custom_detector
from detectors.custom.export import export_onnx
from detectors.energy import CpuTimeMeter, EnergyMeter, NvmlMeter
from tests import custom_models

CORE_POWER_W = 6.75  # service.config.Settings.cpu_core_power_w


def _specs(root: Path, size: str, max_length: int) -> list[CustomSpec]:
    custom_models.roberta_classifier(root / "roberta", size=size)
    observer, performer = custom_models.gpt2_pair(root / "lm", size=size)
    custom_models.vit_classifier(root / "vit", size=size)
    specs = [
        CustomSpec("hf-sequence-classifier", CustomKind.HF_SEQUENCE_CLASSIFIER, root / "roberta", ai_label="ai",
                   max_length=max_length),
        CustomSpec("zero-shot-lm binoculars", CustomKind.ZERO_SHOT_LM, observer, performer_path=performer,
                   max_length=max_length),
        CustomSpec("zero-shot-lm fast-detectgpt", CustomKind.ZERO_SHOT_LM, observer, max_length=max_length),
        CustomSpec("hf-image-classifier", CustomKind.HF_IMAGE_CLASSIFIER, root / "vit", modality=Modality.IMAGE,
                   ai_label="ai"),
    ]
    export_onnx(specs[0], root / "roberta-onnx")
    export_onnx(specs[3], root / "vit-onnx")
    specs.append(CustomSpec("onnx (text)", CustomKind.ONNX, root / "roberta-onnx", max_length=max_length))
    specs.append(CustomSpec("onnx (image)", CustomKind.ONNX, root / "vit-onnx", modality=Modality.IMAGE))
    return specs


def _measure(detector: Detector[Any], item: Any, batch: int, window_s: float, meter: EnergyMeter) -> dict[str, Any]:
    """Batches of ``batch`` copies of ``item`` inside one energy window of at least ``window_s`` (so that the
    NVML counter advances), after one warm-up batch; per-check figures are the window's over its checks."""

    def one() -> None:
        prepared = [detector.preprocess(item) for _ in range(batch)]
        detector.postprocess(prepared, detector.forward(prepared))

    one()
    token = meter.begin()
    start, batches = time.perf_counter(), 0
    while batches == 0 or time.perf_counter() - start < window_s:
        one()
        batches += 1
    reading = meter.end(token)
    checks = batches * batch
    method = f"{reading.source.value}{' below resolution' if reading.below_resolution else ''}"
    return {"ms_per_check": 1000 * (time.perf_counter() - start) / checks, "j_per_check": reading.joules / checks,
            "checks": checks, "energy": method}


def _meter(device: Device) -> EnergyMeter:
    fallback = CpuTimeMeter(CORE_POWER_W, "Xeon Platinum 8380 TDP / 40 cores", device.label)
    if device.kind is DeviceKind.CPU:
        return fallback
    import pynvml
    import torch

    return NvmlMeter(pynvml, device.index, fallback, synchronize=torch.cuda.synchronize)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window-s", type=float, default=1.0, help="energy window per measurement")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = Device(kind=DeviceKind(args.device))
    text = TextItem(" ".join(custom_models.SENTENCES * 5))
    image = ImageItem(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in _specs(Path(tmp), args.size, 64 if args.size == "tiny" else 512):
            where = Device() if spec.kind is CustomKind.ONNX else device
            detector = build_custom_detector(spec)
            detector.load(where)
            item = text if spec.modality is Modality.TEXT else image
            for batch in (1, 8):
                row = {"kind": spec.name, "size": args.size, "device": where.label, "batch": batch,
                       **_measure(detector, item, batch, args.window_s, _meter(where))}
                results.append(row)
                print(f"{row['kind']:<28} {where.label:<7} batch {batch}: {row['ms_per_check']:8.2f} ms/check  "
                      f"{row['j_per_check']:.4f} J/check ({row['energy']}, {row['checks']} checks)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
