"""``onnx``: any ONNX classifier with a small declared input/output spec; no torch at inference.

Caveats first: the spec (``io``, from the folder's manifest ``extra.io`` and/or the settings) says
everything the runtime cannot guess, and nothing else is assumed::

    {"model": "model.onnx", "output": "logits", "ai_index": 1,
     # text: a tokenizers JSON file and the graph's input names
     "tokenizer": "tokenizer.json", "pad_id": 0,
     "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
     # image: the graph's input name and the preprocessing (resize, rescale, normalise, NCHW)
     "pixel_input": "pixel_values",
     "image": {"size": [224, 224], "rescale": 0.00392156862745098, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}

The output is either class logits (the AI logit is taken as for the transformers kinds) or a single
logit column. Text models are windowed as in :mod:`detectors.custom.textclass`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors.contract import DetectorError, DetectorOutput, Device, ImageItem, Modality, TextItem, WeightsMissingError
from detectors.custom.calibrated import CalibrationState
from detectors.custom.crops import Cropper
from detectors.custom.hf_image import IMAGE_TOO_SMALL, PreparedImage, batch_scores, image_output, min_pixels
from detectors.custom.spec import CustomSpec, import_tokenizers
from detectors.custom.textclass import DEFAULT_MIN_TOKENS, PreparedRows, ai_logits, padded, prepare_rows, split_rows, text_output
from detectors.runtime import onnx_session


class JsonTokenEncoder:
    """A ``tokenizers`` JSON file as a :class:`~detectors.custom.textclass.TokenEncoder`."""

    def __init__(self, tokenizer: Any, pad_id: int) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pad_id = pad_id

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def rows(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        self.tokenizer.enable_truncation(max_length)
        try:
            return [list(e.ids) for e in self.tokenizer.encode_batch(list(texts))]
        finally:
            self.tokenizer.no_truncation()


def _image_values(pixels: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    from PIL import Image

    height, width = (int(v) for v in spec["size"])
    resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    values = np.asarray(resized, dtype=np.float32) * float(spec.get("rescale", 1 / 255))
    mean = np.asarray(spec.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    std = np.asarray(spec.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
    return np.ascontiguousarray(((values - mean) / std).transpose(2, 0, 1))


class OnnxDetector:
    """Detector for text or images from an ONNX graph and its declared ``io`` spec."""

    def __init__(self, spec: CustomSpec, state: CalibrationState) -> None:
        self.spec = spec
        self.state = state
        self.name = spec.name
        self.version = state.version
        self.max_batch_size = spec.max_batch_size
        self.modality = spec.modality
        self.io: dict[str, Any] = {**dict(state.extra.get("io", {})), **dict(spec.io)}
        self.model_path = spec.path / str(self.io.get("model", "model.onnx"))
        if not self.model_path.is_file():
            raise WeightsMissingError(f"{self.name}: ONNX model {self.model_path} is missing")
        self.ai_index = int(self.io.get("ai_index", 1))
        self.output_name = str(self.io.get("output", "logits"))
        self.cropper = Cropper(spec.crop)
        self.min_evidence = min_pixels(spec, state) if self.modality is Modality.IMAGE else (
            state.min_evidence if state.min_evidence is not None else
            spec.min_evidence if spec.min_evidence is not None else DEFAULT_MIN_TOKENS)
        self._session: Any = None
        self._encoder: JsonTokenEncoder | None = None

    def load(self, device: Device) -> None:
        if self.modality is Modality.TEXT:
            tokenizers = import_tokenizers()
            path = self.spec.path / str(self.io.get("tokenizer", "tokenizer.json"))
            if not path.is_file():
                raise WeightsMissingError(f"{self.name}: tokenizer {path} is missing")
            self._encoder = JsonTokenEncoder(tokenizers.Tokenizer.from_file(str(path)), int(self.io.get("pad_id", 0)))
        else:
            self.cropper.load()
        self._session = onnx_session(self.model_path, device)

    def preprocess(self, item: TextItem | ImageItem) -> PreparedRows | PreparedImage:
        if self._session is None:
            raise DetectorError(f"{self.name}: load must be called before preprocess")
        if isinstance(item, TextItem):
            if self._encoder is None:
                raise DetectorError(f"{self.name} is an image detector")
            return prepare_rows(item, self._encoder, self.spec, self.min_evidence, self.state.is_calibrated)
        crop = self.cropper(item)
        if crop.pixels is None:
            return PreparedImage(None, None, 0.0, crop.reason)
        pixels = float(crop.pixels.shape[0] * crop.pixels.shape[1])
        if pixels < self.min_evidence:
            return PreparedImage(None, crop.region, pixels, IMAGE_TOO_SMALL)
        return PreparedImage(_image_values(crop.pixels, self.io["image"]), crop.region, pixels, None)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (logits,) = self._session.run([self.output_name], feeds)
        return ai_logits(np.asarray(logits), self.ai_index)

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        if self._session is None:
            raise DetectorError(f"{self.name}: load must be called before forward")
        if self.modality is Modality.IMAGE:
            name = str(self.io.get("pixel_input", "pixel_values"))
            return batch_scores(batch, lambda stacked: self._run({name: stacked}))
        names = dict(self.io.get("inputs", {"input_ids": "input_ids", "attention_mask": "attention_mask"}))
        rows = [r for p in batch for r in p.rows]
        scores = []
        for start in range(0, len(rows), self.max_batch_size):
            ids, mask = padded(rows[start : start + self.max_batch_size], self._encoder.pad_id)  # type: ignore[union-attr]
            feeds = {names["input_ids"]: ids}
            if "attention_mask" in names:
                feeds[names["attention_mask"]] = mask
            scores.append(self._run(feeds))
        return split_rows(batch, np.concatenate(scores) if scores else np.zeros(0))

    def postprocess(self, prepared: Sequence[Any], raw: Sequence[Any]) -> list[DetectorOutput]:
        if self.modality is Modality.IMAGE:
            return [image_output(self.name, self.state, p, r) for p, r in zip(prepared, raw, strict=True)]
        return [text_output(self.name, self.state, p, np.asarray(r, dtype=np.float64))
                for p, r in zip(prepared, raw, strict=True)]
