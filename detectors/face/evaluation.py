"""Evaluate the face detector on a folder of real and a folder of synthetic headshots.

Caveats first: AUROC and TPR at 1% FPR are computed on the faces the detector judged (abstentions
excluded, reported as coverage); "jpeg_q60_half" re-encodes every image at half size and JPEG
quality 60 before judging. Run as
``python -m detectors.face.evaluation --real DIR --synthetic DIR [--weights weights/face]``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import DetectorOutput, Device
from detectors.face.augment import q60_half
from detectors.face.data import read_rgb
from detectors.face.detector import FaceDetector, build_face_detector
from detectors.metrics import auroc, rates_at, tpr_at_fpr

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {"as_submitted": None, "jpeg_q60_half": q60_half}


def image_paths(directory: Path) -> list[Path]:
    """Image files directly in ``directory``, sorted."""
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def judge_paths(detector: FaceDetector, paths: Sequence[Path]) -> dict[str, list[DetectorOutput]]:
    """Outputs per condition for every path (each image decoded once)."""
    out: dict[str, list[DetectorOutput]] = {name: [] for name in CONDITIONS}
    for path in paths:
        pixels = read_rgb(path)
        for name, transform in CONDITIONS.items():
            out[name].extend(detector.judge([pixels if transform is None else transform(pixels)]))
    return out


def summarise(real: Sequence[DetectorOutput], synthetic: Sequence[DetectorOutput], likely_ai: float,
              groups: Sequence[str] | None = None) -> dict[str, Any]:
    """AUROC, TPR@1%FPR, FPR and TPR at the ``likely_ai`` threshold, coverage and abstention reasons; and 95%
    intervals of AUROC and TPR@1%FPR (``auroc_95ci``, ``tpr_at_1pct_fpr_95ci``) resampling images, or whole ``groups``
    (one per output, real then synthetic: a source file, SD images of one prompt) where given."""
    from detectors.metrics import headline_intervals

    group_of = list(groups) if groups is not None else [f"image-{i}" for i in range(len(real) + len(synthetic))]
    labelled = [*((o, 0) for o in real), *((o, 1) for o in synthetic)]
    judged = [(o.raw_score, o.probability, y, g) for (o, y), g in zip(labelled, group_of, strict=True)
              if o.raw_score is not None]
    total = len(real) + len(synthetic)
    reasons = Counter(o.abstain_reason for o in [*real, *synthetic] if o.abstain_reason)
    if not judged:
        return {"n_real": len(real), "n_synthetic": len(synthetic), "coverage": 0.0, "abstained": dict(reasons)}
    raw = np.array([j[0] for j in judged], dtype=np.float64)
    prob = np.array([j[1] for j in judged], dtype=np.float64)
    labels = np.array([j[2] for j in judged])
    tpr, fpr = rates_at(prob, labels, likely_ai)
    ci = headline_intervals(raw, labels, np.array([j[3] for j in judged]))
    return {
        "n_real": len(real),
        "n_synthetic": len(synthetic),
        "coverage": len(judged) / total if total else 0.0,
        "auroc": auroc(raw, labels),
        "tpr_at_1pct_fpr": tpr_at_fpr(raw, labels, 0.01),
        "fpr_at_likely_ai": fpr,
        "tpr_at_likely_ai": tpr,
        "auroc_95ci": ci["auroc"],
        "tpr_at_1pct_fpr_95ci": ci["tpr_at_1pct_fpr"],
        "abstained": dict(reasons),
    }


def evaluate_lists(detector: FaceDetector, real: Sequence[Path], synthetic: Sequence[Path]) -> dict[str, Any]:
    """Summaries per condition for two lists of image files."""
    real_out, synth_out = judge_paths(detector, real), judge_paths(detector, synthetic)
    likely_ai = detector.manifest.thresholds.likely_ai
    result: dict[str, Any] = {"detector": detector.name, "version": detector.version, "likely_ai": likely_ai}
    for name in CONDITIONS:
        result[name] = summarise(real_out[name], synth_out[name], likely_ai)
    return result


def evaluate_dirs(detector: FaceDetector, real_dir: Path, synthetic_dir: Path) -> dict[str, Any]:
    """Evaluate a loaded detector on every image in ``real_dir`` and ``synthetic_dir``."""
    return evaluate_lists(detector, image_paths(real_dir), image_paths(synthetic_dir))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_evaluation(result: dict[str, Any]) -> str:
    """A plain-text table of ``evaluate_dirs`` output."""
    keys = ["n_real", "n_synthetic", "coverage", "auroc", "tpr_at_1pct_fpr", "fpr_at_likely_ai", "tpr_at_likely_ai"]
    lines = [f"{result.get('detector')} {result.get('version')}  likely_ai >= {_fmt(result.get('likely_ai'))}"]
    lines.append(f"{'metric':<18}" + "".join(f"{name:>16}" for name in CONDITIONS))
    for key in keys:
        lines.append(f"{key:<18}" + "".join(f"{_fmt(result[name].get(key, 'n/a')):>16}" for name in CONDITIONS))
    for key, title in (("auroc_95ci", "auroc 95% CI"), ("tpr_at_1pct_fpr_95ci", "tpr@1% 95% CI")):
        cells = [result[name].get(key) for name in CONDITIONS]
        lines.append(f"{title:<18}" + "".join(f"{(f'{c[0]:.3f}-{c[1]:.3f}' if c else 'n/a'):>16}" for c in cells))
    lines.append("(95% intervals: 1000 bootstrap draws of the judged images)")
    for name in CONDITIONS:
        lines.append(f"abstained ({name}): {result[name].get('abstained', {})}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--synthetic", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=Path("weights/face"))
    args = parser.parse_args(argv)
    detector = build_face_detector(args.weights)
    detector.load(Device())
    sys.stdout.write(format_evaluation(evaluate_dirs(detector, args.real, args.synthetic)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
