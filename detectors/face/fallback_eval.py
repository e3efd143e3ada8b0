"""What the face finder's BlazeFace fallback (2.3.0) changes: coverage, the scores of the faces only it finds, and
the split metrics with and without it (development measurement; its output is in weights/face/MODEL_CARD.md).

Caveats first: in 2.3.0 the stacker, calibration and thresholds were fitted on faces dlib's HOG found (2.2.0's
training run); from 2.4.0 they are fitted with the fallback in the finder, so validation numbers here are in-sample
for the stacker. The false alarms on real photos among the fallback's faces are what to read first. Every image is
judged by the shipped detector with the fallback; those it judged through the fallback are judged again without it
(there, the up-sampled retry runs instead), so "without" is the same model with the fallback switched off.
Conditions as in ``bylinecheck eval faces``: as staged, and re-encoded at JPEG q60 at half size.

    .venv/bin/python -m detectors.face.fallback_eval [--splits validation test] \
        [--out weights/face/finder_fallback_eval.json]   # the model card reads that file
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.contract import DetectorOutput, Device
from detectors.face.data import list_records, read_rgb, split_records
from detectors.face.detector import FaceDetector, build_face_detector
from detectors.face.evaluation import CONDITIONS, summarise

PAIRS = {"ffhq/stylegan1": ("ffhq", "stylegan1"), "ffhq/sd21": ("ffhq", "sd21"),
         "ciplab/stylegan1": ("ciplab", "stylegan1"), "ciplab/sd21": ("ciplab", "sd21")}
FLAG = "face_found_by_blazeface"


def judge_split(detector: FaceDetector, records: Sequence[Any]) -> list[dict[str, Any]]:
    """Per record and condition: the output with the fallback, and without it where the fallback was used."""
    finder = detector._finder
    assert finder is not None
    fallback = finder.fallback
    rows = []
    for record in records:
        pixels = read_rgb(record.path)
        for condition, transform in CONDITIONS.items():
            image = pixels if transform is None else transform(pixels)
            with_fallback = detector.judge([image])[0]
            without = with_fallback
            if FLAG in with_fallback.flags:
                finder.fallback = None
                try:
                    without = detector.judge([image])[0]
                finally:
                    finder.fallback = fallback
            rows.append({"record": record, "condition": condition, "with": with_fallback, "without": without})
    return rows


def _summary(rows: list[dict[str, Any]], key: str, likely_ai: float) -> dict[str, Any]:
    real: list[DetectorOutput] = [r[key] for r in rows if r["record"].label == 0]
    synthetic: list[DetectorOutput] = [r[key] for r in rows if r["record"].label == 1]
    return summarise(real, synthetic, likely_ai)


def report(rows: list[dict[str, Any]], likely_ai: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for condition in CONDITIONS:
        mine = [r for r in rows if r["condition"] == condition]
        groups = {"overall": mine, **{name: [r for r in mine if r["record"].source in pair]
                                      for name, pair in PAIRS.items()}}
        out[condition] = {name: {key: _summary(group, key, likely_ai) for key in ("without", "with")}
                          for name, group in groups.items()}
        out[condition]["fallback_faces"] = [
            {"file": r["record"].path.name, "source": r["record"].source, "label": r["record"].label,
             "probability": r["with"].probability, "verdict": r["with"].verdict.value,
             "without": r["without"].verdict.value if r["without"].abstain_reason is None
             else f"abstain:{r['without'].abstain_reason}"}
            for r in mine if FLAG in r["with"].flags]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--weights", type=Path, default=Path("weights/face"))
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--splits", nargs="+", default=["validation", "test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    detector = build_face_detector(args.weights)
    detector.load(Device(intra_op_threads=1))
    splits = split_records(list_records(args.data), args.seed)
    result = {"version": detector.version, "likely_ai": detector.manifest.thresholds.likely_ai,
              **{split: report(judge_split(detector, splits[split]), detector.manifest.thresholds.likely_ai)
                 for split in args.splits}}
    text = json.dumps(result, indent=2, default=str)
    sys.stdout.write(text + "\n")
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
