"""The standard benchmark workload: 800-word articles and *distinct* 1024x1024 JPEG headshots.

Caveats first: the headshots are made in memory from ../shared/datasets/faces (research-use licences: never
write them into the repository). Each request gets its own headshot (a different source photo, or the same
photo mirrored and shifted once the folder runs out), so a content-hash cache of headshot analyses never hits
in a cold run; ``warm`` runs repeat one headshot on purpose and must be labelled as such.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
FACE_FOLDERS = ("real_ciplab",)


def articles(n: int, words: int = 800) -> list[str]:
    """``n`` articles of ``words`` words, made by joining consecutive human Reuters stories."""
    pool: list[str] = []
    with (SHARED / "text" / "reuters21578_news.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            pool.extend(json.loads(line)["text"].split())
            if len(pool) > n * words:
                break
    return [" ".join(pool[i * words:(i + 1) * words]) for i in range(n)]


def source_photos(folders: tuple[str, ...] = FACE_FOLDERS) -> list[Path]:
    """The shared face photos the headshots are made from, sorted."""
    return [p for folder in folders for p in sorted((SHARED / "faces" / folder).glob("*.jpg"))]


def to_headshot(image: Image.Image, variant: int = 0, side: int = 1024, quality: int = 90) -> bytes:
    """``image`` upscaled to ``side`` x ``side`` JPEG; ``variant`` > 0 mirrors and shifts it (a new file)."""
    image = image.convert("RGB")
    if variant:
        image = ImageOps.mirror(image) if variant % 2 else image
        pad = 4 * variant
        image = image.crop((pad, pad, image.width - pad // 2, image.height - pad // 2))
    buf = io.BytesIO()
    image.resize((side, side), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def distinct_headshots(n: int, side: int = 1024, folders: tuple[str, ...] = FACE_FOLDERS) -> list[bytes]:
    """``n`` headshot JPEGs with pairwise different bytes (so sha256-keyed caches miss)."""
    paths = source_photos(folders)
    if not paths:
        return [to_headshot(Image.new("RGB", (600, 600), (128, 100 + i % 100, 90)), 0, side) for i in range(n)]
    out = []
    for i in range(n):
        with Image.open(paths[i % len(paths)]) as image:
            out.append(to_headshot(image, i // len(paths), side))
    return out
