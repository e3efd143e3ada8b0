"""From what face size does BlazeFace find a face? The measurement behind the face finder's trust bar when BlazeFace is
asked first (face 2.4.0, ``FaceFinder(first_trust_side=...)``). A benchmark: it asserts nothing.

Caveats first: faces are made, not sampled: a seeded draw of shared photos per source, each scaled so that dlib's
box is ``W`` px wide and pasted on a 1024 px canvas of smooth noise (``benchmarks.small_faces.pasted``, JPEG q90),
decoded as the service decodes (512 px). Found = a BlazeFace box, mapped to HOG's geometry (``hog_box``), with
IoU >= 0.3 against the pasted face's dlib box. The trust bar must keep any second face of half the area of a trusted
face (0.71 of its side) in the range where BlazeFace finds nearly all faces.

    .venv/bin/python -m benchmarks.finder_sizes [--per-source 25] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.small_faces import CANVAS, iou, pasted_faces
from detectors.contract import Box
from detectors.face.blazeface import BlazeFace, hog_box
from detectors.face.finding import FaceFinder

WIDTHS = (64, 96, 128, 160, 192, 256, 320)


def survey(data: Path, model: Path, per_source: int, widths: tuple[int, ...], seed: int = 7) -> dict[str, Any]:
    blaze = BlazeFace()
    blaze.load(model)
    found: dict[int, list[float]] = {w: [] for w in widths}
    for width, decoded, scale, truth in pasted_faces(data, per_source, widths, FaceFinder(), seed):
        boxes = []
        for detection in blaze.detect(decoded):
            cx, cy, side = (v * scale for v in hog_box(detection.box))
            boxes.append(Box(x=round(cx - side / 2), y=round(cy - side / 2), w=round(side), h=round(side)))
        found[width].append(float(any(iou(b, truth) >= 0.3 for b in boxes)))
    return {"seed": seed, "canvas_px": CANVAS, "per_source": per_source,
            "found": {str(w): {"share_of_side": w / CANVAS, "n": len(v), "found": statistics.fmean(v) if v else None}
                      for w, v in found.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--model", type=Path, default=Path("weights/face/finder_fallback.onnx"))
    parser.add_argument("--per-source", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = survey(args.data, args.model, args.per_source, WIDTHS)
    print(f"{'width px':>8} {'of side':>8} {'n':>4} {'found':>6}")
    for width, row in result["found"].items():
        share = row["found"]
        print(f"{width:>8} {row['share_of_side']:>8.3f} {row['n']:>4} {share if share is None else round(share, 3):>6}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
