"""Headshot-reuse matching rates: same face after resize + JPEG + small crop vs different people.

For each of N faces from ../shared/datasets/faces (real and synthetic), an altered copy is made
(resize to 40-80%, JPEG q70, crop 3-8% off two sides). "Same" pairs are (original, altered copy);
"different" pairs are originals of two different faces. Prints, for the dlib 128-d embedding
distance and the 64-bit pHash distance, the match rate on same pairs and the false-match rate on
different pairs at the service's thresholds (settings: reuse_embedding_max_distance,
reuse_phash_max_distance), and at a few others.

    .venv/bin/python -m benchmarks.reuse_rates --n 120
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

from detectors.face.finding import FaceFinder, face_embedding
from detectors.provenance import hash_distance, perceptual_hash
from service.config import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces"


def altered(image: Image.Image, rng: random.Random) -> Image.Image:
    w, h = image.size
    left, top = int(w * rng.uniform(0.03, 0.08)), int(h * rng.uniform(0.03, 0.08))
    image = image.crop((left, top, w, h))
    scale = rng.uniform(0.4, 0.8)
    image = image.resize((max(64, int(image.width * scale)), max(64, int(image.height * scale))))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=70)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def describe(finder: FaceFinder, image: Image.Image) -> tuple[np.ndarray | None, str]:
    pixels = np.asarray(image)
    faces = finder.find(pixels)
    phash = perceptual_hash(pixels)
    if not faces:
        return None, phash
    face = max(faces, key=lambda f: f.box.w * f.box.h)
    return np.asarray(face_embedding(pixels, face.landmarks)), phash


def rates(same: list[float], diff: list[float], threshold: float) -> dict[str, float]:
    return {"threshold": threshold, "same_match_rate": float(np.mean(np.asarray(same) <= threshold)),
            "different_false_match_rate": float(np.mean(np.asarray(diff) <= threshold))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(0)
    files = [p for folder in ("real", "ai", "real_ciplab", "diffusion_sd21") for p in sorted((SHARED / folder).glob("*.jp*g"))]
    files = rng.sample(files, args.n)
    finder = FaceFinder()
    finder.load()
    originals, copies = [], []
    for path in files:
        image = Image.open(path).convert("RGB")
        originals.append(describe(finder, image))
        copies.append(describe(finder, altered(image, rng)))
    emb_same = [float(np.linalg.norm(a[0] - b[0])) for a, b in zip(originals, copies, strict=True)
                if a[0] is not None and b[0] is not None]
    hash_same = [hash_distance(a[1], b[1]) for a, b in zip(originals, copies, strict=True)]
    pairs = list(itertools.combinations(range(len(originals)), 2))
    emb_diff = [float(np.linalg.norm(originals[i][0] - originals[j][0])) for i, j in pairs
                if originals[i][0] is not None and originals[j][0] is not None]
    hash_diff = [hash_distance(originals[i][1], originals[j][1]) for i, j in pairs]
    settings = Settings()
    result = {
        "faces": args.n,
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
