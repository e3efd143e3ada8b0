"""Which detectors the service runs: built from the manifests under ``settings.weights_dir``.

Caveats first: a detector whose weights are missing or corrupt is *not* replaced by anything; its
slot records why, ``/readyz`` says so, and checks report that part as abstained with reason
``detector_unavailable``. Tests may pass their own detector objects instead.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detectors.contract import Detector, DetectorError, Device, DeviceKind
from service.config import DeviceSetting, Settings

logger = logging.getLogger(__name__)

# role -> (module, factory, weights sub-folder)
FACTORIES: Mapping[str, tuple[str, str, str]] = {
    "text": ("detectors.text", "build_text_detector", "text"),
    "face": ("detectors.face", "build_face_detector", "face"),
}


@dataclass
class DetectorSlot:
    role: str
    detector: Detector[Any] | None
    status: str  # "ready" or why not

    @property
    def is_ready(self) -> bool:
        return self.detector is not None and self.status == "ready"


def device_from_settings(settings: Settings) -> Device:
    kind = DeviceKind.CUDA if settings.device is DeviceSetting.CUDA else DeviceKind.CPU
    return Device(kind=kind, index=settings.cuda_index, intra_op_threads=settings.intra_op_threads)


def build_slot(role: str, settings: Settings, device: Device) -> DetectorSlot:
    module_name, factory_name, folder = FACTORIES[role]
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
        detector = factory(settings.weights_dir / folder)
        detector.load(device)
    except (ImportError, AttributeError) as exc:
        return DetectorSlot(role, None, f"not installed: {exc}")
    except DetectorError as exc:
        logger.warning("detector %s unavailable: %s", role, exc)
        return DetectorSlot(role, None, f"{type(exc).__name__}: {exc}")
    return DetectorSlot(role, detector, "ready")


def load_slots(settings: Settings, device: Device, provided: Mapping[str, Detector[Any]] | None) -> dict[str, DetectorSlot]:
    """Load every role; ``provided`` detectors (already constructed) are loaded on ``device`` instead."""
    if provided is not None:
        slots = {}
        for role, detector in provided.items():
            detector.load(device)
            slots[role] = DetectorSlot(role, detector, "ready")
        return slots
    return {role: build_slot(role, settings, device) for role in FACTORIES}
