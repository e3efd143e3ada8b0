"""GPU check: detectors' forward passes on CUDA vs CPU, and NVML energy per check at batch sizes 1-256.

Runs on a CUDA machine (torch + onnx + nvidia-ml-py; ONNX Runtime's CUDA provider if installed,
otherwise our PyTorch runtime). Inputs come from ``benchmarks/gpu_inputs.py`` (prepared on any CPU).
Prints a table and writes JSON. Stays under 5 minutes: each (model, batch size) runs for ~1.5 s.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import Device, DeviceKind
from detectors.manifest import load_manifest
from detectors.runtime import onnx_session

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def face_cnn_path(face_weights: Path) -> Path:
    """The shipped face CNN named in the manifest (``model_v2`` from weights 2.0.0, ``model`` before)."""
    files = load_manifest(face_weights).files
    return Path(files["model_v2"] if "model_v2" in files else files["model"])


def counter_period_s(nvml: Any, handle: Any, seconds: float = 2.0) -> float:
    """Median time between changes of the NVML energy counter, polled in a tight loop."""
    changes, last, end = [], nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter() + seconds
    stamp = time.perf_counter()
    while time.perf_counter() < end:
        value = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        if value != last:
            now = time.perf_counter()
            changes.append(now - stamp)
            stamp, last = now, value
    return float(np.median(changes[1:])) if len(changes) > 2 else float("nan")


def nvml_baseline(nvml: Any, report: dict[str, Any], idle_s: float) -> Any:
    """Initialise NVML, record the energy counter's update period and the idle board power in ``report``;
    returns GPU 0's handle."""
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    report["nvml_counter_period_s"] = counter_period_s(nvml, handle)
    e0, t0 = nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
    time.sleep(idle_s)
    report["idle_power_w"] = (nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - e0) / 1000.0 / (time.perf_counter() - t0)
    return handle


def energy_per_item(nvml: Any, handle: Any, run: Any, batch: int, window_s: float) -> dict[str, float]:
    import torch

    run()  # warm-up for this shape
    torch.cuda.synchronize()
    e0, t0, n = nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter(), 0
    while time.perf_counter() - t0 < window_s:
        run()
        n += 1
    torch.cuda.synchronize()
    e1, t1 = nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
    joules = (e1 - e0) / 1000.0
    return {"batch": batch, "forwards": n, "window_s": t1 - t0, "joules": joules,
            "j_per_item": joules / (n * batch), "items_per_s": n * batch / (t1 - t0), "power_w": joules / (t1 - t0)}


def tile(items: list[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=Path, default=REPO / ".devdata" / "gpu_inputs.pkl")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--window-s", type=float, default=1.5)
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    args = parser.parse_args()
    import pynvml
    import torch

    from detectors.text.detector import build_text_detector

    data = pickle.loads(args.inputs.read_bytes())
    cuda = Device(kind=DeviceKind.CUDA)
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    # The n-gram model's batched forward pass; the SmolLM2 stage is checked by benchmarks/gpu_lm_check.py.
    text_cpu = build_text_detector(args.weights / "text", lm_mode="off")
    text_cpu.load(Device())
    text_gpu = build_text_detector(args.weights / "text", lm_mode="off")
    text_gpu.load(cuda)
    report["text_runtime"] = type(text_gpu._session).__name__
    a, b = text_cpu.forward(data["text"]), text_gpu.forward(data["text"])
    report["text_max_abs_diff"] = float(max(np.abs(x.logits - y.logits).max() for x, y in zip(a, b, strict=True)
                                            if len(x.logits)))
    outs_cpu = text_cpu.postprocess(data["text"], a)
    outs_gpu = text_gpu.postprocess(data["text"], b)
    report["text_prob_max_abs_diff"] = float(max(abs((x.probability or 0) - (y.probability or 0))
                                                  for x, y in zip(outs_cpu, outs_gpu, strict=True)))
    # The face detector's forward pass is its CNN (face finding with dlib stays on the CPU).
    cnn = face_cnn_path(args.weights / "face")
    report["face_cnn"] = cnn.name
    face_cpu = onnx_session(cnn, Device())
    face_gpu = onnx_session(cnn, cuda)
    crops = np.ascontiguousarray(data["face_crops"], dtype=np.float32)
    fa, fb = face_cpu.run(None, {"crops": crops})[0], face_gpu.run(None, {"crops": crops})[0]
    report["face_runtime"] = type(face_gpu).__name__
    report["face_max_abs_diff"] = float(np.abs(fa - fb).max())

    handle = nvml_baseline(pynvml, report, idle_s=2.0)
    report["text"], report["face"] = [], []
    for batch in BATCHES:
        items = tile(data["text"], batch)
        report["text"].append(energy_per_item(pynvml, handle, lambda items=items: text_gpu.forward(items), batch,
                                              args.window_s))
        many = np.ascontiguousarray(np.resize(crops, (batch, *crops.shape[1:])))
        report["face"].append(energy_per_item(pynvml, handle, lambda many=many: face_gpu.run(None, {"crops": many}),
                                              batch, args.window_s))
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("text", "face")}, indent=2))
    print(f"{'model':>5} {'batch':>5} {'items/s':>10} {'W':>7} {'J/item':>9}")
    for model in ("text", "face"):
        for row in report[model]:
            print(f"{model:>5} {row['batch']:>5} {row['items_per_s']:>10.1f} {row['power_w']:>7.1f} {row['j_per_item']:>9.5f}")


if __name__ == "__main__":
    main()
