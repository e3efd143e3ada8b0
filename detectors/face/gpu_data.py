"""The carried data set for the one-off GPU run: aligned context crops of the train and validation splits.

Caveats first: research-only images (see ``../shared/datasets/faces/README.md``): the output goes to
the git-ignored ``.devdata/face_gpu/`` and must never be committed or shipped. Only the TRAIN and
VALIDATION splits of ``data.split_records`` (same seed, so the same files as the model card's
splits) are written; the test split stays here. Each crop is made by the inference code
(``FaceFinder`` on the staged image, the largest face, ``align_face``) at ``STORE_SIZE`` px and
``STORE_ZOOM`` (a wider field of view than the model's, for crop jitter), stored as JPEG quality
``STORE_QUALITY`` (baseline, 4:2:0) to fit the 24 MiB carry limit. Output: ``crops.bin`` (the JPEG
files concatenated) and ``index.json`` (one entry per crop: offset, length, split, source, label,
family, the face's eye gap in the source image in px, and whether inference would abstain).

Run: ``.venv/bin/python -m detectors.face.gpu_data --data ../shared/datasets/faces --out .devdata/face_gpu``.
"""

from __future__ import annotations

import argparse
import json
import logging
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.face.alignment import EYE_GAP, align_face, anchor_points
from detectors.face.data import Record, list_records, read_rgb, split_records
from detectors.face.finding import FaceFinder
from detectors.face.pipeline import choose_face

logger = logging.getLogger(__name__)

STORE_SIZE = 152
STORE_ZOOM = 0.6
STORE_QUALITY = 95
CARRIED_SPLITS = ("train", "validation")
INDEX_FILE = "index.json"
BLOB_FILE = "crops.bin"

_finder: FaceFinder | None = None


def _crop_record(record: Record) -> tuple[bytes, dict[str, Any]] | None:
    """(JPEG bytes, metadata) for one record's largest face, or None when no face is found."""
    global _finder
    if _finder is None:
        _finder = FaceFinder()
    pixels = read_rgb(record.path)
    faces = _finder.find(pixels)
    choice = choose_face(faces, 0.0)
    if choice.face is None:
        return None
    landmarks = choice.face.landmarks
    crop = align_face(pixels, landmarks, STORE_SIZE, zoom=STORE_ZOOM)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, STORE_QUALITY])
    if not ok:
        raise ValueError(f"JPEG encoding failed for {record.path}")
    anchors = anchor_points(landmarks)
    meta = {
        "name": f"{record.path.parent.name}/{record.path.name}",
        "source": record.source,
        "label": record.label,
        "family": record.family,
        "source_eye_gap_px": round(float(np.linalg.norm(anchors[1] - anchors[0])), 2),
        "source_hw": [int(pixels.shape[0]), int(pixels.shape[1])],
        "abstain_reason": choice.abstain_reason,
    }
    return buf.tobytes(), meta


def build_carried_set(data_dir: Path, out_dir: Path, seed: int = 0, workers: int = 2, limit: int = 0) -> dict[str, Any]:
    """Write ``crops.bin`` and ``index.json`` under ``out_dir``; returns the index's header.

    ``limit`` > 0 keeps only the first ``limit`` records per split (smoke tests).
    """
    splits = split_records(list_records(data_dir), seed)
    jobs = [(name, record) for name in CARRIED_SPLITS for record in (splits[name][:limit] if limit else splits[name])]
    with Pool(workers) as pool:
        results = pool.map(_crop_record, [record for _, record in jobs], chunksize=16)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, skipped, offset = [], [], 0
    with (out_dir / BLOB_FILE).open("wb") as blob:
        for (split, record), result in zip(jobs, results, strict=True):
            if result is None:
                skipped.append(f"{record.path.parent.name}/{record.path.name}")
                continue
            data, meta = result
            blob.write(data)
            entries.append({**meta, "split": split, "offset": offset, "length": len(data)})
            offset += len(data)
    header: dict[str, Any] = {
        "store_size": STORE_SIZE,
        "store_zoom": STORE_ZOOM,
        "store_eye_gap_px": EYE_GAP * STORE_ZOOM * STORE_SIZE,
        "store_format": f"JPEG quality {STORE_QUALITY}, baseline 4:2:0 (OpenCV), RGB crop",
        "alignment": "detectors.face.alignment.align_face (eyes/mouth template, EYE_GAP 0.30 x zoom x size)",
        "split_seed": seed,
        "splits": {name: sum(e["split"] == name for e in entries) for name in CARRIED_SPLITS},
        "skipped_no_face": skipped,
        "licence": "research/evaluation only (../shared/datasets/faces/README.md); never commit or ship",
    }
    (out_dir / INDEX_FILE).write_text(json.dumps({**header, "entries": entries}, separators=(",", ":")) + "\n", encoding="utf-8")
    return header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the carried crop set for the GPU face run")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(".devdata/face_gpu"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="records per split (0 = all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    header = build_carried_set(args.data, args.out, args.seed, args.workers, args.limit)
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    logger.info("wrote %s: %s, %.2f MiB", args.out, header["splits"], size / 2**20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
