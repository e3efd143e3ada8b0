"""Prepare the GPU check's inputs here (CPU): preprocessed text and face batches, pickled.

Face finding (dlib) and text featurisation run on the CPU in production too; the GPU check measures
the forward passes. Writes ``.devdata/gpu_inputs.pkl`` (ignored by git; carried to the GPU machine).

    .venv/bin/python -m benchmarks.gpu_inputs --n 256
"""

from __future__ import annotations

import argparse
import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_checks import SHARED, articles
from detectors.contract import Device, ImageItem, TextItem
from detectors.face import build_face_detector
from detectors.text import build_text_detector

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / ".devdata" / "gpu_inputs.pkl")
    args = parser.parse_args()
    text = build_text_detector(REPO / "weights" / "text")
    text.load(Device())
    texts = [text.preprocess(TextItem(t)) for t in articles(min(args.n, 64))]
    face = build_face_detector(REPO / "weights" / "face")
    face.embed_faces = False
    face.load(Device())
    faces = []
    for path in sorted((SHARED / "faces" / "real_ciplab").glob("*.jpg"))[: min(args.n, 64)]:
        buf = io.BytesIO()
        Image.open(path).convert("RGB").resize((1024, 1024)).save(buf, "JPEG", quality=90)
        pixels = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        prepared = face.preprocess(ImageItem(pixels=pixels))
        if prepared.inputs is not None:
            faces.append(prepared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(pickle.dumps({"text": texts, "face": faces}))
    print(f"wrote {len(texts)} texts and {len(faces)} faces to {args.out}")


if __name__ == "__main__":
    main()
