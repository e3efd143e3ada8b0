"""Cost per check of each declared-detector kind, on the tiny random models the tests build.

Builds the models in a temporary folder (tests/custom_models.py), loads each kind on the CPU and
times ``preprocess + forward + postprocess`` of a ~300-word article (text kinds) or a 512x512 image
(image kinds), at batch 1 and batch 8, with the CPU-time energy estimate of the service
(process CPU seconds x per-core power from Settings). Tiny models say what the *plumbing* costs;
real checkpoints cost orders of magnitude more and are not measured here.

    .venv/bin/python -m benchmarks.bench_custom_detectors --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import Detector, Device, ImageItem, Modality, TextItem
from detectors.custom import CustomKind, CustomSpec, build_custom_detector
from detectors.custom.export import export_onnx
from detectors.energy import CpuTimeMeter
from service.config import Settings
from tests import custom_models


def _specs(root: Path) -> list[CustomSpec]:
    custom_models.roberta_classifier(root / "roberta")
    observer, performer = custom_models.gpt2_pair(root / "lm")
    custom_models.vit_classifier(root / "vit")
    text = {"max_length": 64, "ai_label": "ai"}
    specs = [
        CustomSpec("hf-sequence-classifier", CustomKind.HF_SEQUENCE_CLASSIFIER, root / "roberta", **text),  # type: ignore[arg-type]
        CustomSpec("zero-shot-lm binoculars", CustomKind.ZERO_SHOT_LM, observer, performer_path=performer, max_length=64),
        CustomSpec("zero-shot-lm fast-detectgpt", CustomKind.ZERO_SHOT_LM, observer, max_length=64),
        CustomSpec("hf-image-classifier", CustomKind.HF_IMAGE_CLASSIFIER, root / "vit", modality=Modality.IMAGE,
                   ai_label="ai"),
    ]
    export_onnx(specs[0], root / "roberta-onnx")
    export_onnx(specs[3], root / "vit-onnx")
    specs.append(CustomSpec("onnx (text)", CustomKind.ONNX, root / "roberta-onnx", max_length=64))
    specs.append(CustomSpec("onnx (image)", CustomKind.ONNX, root / "vit-onnx", modality=Modality.IMAGE))
    return specs


def _measure(detector: Detector[Any], item: Any, batch: int, reps: int, meter: CpuTimeMeter) -> dict[str, float]:
    walls, joules = [], []
    for _ in range(reps + 1):  # the first run warms up
        token = meter.begin()
        start = time.perf_counter()
        prepared = [detector.preprocess(item) for _ in range(batch)]
        detector.postprocess(prepared, detector.forward(prepared))
        walls.append((time.perf_counter() - start) / batch)
        joules.append(meter.end(token).joules / batch)
    return {"ms_per_check": 1000 * statistics.median(walls[1:]), "j_per_check": statistics.median(joules[1:])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings(environment="test")
    meter = CpuTimeMeter(settings.cpu_core_power_w, settings.cpu_core_power_source)
    text = TextItem(" ".join(custom_models.SENTENCES * 5))
    image = ImageItem(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in _specs(Path(tmp)):
            detector = build_custom_detector(spec)
            detector.load(Device(intra_op_threads=1))
            item = text if spec.modality is Modality.TEXT else image
            for batch in (1, 8):
                row = {"kind": spec.name, "batch": batch, **_measure(detector, item, batch, args.reps, meter)}
                results.append(row)
                print(f"{row['kind']:<30} batch {batch}: {row['ms_per_check']:8.2f} ms/check  "
                      f"{row['j_per_check']:.4f} J/check (CPU-time estimate)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
