"""What the face finder's last resort reaches, and at what cost: the up-sampled HOG retry against cascade proposals
confirmed by HOG. A benchmark, not a test: it asserts nothing.

Caveats first: the "small faces" are made here, not found in the wild: a shared face photo is scaled so that
dlib's box on it is ``W`` px wide and pasted at a seeded random place on a 1024 px canvas of smooth coloured noise
(no other face on it), saved as JPEG q90 and decoded as the service decodes an upload (reduced to 512 px). A face
counts as found when a returned box overlaps the pasted box with IoU >= 0.3. ``retry`` is ``FaceFinder.find`` as
shipped; ``none`` and ``cascade`` reproduce its steps by hand with the last resort replaced (nothing; OpenCV Haar
proposals on the working copy, each confirmed by the same HOG detector on a window scaled so that the proposal is
120 px wide). CPU is the process's (OpenCV's cascade runs on its own threads), on an otherwise idle machine.

    .venv/bin/python -m benchmarks.small_faces [--per-source 40] [--widths 96 128 176 256] [--headshots 60]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from benchmarks.workload import distinct_headshots
from detectors.contract import Box
from detectors.face.data import list_records, read_rgb
from detectors.face.finding import FaceFinder, FoundFace, gray_copy
from service.config import Settings
from service.inputs import decode_image

CANVAS = 1024
VARIANTS = ("retry", "none", "cascade")
CASCADE_MIN_FACE = 30  # px in the 448 px copy: the up-sampled retry reaches ~40 px faces there
CASCADE_FACE_PX = 120  # a proposal is scaled to this width for the HOG confirmation (dlib's window is ~80 px)
CASCADE_WINDOW = 1.8  # the confirmation window's side, in proposal widths
CASCADE_MAX_PROPOSALS = 6


def iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a.w * a.h + b.w * b.h - inter)


def canvas(rng: np.random.Generator) -> np.ndarray:
    """Smooth coloured noise: texture without faces."""
    coarse = rng.integers(40, 220, size=(8, 8, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 6, size=smooth.shape)
    return np.asarray(np.clip(smooth + grain, 0, 255), dtype=np.uint8)


def pasted(pixels: np.ndarray, box: Box, width: int, rng: np.random.Generator) -> tuple[bytes, Box] | None:
    """``pixels`` scaled so that ``box`` is ``width`` px wide, pasted on a canvas; JPEG bytes and the face's box."""
    scale = width / box.w
    h, w = pixels.shape[:2]
    new_w, new_h = round(w * scale), round(h * scale)
    if new_w > CANVAS or new_h > CANVAS:
        return None
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    small = cv2.resize(pixels, (new_w, new_h), interpolation=interp)
    out = canvas(rng)
    x, y = int(rng.integers(0, CANVAS - new_w + 1)), int(rng.integers(0, CANVAS - new_h + 1))
    out[y:y + new_h, x:x + new_w] = small
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "JPEG", quality=90)
    face = Box(x=x + round(box.x * scale), y=y + round(box.y * scale), w=round(box.w * scale), h=round(box.h * scale))
    return buf.getvalue(), face


class Variants:
    """The shipped finder, and the same steps with the up-sampled retry replaced (see the module docstring)."""

    def __init__(self) -> None:
        import dlib

        self.finder = FaceFinder()
        self.finder.load()
        self.detector = self.finder._borrow()
        self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))  # type: ignore[attr-defined]
        self.dlib = dlib

    def find(self, variant: str, pixels: np.ndarray, min_face_pixels: float) -> list[FoundFace]:
        if variant == "retry":
            return self.finder.find(pixels, min_face_pixels)
        gray, scale = gray_copy(pixels, self.finder.work_side)
        found = self.finder._coarse_pass(self.detector, gray, min_face_pixels * scale * scale)
        if found is None:
            rects, scores, _ = self.detector.run(gray, 0, -0.2)
            found = list(zip(rects, (float(s) for s in scores), strict=True))
            if not found and variant == "cascade":
                found = self._confirmed_proposals(gray)
        return [self.finder._face(gray, rect, score, scale) for rect, score in found]

    def _confirmed_proposals(self, gray: np.ndarray) -> list[tuple[Any, float]]:
        proposals = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3,
                                                  minSize=(CASCADE_MIN_FACE, CASCADE_MIN_FACE))
        height, width = gray.shape[:2]
        found: list[tuple[Any, float]] = []
        for x, y, w, _ in sorted((tuple(p) for p in proposals), key=lambda p: -p[2])[:CASCADE_MAX_PROPOSALS]:
            half, factor = CASCADE_WINDOW * w / 2, CASCADE_FACE_PX / w
            x0, y0 = max(0, round(x + w / 2 - half)), max(0, round(y + w / 2 - half))
            x1, y1 = min(width, round(x + w / 2 + half)), min(height, round(y + w / 2 + half))
            window = cv2.resize(gray[y0:y1, x0:x1], (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))),
                                interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
            rects, scores, _ = self.detector.run(window, 0, -0.2)
            for rect, score in zip(rects, scores, strict=True):
                found.append((self.dlib.rectangle(round(x0 + rect.left() / factor), round(y0 + rect.top() / factor),
                                                  round(x0 + rect.right() / factor), round(y0 + rect.bottom() / factor)),
                              float(score)))
        return found


