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
from service.config import CustomDetectorSpec, DeviceSetting, Settings

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


def _factory_options(role: str, settings: Settings) -> dict[str, Any]:
    """Per-role options from settings (face embeddings feed headshot-reuse matching)."""
    if role == "text":
        return {"lm_mode": settings.text_lm, "lm_runtime": settings.text_lm_runtime}
    return {"embed_faces": settings.face_embeddings} if role == "face" else {}


def build_slot(role: str, settings: Settings, device: Device) -> DetectorSlot:
    module_name, factory_name, folder = FACTORIES[role]
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
        detector = factory(settings.weights_dir / folder, **_factory_options(role, settings))
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


# Declared ("bring your own") detectors, built from ``settings.custom_detectors``.


@dataclass
class CustomSlot:
    """A declared detector: its settings, the device it runs on, and the detector or why it is not ready."""

    spec: CustomDetectorSpec
    device: Device
    detector: Detector[Any] | None
    status: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_ready(self) -> bool:
        return self.detector is not None and self.status == "ready"


def custom_spec(spec: CustomDetectorSpec) -> Any:
    """The pure-ML :class:`detectors.custom.CustomSpec` for a settings entry."""
    from detectors.contract import Modality
    from detectors.custom import CustomKind, CustomSpec, ZeroShotMethod
    from detectors.custom.spec import Crop

    return CustomSpec(
        name=spec.name, kind=CustomKind(spec.kind), path=spec.path.expanduser(),
        modality=Modality.TEXT if spec.role == "text" else Modality.IMAGE,
        performer_path=spec.performer_path.expanduser() if spec.performer_path else None,
        method=ZeroShotMethod(spec.method) if spec.method else None, ai_label=spec.ai_label,
        max_batch_size=spec.max_batch_size, max_length=spec.max_length, max_windows=spec.max_windows,
        min_evidence=spec.min_evidence, crop=Crop(spec.crop), verify_sha256=spec.verify_sha256, io=dict(spec.io),
        manifest_dir=spec.manifest_dir.expanduser() if spec.manifest_dir else None, dtype=spec.dtype,
    )


def custom_device(spec: CustomDetectorSpec, settings: Settings) -> Device:
    if spec.device is None:
        return device_from_settings(settings)
    kind = DeviceKind.CUDA if spec.device is DeviceSetting.CUDA else DeviceKind.CPU
    return Device(kind=kind, index=settings.cuda_index, intra_op_threads=settings.intra_op_threads)


def build_custom_slot(spec: CustomDetectorSpec, settings: Settings) -> CustomSlot:
    """Build and load one declared detector; a missing folder or extra is recorded in the status, never fetched."""
    device = custom_device(spec, settings)
    try:
        from detectors.custom import build_custom_detector

        detector = build_custom_detector(custom_spec(spec))
        detector.load(device)
        warm_up(detector, spec.role)
    except DetectorError as exc:
        logger.warning("custom detector %s unavailable: %s", spec.name, exc)
        return CustomSlot(spec, device, None, f"{type(exc).__name__}: {exc}")
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # unreadable or incompatible files
        logger.warning("custom detector %s failed to load or warm up: %s", spec.name, type(exc).__name__)
        return CustomSlot(spec, device, None, f"load failed: {type(exc).__name__}: {exc}")
    return CustomSlot(spec, device, detector, "ready")


def warm_up(detector: Detector[Any], role: str) -> None:
    """One small item through the whole contract, so that a broken folder shows at start, not on a check."""
    import numpy as np

    from detectors.contract import ImageItem, TextItem

    item: Any = TextItem("A short warm-up sentence for the detector. " * 4) if role == "text" \
        else ImageItem(np.full((64, 64, 3), 128, dtype=np.uint8))
    prepared = [detector.preprocess(item)]
    detector.postprocess(prepared, detector.forward(prepared))


def load_custom_slots(settings: Settings) -> dict[str, CustomSlot]:
    return {spec.name: build_custom_slot(spec, settings) for spec in settings.custom_detectors}
