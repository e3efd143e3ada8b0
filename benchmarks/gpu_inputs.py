"""Prepare the GPU check's inputs here (CPU): preprocessed text and face batches, pickled.

Face finding (dlib) and text featurisation run on the CPU in production too; the GPU check measures
the forward passes. Writes ``.devdata/gpu_inputs.pkl`` (ignored by git; carried to the GPU machine).

    .venv/bin/python -m benchmarks.gpu_inputs --n 256
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.gpu_check import face_cnn_path
from benchmarks.workload import SHARED, articles
from detectors.contract import Device, TextItem
from detectors.text.detector import build_text_detector

REPO = Path(__file__).resolve().parents[1]


def face_input_size(face_weights: Path) -> int:
    import onnx

    dims = onnx.load(str(face_cnn_path(face_weights))).graph.input[0].type.tensor_type.shape.dim
    return int(dims[2].dim_value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / ".devdata" / "gpu_inputs.pkl")
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    args = parser.parse_args()
    # The n-gram model's forward pass (the batched ONNX call); the SmolLM2 stage has its own check,
    # benchmarks/gpu_lm_check.py, and runs in preprocess, so it is left out of these pickled items.
    text = build_text_detector(args.weights / "text", lm_mode="off")
    text.load(Device())
    texts = [text.preprocess(TextItem(t)) for t in articles(min(args.n, 64))]
    # Face crops as the CNN sees them (N, 3, 96, 96); the CNN's cost does not depend on alignment, so
    # centre crops of 1024 px headshots resized to the model's input stand in for dlib-aligned ones.
    size = int(face_input_size(args.weights / "face"))
    crops = []
    for path in sorted((SHARED / "faces" / "real_ciplab").glob("*.jpg"))[: min(args.n, 64)]:
        image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        crops.append(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    faces = np.stack(crops)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(pickle.dumps({"text": texts, "face_crops": faces}))
    print(f"wrote {len(texts)} texts and {len(faces)} face crops to {args.out}")


if __name__ == "__main__":
    main()
