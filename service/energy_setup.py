"""Choose the energy meter for a device from settings, and turn joules into the report's units."""

from __future__ import annotations

import logging

from detectors.contract import Device, DeviceKind
from detectors.energy import CpuTimeMeter, EnergyMeter, NvmlMeter, RaplMeter, ThreadCpuTimeMeter
from service.config import EnergyBackend, Settings

logger = logging.getLogger(__name__)

JOULES_PER_KWH = 3.6e6


def build_meter(settings: Settings, device: Device, nvml: object | None = None) -> EnergyMeter:
    """NVML on CUDA, else RAPL where readable, else the CPU-time estimate (``auto``).

    ``nvml`` lets tests hand in a fake NVML module; otherwise ``pynvml`` (nvidia-ml-py, the ``gpu``
    extra) is imported here. Asking explicitly for a backend that is unavailable raises.
    """
    fallback = CpuTimeMeter(settings.cpu_core_power_w, settings.cpu_core_power_source, device.label)
    backend = settings.energy_backend
    if backend is EnergyBackend.CPU_TIME:
        return fallback
    if backend in (EnergyBackend.NVML, EnergyBackend.AUTO) and (device.kind is DeviceKind.CUDA or nvml):
        try:
            return NvmlMeter(nvml or _import_nvml(), device.index, fallback)
        except Exception as exc:
            if backend is EnergyBackend.NVML:
                raise
            logger.warning("NVML unavailable (%s); trying RAPL", type(exc).__name__)
    if backend in (EnergyBackend.RAPL, EnergyBackend.AUTO):
        try:
            return RaplMeter(settings.rapl_root, fallback)
        except (FileNotFoundError, OSError):
            if backend is EnergyBackend.RAPL:
                raise
    return fallback


def lane_meter(settings: Settings, device: Device, meter: EnergyMeter) -> EnergyMeter:
    """The meter for the shipped detectors' lane: the thread-CPU estimate in place of the process-CPU estimate
    when ONNX Runtime runs single-threaded on the CPU (so the forward pass is all on the lane thread)."""
    if type(meter) is CpuTimeMeter and device.kind is DeviceKind.CPU and settings.intra_op_threads == 1:
        return ThreadCpuTimeMeter(meter.core_power_w, meter.power_source, meter.device)
    return meter


def keep_image_work_on_calling_threads() -> None:
    """Make OpenCV run on the thread that calls it (process-wide; called when the pipeline starts).

    Caveats first: by default OpenCV splits large resizes and colour conversions with a worker thread of its
    own. That thread's CPU time is in no check's estimate (each check is billed its own threads'
    ``time.thread_time``): measured ~2 ms per cold check at concurrency 8, unbilled. With one thread the work
    stays on the preprocessing thread that asked for it, and is billed to its check; under load that also saved
    the hand-offs' cost (service CPU per check at concurrency 8: -7%), at ~8 ms of latency for a lone check
    (``benchmarks/NOTES.md``, round 6).
    """
    import cv2

    cv2.setNumThreads(1)


def _import_nvml() -> object:
    try:
        import pynvml
    except ImportError as exc:
        raise ImportError("NVML energy needs nvidia-ml-py: install bylinecheck[gpu]") from exc
    return pynvml


def kwh(joules: float) -> float:
    return joules / JOULES_PER_KWH
