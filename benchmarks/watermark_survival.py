"""Does Stable Diffusion's DWT-DCT watermark survive JPEG? Match rate by JPEG quality and chroma subsampling.

Caveats first: the images are watermarked with the reference encoder (``invisible-watermark``'s ``maxDct.py``,
loaded without its torch-importing ``__init__``; dev extra) on the photo-like test texture of
``tests/test_provenance_watermark.py`` and on shared face photos upscaled to 768 px, then saved as PNG
(lossless) and as JPEG at several qualities, 4:4:4 and 4:2:0, and read back with ``read_watermark``. The
result sets :data:`detectors.provenance.reader.MIN_WATERMARK_JPEG_QUALITY`: below it, no match survived.

    .venv/bin/python -m benchmarks.watermark_survival [--faces 12] [--out benchmarks/results/watermark_survival.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
from PIL import Image

from benchmarks.workload import source_photos
from detectors.provenance.reader import jpeg_quality
from detectors.provenance.watermark import SDXL_MESSAGE, read_watermark

QUALITIES = (70, 80, 85, 90, 92, 95, 97, 100)
PAYLOADS: dict[str, list[int]] = {
    "StableDiffusionV1": [int(b) for b in np.unpackbits(np.frombuffer(b"StableDiffusionV1", dtype=np.uint8))],
    "SDV2": [int(b) for b in np.unpackbits(np.frombuffer(b"SDV2", dtype=np.uint8))],
    "SDXL": [int(b) for b in bin(SDXL_MESSAGE)[2:]],
}


def max_dct() -> ModuleType:
    package = importlib.util.find_spec("imwatermark")
    if package is None or package.origin is None:
        raise SystemExit("invisible-watermark is not installed (dev extra)")
    spec = importlib.util.spec_from_file_location("imwatermark_maxdct", Path(package.origin).parent / "maxDct.py")
    if spec is None or spec.loader is None:
        raise SystemExit("imwatermark/maxDct.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def textured(seed: int, size: int = 512) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, size)
    base = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), np.full((size, size), 120.0)], -1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def watermarked(module: ModuleType, rgb: np.ndarray, bits: list[int]) -> np.ndarray:
    encoder = module.EmbedMaxDct(bits, wmLen=len(bits), scales=[0, 36, 36], block=4)
    bgr = encoder.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return np.asarray(cv2.cvtColor(np.clip(bgr, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB))


def encoded(rgb: np.ndarray, quality: int | None, subsampling: int = 0) -> bytes:
    buf = io.BytesIO()
    if quality is None:
        Image.fromarray(rgb).save(buf, "PNG")
    else:
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def survival(n_faces: int) -> dict[str, Any]:
    module = max_dct()
    sources = [textured(seed) for seed in range(4)]
    for path in source_photos(("real_ciplab", "real"))[:: 97][:n_faces]:
        with Image.open(path) as image:
            sources.append(np.asarray(image.convert("RGB").resize((768, 768), Image.Resampling.BICUBIC)))
    conditions: dict[str, dict[str, Any]] = {}
    for bits in PAYLOADS.values():
        marked = [watermarked(module, rgb, bits) for rgb in sources]
        for quality in (None, *QUALITIES):
            for subsampling in (0, 2) if quality is not None else (0,):
                key = "png" if quality is None else f"jpeg_q{quality}_{'444' if subsampling == 0 else '420'}"
                entry = conditions.setdefault(key, {"matched": 0, "images": 0, "estimated_quality": []})
                for rgb in marked:
                    data = encoded(rgb, quality, subsampling)
                    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                    entry["matched"] += int(bool(read_watermark(decoded)))
                    entry["images"] += 1
                    if quality is not None:
                        entry["estimated_quality"].append(jpeg_quality(data))
    for entry in conditions.values():
        qualities = entry.pop("estimated_quality")
        entry["match_rate"] = entry["matched"] / entry["images"]
        if qualities:
            entry["estimated_quality"] = [min(qualities), max(qualities)]
    return {"sources": len(sources), "patterns": list(PAYLOADS), "conditions": conditions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = survival(args.faces)
    for key, entry in result["conditions"].items():
        print(f"{key:<18} matched {entry['matched']:>3}/{entry['images']:<3} estimated quality "
              f"{entry.get('estimated_quality', '-')}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
