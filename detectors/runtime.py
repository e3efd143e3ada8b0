"""Inference runtimes: ONNX Runtime sessions (CPU, or CUDA when the device says so) and PyTorch.

Caveats first: the device is always handed in; nothing here probes hardware on import. On CUDA,
ONNX Runtime's CUDA provider is used when onnxruntime-gpu is installed, otherwise the same graph
runs with PyTorch on the GPU (:mod:`detectors.torch_onnx`); with neither, asking for CUDA raises
:class:`RuntimeUnavailableError` rather than silently running on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectors.contract import DetectorError, Device, DeviceKind


class RuntimeUnavailableError(DetectorError):
    """The runtime needed for this device is not installed."""


def onnx_session(model_path: Path, device: Device) -> Any:
    """Open an ``onnxruntime.InferenceSession`` for ``device`` with full graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if device.intra_op_threads > 0:
        options.intra_op_num_threads = device.intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if device.kind is DeviceKind.CUDA:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return torch_onnx_session(model_path, device)
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device.index}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(model_path), sess_options=options, providers=providers)


def torch_device(device: Device) -> Any:
    """The ``torch.device`` for ``device``; raises RuntimeUnavailableError without torch or CUDA."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise RuntimeUnavailableError("PyTorch backend needs bylinecheck[train] or [gpu]") from exc
    if device.kind is DeviceKind.CUDA and not torch.cuda.is_available():
        raise RuntimeUnavailableError("CUDA requested but torch sees no GPU")
    return torch.device(device.label)


def torch_onnx_session(model_path: Path, device: Device) -> Any:
    """The ONNX graph evaluated by PyTorch on ``device`` (see :mod:`detectors.torch_onnx`)."""
    from detectors.torch_onnx import TorchOnnxSession

    try:
        return TorchOnnxSession(model_path, torch_device(device))
    except ImportError as exc:
        raise RuntimeUnavailableError("CUDA needs onnxruntime-gpu, or torch and onnx: install bylinecheck[gpu]") from exc
