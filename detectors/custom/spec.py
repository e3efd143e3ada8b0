"""What a declared ("bring your own") detector is: its kind, local folder and knobs.

Caveats first: a spec only *names* local folders; nothing here downloads, and building a detector
from a spec whose folder is absent raises :class:`WeightsMissingError` before any heavy import.
The service turns its settings into this frozen dataclass (``detectors`` never reads settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from detectors.contract import Modality
from detectors.runtime import RuntimeUnavailableError

DTYPES = ("auto", "float32", "bfloat16", "float16")


class CustomKind(StrEnum):
    HF_SEQUENCE_CLASSIFIER = "hf-sequence-classifier"
    ZERO_SHOT_LM = "zero-shot-lm"
    HF_IMAGE_CLASSIFIER = "hf-image-classifier"
    ONNX = "onnx"


class ZeroShotMethod(StrEnum):
    """Binoculars (observer/performer cross-perplexity ratio, lower is AI) or Fast-DetectGPT
    (analytic sampling discrepancy, higher is AI; one model, or a sampling and a scoring model)."""

    BINOCULARS = "binoculars"
    FAST_DETECTGPT = "fast-detectgpt"


class Crop(StrEnum):
    """What an image classifier sees: the whole image, or the largest frontal face (OpenCV Haar)."""

    IMAGE = "image"
    FACE = "face"


@dataclass(frozen=True)
class CustomSpec:
    """One declared detector.

    ``path`` is the model folder (the observer for ``zero-shot-lm``); ``performer_path`` the second
    LM. The calibration manifest lives in ``manifest_dir`` (default ``<path>/.bylinecheck/<name>``,
    so that two detectors may share a folder). ``ai_label`` names the output label (or index)
    that means AI. ``max_length`` is tokens per window (text) and ``max_windows`` caps windows per
    text. ``dtype`` is the weights' dtype for the torch kinds (``auto``: as stored; scores are always
    computed in float32). ``min_evidence`` is in tokens (text) or crop pixels (image). ``io`` is the declared ONNX
    input/output spec (merged over the one in the folder's manifest).
    """

    name: str
    kind: CustomKind
    path: Path
    modality: Modality = Modality.TEXT
    performer_path: Path | None = None
    method: ZeroShotMethod | None = None
    ai_label: str = "1"
    max_batch_size: int = 8
    max_length: int = 512
    max_windows: int = 16
    max_span_rows: int = 64
    min_evidence: float | None = None
    crop: Crop = Crop.IMAGE
    verify_sha256: bool = True
    io: Mapping[str, Any] = field(default_factory=dict)
    manifest_dir: Path | None = None
    dtype: str = "auto"

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained``: local files only (never a download), and the dtype."""
        return {"local_files_only": True, "dtype": self.dtype}

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_length < 8 or self.max_windows < 1:
            raise ValueError("max_batch_size >= 1, max_length >= 8 and max_windows >= 1 are required")
        if self.kind is CustomKind.ZERO_SHOT_LM and self.modality is not Modality.TEXT:
            raise ValueError("zero-shot-lm detectors judge text")
        if self.kind in (CustomKind.HF_SEQUENCE_CLASSIFIER,) and self.modality is not Modality.TEXT:
            raise ValueError("hf-sequence-classifier detectors judge text")
        if self.kind is CustomKind.HF_IMAGE_CLASSIFIER and self.modality is not Modality.IMAGE:
            raise ValueError("hf-image-classifier detectors judge images")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}")

    @property
    def calibration_dir(self) -> Path:
        return self.manifest_dir if self.manifest_dir is not None else self.path / ".bylinecheck" / self.name

    @property
    def zero_shot_method(self) -> ZeroShotMethod:
        if self.method is not None:
            return self.method
        return ZeroShotMethod.BINOCULARS if self.performer_path is not None else ZeroShotMethod.FAST_DETECTGPT


def import_torch() -> Any:
    """``torch``, or RuntimeUnavailableError naming the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise RuntimeUnavailableError("this detector kind needs PyTorch: install bylinecheck[train]") from exc
    return torch


def import_transformers() -> Any:
    """``transformers``, or RuntimeUnavailableError naming the extra to install."""
    import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise RuntimeUnavailableError("this detector kind needs transformers: install bylinecheck[train]") from exc
    return transformers


def import_tokenizers() -> Any:
    """``tokenizers`` (for ONNX text models), or RuntimeUnavailableError naming the extra."""
    try:
        import tokenizers
    except ImportError as exc:
        raise RuntimeUnavailableError("ONNX text detectors need tokenizers: install bylinecheck[train]") from exc
    return tokenizers
