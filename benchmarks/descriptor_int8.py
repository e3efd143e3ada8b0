"""Probe: ONNX Runtime static int8 (QDQ) for dlib's face descriptor net: CPU per chip and descriptor drift.

Caveats first: calibrates on the face chips of the first 40 benchmark headshots with a face and measures on the
rest; one thread; the fp32 model is the one the service builds from dlib's ``.dat`` (``NumpyFaceNet.onnx_bytes``). A benchmark,
not a test. Writes its models under a temporary folder.

    .venv/bin/python -m benchmarks.descriptor_int8 [--headshots 120]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.workload import distinct_headshots
from detectors.face.embedding import NumpyFaceNet
from detectors.face.finding import EMBEDDING_FILE, FaceEmbedder, FaceFinder, dlib_model_path


def face_chips(headshots: int) -> list[np.ndarray]:
    finder, embedder = FaceFinder(), FaceEmbedder()
    chips = []
    for upload in distinct_headshots(headshots):
        pixels = np.asarray(Image.open(io.BytesIO(upload)).convert("RGB"))
        faces = finder.find(pixels)
        if faces:
            chips.append(embedder.chip(pixels, faces[0].landmarks))
    return chips


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--headshots", type=int, default=120)
    args = parser.parse_args(argv)
    reference = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    chips = face_chips(args.headshots)
    calibration, held_out = chips[:40], chips[40:]

    class Chips(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._chips = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            chip = next(self._chips, None)
            return None if chip is None else {"chip": chip[None]}

    folder = Path(tempfile.mkdtemp(prefix="descriptor-int8-"))
    fp32, prepared = folder / "fp32.onnx", folder / "prepared.onnx"
    fp32.write_bytes(reference.onnx_bytes())
    quant_pre_process(str(fp32), str(prepared))
    models = {"fp32": fp32}
    for name, per_channel in (("int8 per-channel", True), ("int8 per-tensor", False)):
        models[name] = folder / f"{name.replace(' ', '_')}.onnx"
        quantize_static(str(prepared), str(models[name]), Chips(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
    print(f"{len(chips)} chips: {len(calibration)} for calibration, {len(held_out)} measured")
    base = None
    for name, path in models.items():
        session = _session(path)
        outputs = np.stack([session.run(["descriptor"], {"chip": c[None]})[0][0] for c in held_out])
        base = outputs if base is None else base
        cpu = []
        for _ in range(3):
            for chip in held_out[:40]:
                started = time.thread_time()
                session.run(["descriptor"], {"chip": chip[None]})
                cpu.append(time.thread_time() - started)
        drift = np.linalg.norm(outputs - base, axis=1)
        print(f"{name:>17}: {1000 * statistics.median(cpu):5.2f} ms per chip; Euclidean distance to fp32 median "
              f"{np.median(drift):.4f}, max {drift.max():.4f}")


if __name__ == "__main__":
    main()