def run_variant(variants: Variants, name: str, pixels: np.ndarray, scale: float) -> tuple[list[Box], float]:
    started = time.process_time()
    faces = variants.find(name, pixels, 1024.0 / (scale * scale))
    spent = time.process_time() - started
    return [Box(x=round(f.box.x * scale), y=round(f.box.y * scale), w=round(f.box.w * scale), h=round(f.box.h * scale))
            for f in faces], spent


def pasted_faces(data: Path, per_source: int, widths: Sequence[int], finder: FaceFinder,
                 seed: int = 7) -> Iterator[tuple[int, np.ndarray, float, Box]]:
    """A seeded draw of ``per_source`` shared photos per source, each face (``finder``'s largest box) pasted at each
    width: (width, the service's decode of the JPEG, its scale to canvas pixels, the face's box on the canvas)."""
    settings = Settings()
    rng = np.random.default_rng(seed)
    by_source: dict[str, list[Any]] = {}
    for record in list_records(data):
        by_source.setdefault(record.source, []).append(record)
    picks = [r for recs in by_source.values() for r in random.Random(seed).sample(recs, min(per_source, len(recs)))]
    for record in picks:
        pixels = read_rgb(record.path)
        native = finder.find(pixels, 0.0)
        if not native:
            continue
        for width in widths:
            sample = pasted(pixels, native[0].box, width, rng)
            if sample is None:
                continue
            data_bytes, truth = sample
            decoded = decode_image(data_bytes, settings, settings.headshot_decode_min_side)
            yield width, decoded.pixels, CANVAS / decoded.pixels.shape[1], truth


def survey(data: Path, per_source: int, widths: list[int], headshots: int, seed: int = 7) -> dict[str, Any]:
    settings = Settings()
    variants = Variants()
    small: dict[str, dict[int, dict[str, list[float]]]] = {n: {w: {"found": [], "cpu": []} for w in widths} for n in VARIANTS}
    made = 0
    for width, decoded, scale, truth in pasted_faces(data, per_source, widths, variants.finder, seed):
        made += 1
        for name in VARIANTS:
            boxes, spent = run_variant(variants, name, decoded, scale)
            small[name][width]["found"].append(float(any(iou(b, truth) >= 0.3 for b in boxes)))
            small[name][width]["cpu"].append(spent)
    bench: dict[str, dict[str, float]] = {}
    uploads = [decode_image(d, settings, settings.headshot_decode_min_side) for d in distinct_headshots(headshots)]
    references = [run_variant(variants, "retry", u.pixels, u.width / u.pixels.shape[1])[0] for u in uploads]
    for name in VARIANTS:
        cpu, found, same = [], 0, 0
        for upload, reference in zip(uploads, references, strict=True):
            boxes, spent = run_variant(variants, name, upload.pixels, upload.width / upload.pixels.shape[1])
            same += int(boxes == reference)
            cpu.append(spent)
            found += bool(boxes)
        bench[name] = {"cpu_ms_mean": 1000 * statistics.fmean(cpu), "cpu_ms_max": 1000 * max(cpu),
                       "found": found, "same_boxes_as_retry": same, "images": len(uploads)}
    summary = {name: {str(w): {"found": statistics.fmean(v["found"]) if v["found"] else None, "n": len(v["found"]),
                               "cpu_ms_mean": 1000 * statistics.fmean(v["cpu"]) if v["cpu"] else None}
                      for w, v in per_width.items()} for name, per_width in small.items()}
    return {"seed": seed, "pasted_images": made, "small_faces": summary, "benchmark_headshots": bench}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--per-source", type=int, default=40)
    parser.add_argument("--widths", type=int, nargs="+", default=[96, 128, 176, 256])
    parser.add_argument("--headshots", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = survey(args.data, args.per_source, args.widths, args.headshots)
    for name, per_width in result["small_faces"].items():
        cells = "  ".join(f"{w}px {v['found']:.2f} ({v['cpu_ms_mean']:.0f} ms)" for w, v in per_width.items() if v["n"])
        print(f"{name:<10} pasted faces found: {cells}")
    for name, row in result["benchmark_headshots"].items():
        print(f"{name:<10} benchmark headshots: {row}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
