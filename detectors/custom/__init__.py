"""Declared ("bring your own") detectors: local transformers classifiers, zero-shot LM pairs, image
classifiers and ONNX graphs, behind the same contract as the shipped detectors.

Caveats first: nothing is downloaded, ever (``local_files_only``); a missing folder raises
:class:`WeightsMissingError` naming it. torch/transformers are imported only inside the backends that
need them (install ``bylinecheck[train]``). Scores are calibrated only by a manifest that
``bylinecheck calibrate`` writes into the folder; until then the detectors abstain with reason
``uncalibrated`` and report their raw score.
"""

from __future__ import annotations

from typing import Any, cast

from detectors.contract import Detector, WeightsMissingError
from detectors.custom.calibrated import UNCALIBRATED, CalibrationState, read_state
from detectors.custom.spec import CustomKind, CustomSpec, ZeroShotMethod

__all__ = ["UNCALIBRATED", "CalibrationState", "CustomKind", "CustomSpec", "ZeroShotMethod", "build_custom_detector"]


def build_custom_detector(spec: CustomSpec) -> Detector[Any]:
    """Check the folders and read the calibration state; ``load(device)`` does the heavy work."""
    for folder in (spec.path, spec.performer_path):
        if folder is not None and not folder.is_dir():
            raise WeightsMissingError(f"{spec.name}: model folder {folder} is missing")
    state = read_state(spec.calibration_dir, verify=spec.verify_sha256, fallback=spec.path)
    if spec.kind is CustomKind.HF_SEQUENCE_CLASSIFIER:
        from detectors.custom.hf_text import HfSequenceClassifierDetector

        return cast("Detector[Any]", HfSequenceClassifierDetector(spec, state))
    if spec.kind is CustomKind.ZERO_SHOT_LM:
        from detectors.custom.zero_shot import ZeroShotLmDetector

        return cast("Detector[Any]", ZeroShotLmDetector(spec, state))
    if spec.kind is CustomKind.HF_IMAGE_CLASSIFIER:
        from detectors.custom.hf_image import HfImageClassifierDetector

        return cast("Detector[Any]", HfImageClassifierDetector(spec, state))
    from detectors.custom.zero_shot_onnx import OnnxZeroShotLmDetector, is_zero_shot_io

    if is_zero_shot_io({**dict(state.extra.get("io", {})), **dict(spec.io)}):
        return cast("Detector[Any]", OnnxZeroShotLmDetector(spec, state))
    from detectors.custom.onnx_model import OnnxDetector

    return cast("Detector[Any]", OnnxDetector(spec, state))
