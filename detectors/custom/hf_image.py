"""``hf-image-classifier``: a local transformers image-classification folder (model + image processor),
applied to the whole image or to the face crop (see :mod:`detectors.custom.crops`).

Caveats first: loaded with ``local_files_only=True``; torch and transformers are imported in
``load`` (install ``bylinecheck[train]``). The raw score is the AI logit (``log p_ai - log p_other``,
higher is AI); evidence is the crop's pixel count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.contract import Box, DetectorError, DetectorOutput, Device, ImageItem, Modality, ScoreDirection
from detectors.custom.calibrated import CalibrationState
from detectors.custom.crops import Cropper
from detectors.custom.spec import CustomSpec, import_transformers
from detectors.custom.textclass import ai_logits, resolve_label
from detectors.runtime import torch_device

IMAGE_TOO_SMALL = "image_too_small"
DEFAULT_MIN_PIXELS = 32.0 * 32.0


@dataclass(frozen=True)
class PreparedImage:
    pixel_values: np.ndarray | None  # (C, H, W) float32, as the processor makes it
    region: Box | None
    pixels: float
    abstain_reason: str | None

    @property
    def work(self) -> float:
        return float(self.pixel_values.size) if self.pixel_values is not None else 1.0


def min_pixels(spec: CustomSpec, state: CalibrationState) -> float:
    if state.min_evidence is not None:
        return state.min_evidence
    return spec.min_evidence if spec.min_evidence is not None else DEFAULT_MIN_PIXELS


def image_output(name: str, state: CalibrationState, item: PreparedImage, raw: float | None) -> DetectorOutput:
    judged = state.judge(raw, item.abstain_reason)
    return DetectorOutput(
        detector=name, version=state.version, raw_score=raw, direction=ScoreDirection.HIGHER_IS_AI,
        probability=judged.probability, verdict=judged.verdict, threshold=judged.threshold,
        evidence=item.pixels, evidence_unit="pixels", work=item.work, abstain_reason=judged.abstain_reason,
        region=item.region,
    )


def batch_scores(batch: Sequence[PreparedImage], run: Any) -> list[float | None]:
    """Call ``run(stacked pixel values) -> AI logits`` on the items that have pixels."""
    live = [i for i, p in enumerate(batch) if p.pixel_values is not None]
    scores: list[float | None] = [None] * len(batch)
    if live:
        stacked = np.stack([batch[i].pixel_values for i in live]).astype(np.float32)  # type: ignore[misc]
        for i, z in zip(live, run(stacked), strict=True):
            scores[i] = float(z)
    return scores


class HfImageClassifierDetector:
    """Detector for :class:`ImageItem` backed by ``AutoModelForImageClassification``."""

    modality = Modality.IMAGE

    def __init__(self, spec: CustomSpec, state: CalibrationState) -> None:
        self.spec = spec
        self.state = state
        self.name = spec.name
        self.version = state.version
        self.max_batch_size = spec.max_batch_size
        self.cropper = Cropper(spec.crop)
        self.min_pixels = min_pixels(spec, state)
        self._processor: Any = None
        self._model: Any = None
        self._device: Any = None
        self.ai_index = 1

    def load(self, device: Device) -> None:
        transformers = import_transformers()
        path = str(self.spec.path)
        self._processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)
        model = transformers.AutoModelForImageClassification.from_pretrained(path, **self.spec.model_kwargs())
        self._device = torch_device(device)
        self._model = model.to(self._device).eval()
        self.ai_index = resolve_label(self.spec.ai_label, dict(model.config.id2label), int(model.config.num_labels))
        self.cropper.load()

    def preprocess(self, item: ImageItem) -> PreparedImage:
        if self._processor is None:
            raise DetectorError(f"{self.name}: load must be called before preprocess")
        crop = self.cropper(item)
        if crop.pixels is None:
            return PreparedImage(None, None, 0.0, crop.reason)
        from PIL import Image

        pixels = float(crop.pixels.shape[0] * crop.pixels.shape[1])
        if pixels < self.min_pixels:
            return PreparedImage(None, crop.region, pixels, IMAGE_TOO_SMALL)
        values = self._processor(images=[Image.fromarray(crop.pixels)], return_tensors="np")["pixel_values"][0]
        return PreparedImage(np.asarray(values, dtype=np.float32), crop.region, pixels, None)

    def forward(self, batch: Sequence[PreparedImage]) -> list[float | None]:
        if self._model is None:
            raise DetectorError(f"{self.name}: load must be called before forward")
        import torch

        def run(stacked: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                values = torch.from_numpy(stacked).to(self._device, dtype=self._model.dtype)
                logits = self._model(pixel_values=values).logits
            return ai_logits(logits.float().cpu().numpy(), self.ai_index)

        return batch_scores(batch, run)

    def postprocess(self, prepared: Sequence[PreparedImage], raw: Sequence[object]) -> list[DetectorOutput]:
        return [image_output(self.name, self.state, p, r) for p, r in zip(prepared, raw, strict=True)]  # type: ignore[arg-type]
