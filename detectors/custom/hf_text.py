"""``hf-sequence-classifier``: a local transformers sequence-classification folder (model + tokenizer).

Caveats first: loaded with ``local_files_only=True`` (never downloads); torch and transformers are
imported in ``load`` (install ``bylinecheck[train]``). Windowing, spans and calibration: see
:mod:`detectors.custom.textclass`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.contract import DetectorError, DetectorOutput, Device, Modality, TextItem
from detectors.custom.calibrated import CalibrationState
from detectors.custom.spec import CustomSpec, import_transformers
from detectors.custom.textclass import (
    DEFAULT_MIN_TOKENS,
    PreparedRows,
    ai_logits,
    padded,
    prepare_rows,
    resolve_label,
    split_rows,
    text_output,
)
from detectors.runtime import torch_device


class HfTokenEncoder:
    """A transformers tokenizer as a :class:`~detectors.custom.textclass.TokenEncoder`."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad or 0)

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def rows(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        return [list(ids) for ids in self.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]


class HfSequenceClassifierDetector:
    """Detector for :class:`TextItem` backed by ``AutoModelForSequenceClassification``."""

    modality = Modality.TEXT

    def __init__(self, spec: CustomSpec, state: CalibrationState) -> None:
        self.spec = spec
        self.state = state
        self.name = spec.name
        self.version = state.version
        self.max_batch_size = spec.max_batch_size
        self.min_tokens = state.min_evidence if state.min_evidence is not None else \
            (spec.min_evidence if spec.min_evidence is not None else DEFAULT_MIN_TOKENS)
        self._model: Any = None
        self._encoder: HfTokenEncoder | None = None
        self._device: Any = None
        self.ai_index = 1

    def load(self, device: Device) -> None:
        transformers = import_transformers()
        path = str(self.spec.path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(path, **self.spec.model_kwargs())
        self._device = torch_device(device)
        self._model = model.to(self._device).eval()
        self._encoder = HfTokenEncoder(tokenizer)
        self.ai_index = resolve_label(self.spec.ai_label, dict(model.config.id2label), int(model.config.num_labels))

    def preprocess(self, item: TextItem) -> PreparedRows:
        if self._encoder is None:
            raise DetectorError(f"{self.name}: load must be called before preprocess")
        return prepare_rows(item, self._encoder, self.spec, self.min_tokens, self.state.is_calibrated)

    def forward(self, batch: Sequence[PreparedRows]) -> list[np.ndarray]:
        if self._model is None or self._encoder is None:
            raise DetectorError(f"{self.name}: load must be called before forward")
        import torch

        rows = [r for p in batch for r in p.rows]
        scores: list[np.ndarray] = []
        for start in range(0, len(rows), self.max_batch_size):
            ids, mask = padded(rows[start : start + self.max_batch_size], self._encoder.pad_id)
            with torch.inference_mode():
                out = self._model(input_ids=torch.from_numpy(ids).to(self._device),
                                  attention_mask=torch.from_numpy(mask).to(self._device))
            scores.append(ai_logits(out.logits.float().cpu().numpy(), self.ai_index))
        flat = np.concatenate(scores) if scores else np.zeros(0)
        return split_rows(batch, flat)

    def postprocess(self, prepared: Sequence[PreparedRows], raw: Sequence[object]) -> list[DetectorOutput]:
        return [text_output(self.name, self.state, p, np.asarray(r, dtype=np.float64))
                for p, r in zip(prepared, raw, strict=True)]
