"""Headshot-reuse matching rates: same face after resize + JPEG + small crop vs different people.

For each of N faces from ../shared/datasets/faces (real and synthetic), an altered copy is made
(resize to 40-80%, JPEG q70, crop 3-8% off two sides). "Same" pairs are (original, altered copy);
"different" pairs are originals of two different faces. Prints, for the dlib 128-d embedding
distance and the 64-bit pHash distance, the match rate on same pairs and the false-match rate on
different pairs at the service's thresholds (settings: reuse_embedding_max_distance,
reuse_phash_max_distance), and at a few others. Every image goes through the service's own path: the JPEG
bytes are decoded by ``service.inputs.decode_image`` (reduced JPEG decode when ``--min-side`` > 0, as the
service does by default) and the shipped face detector's ``preprocess`` computes the embedding. ``--side``
first upscales each original to a ``side`` x ``side`` JPEG q90 (the benchmark's headshot size; reduced
decoding only applies to JPEGs at least twice ``--min-side``).

    .venv/bin/python -m benchmarks.reuse_rates --n 120 [--side 1024] [--min-side 448]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.workload import to_headshot
from detectors.contract import Device, ImageItem
from detectors.face.detector import FaceDetector, build_face_detector
from detectors.provenance import hash_distance, perceptual_hash
from service.config import Settings
from service.inputs import decode_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces"


def altered(image: Image.Image, rng: random.Random) -> bytes:
    w, h = image.size
    left, top = int(w * rng.uniform(0.03, 0.08)), int(h * rng.uniform(0.03, 0.08))
    image = image.convert("RGB").crop((left, top, w, h))
    scale = rng.uniform(0.4, 0.8)
    image = image.resize((max(64, int(image.width * scale)), max(64, int(image.height * scale))))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def describe(detector: FaceDetector, data: bytes, settings: Settings, min_side: int) -> tuple[np.ndarray | None, str]:
    """(embedding or None, pHash) of one upload, exactly as the service computes them."""
    image = decode_image(data, settings, min_side)
    prepared = detector.preprocess(ImageItem(pixels=image.pixels, original=image.original,
                                             submitted_size=image.submitted_size))
    embedding = None if prepared.embedding is None else np.asarray(prepared.embedding)
    return embedding, perceptual_hash(image.pixels)


def rates(same: list[float], diff: list[float], threshold: float) -> dict[str, float]:
    return {"threshold": threshold, "same_match_rate": float(np.mean(np.asarray(same) <= threshold)),
            "different_false_match_rate": float(np.mean(np.asarray(diff) <= threshold))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--side", type=int, default=0, help="upscale originals to side x side JPEG q90 first")
    parser.add_argument("--min-side", type=int, default=None, help="reduced-decode floor (default: the setting)")
    args = parser.parse_args()
    settings = Settings()
    min_side = settings.headshot_decode_min_side if args.min_side is None else args.min_side
    rng = random.Random(0)
    files = [p for folder in ("real", "ai", "real_ciplab", "diffusion_sd21") for p in sorted((SHARED / folder).glob("*.jp*g"))]
    files = rng.sample(files, args.n)
    detector = build_face_detector(settings.weights_dir / "face", embed_faces=True)
    detector.load(Device())
    originals, copies = [], []
    for path in files:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        data = to_headshot(image, side=args.side) if args.side else path.read_bytes()
        if args.side:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        originals.append(describe(detector, data, settings, min_side))
        copies.append(describe(detector, altered(image, rng), settings, min_side))
    emb_same = [float(np.linalg.norm(a[0] - b[0])) for a, b in zip(originals, copies, strict=True)
                if a[0] is not None and b[0] is not None]
    hash_same = [hash_distance(a[1], b[1]) for a, b in zip(originals, copies, strict=True)]
    pairs = list(itertools.combinations(range(len(originals)), 2))
    emb_diff = [float(np.linalg.norm(originals[i][0] - originals[j][0])) for i, j in pairs
                if originals[i][0] is not None and originals[j][0] is not None]
    hash_diff = [hash_distance(originals[i][1], originals[j][1]) for i, j in pairs]
    result = {
        "faces": args.n,
        "side": args.side or "as staged",
        "min_side": min_side,
        "faces_found_original": sum(o[0] is not None for o in originals),
        "faces_found_altered": sum(c[0] is not None for c in copies),
        "same_pairs_with_embeddings": len(emb_same),
        "different_pairs_with_embeddings": len(emb_diff),
        "embedding": [rates(emb_same, emb_diff, t) for t in (0.35, settings.reuse_embedding_max_distance, 0.5, 0.6)],
        "phash": [rates(hash_same, hash_diff, t) for t in (6, settings.reuse_phash_max_distance, 14)],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
