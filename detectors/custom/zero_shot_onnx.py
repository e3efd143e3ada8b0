"""``onnx`` with ``io.task = "zero-shot-lm"``: Binoculars / Fast-DetectGPT from causal LMs exported by
``bylinecheck models export`` (``observer.onnx``, optional ``performer.onnx``, ``tokenizer.json``).

Caveats first: no torch at inference (onnxruntime and tokenizers); the statistics are the same as
:mod:`detectors.custom.zero_shot`, computed in numpy in float64 from the graphs' float32 logits, so
scores match the PyTorch detector to about 1e-5. The LMs' full-vocabulary logits are materialised
per batch: memory grows with batch x tokens x vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors.contract import Device, ScoreDirection, WeightsMissingError
from detectors.custom.calibrated import CalibrationState
from detectors.custom.spec import CustomSpec, ZeroShotMethod, import_tokenizers
from detectors.custom.textclass import padded
from detectors.custom.zero_shot import ZeroShotLmDetector, token_parts_np
from detectors.runtime import onnx_session


def is_zero_shot_io(io: Mapping[str, Any]) -> bool:
    return io.get("task") == "zero-shot-lm"


class OnnxZeroShotLmDetector(ZeroShotLmDetector):
    """A :class:`ZeroShotLmDetector` whose LMs run in ONNX Runtime."""

    def __init__(self, spec: CustomSpec, state: CalibrationState) -> None:
        super().__init__(spec, state)
        self.io: dict[str, Any] = {**dict(state.extra.get("io", {})), **dict(spec.io)}
        self.method = ZeroShotMethod(self.io.get("method", ZeroShotMethod.FAST_DETECTGPT.value))
        self.direction = ScoreDirection.LOWER_IS_AI if self.method is ZeroShotMethod.BINOCULARS \
            else ScoreDirection.HIGHER_IS_AI
        for role in ("observer", "performer", "tokenizer"):
            name = self.io.get(role)
            if name and not (spec.path / str(name)).is_file():
                raise WeightsMissingError(f"{self.name}: {role} file {spec.path / str(name)} is missing")

    def load(self, device: Device) -> None:
        tokenizers = import_tokenizers()
        self._tokenizer = tokenizers.Tokenizer.from_file(str(self.spec.path / str(self.io["tokenizer"])))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._observer = onnx_session(self.spec.path / str(self.io["observer"]), device)
        performer = self.io.get("performer")
        self._performer = onnx_session(self.spec.path / str(performer), device) if performer else None
        self._pad_id = int(self.io.get("pad_id", 0))
        bos = self.io.get("bos_id")
        self._bos = int(bos) if bos is not None else None

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return list(enc.ids), [(int(a), int(b)) for a, b in enc.offsets]

    def _token_parts(self, rows: Sequence[Sequence[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        ids, mask = padded(rows, self._pad_id)
        feeds = {"input_ids": ids, "attention_mask": mask}
        (obs,) = self._observer.run(["logits"], feeds)
        perf = self._performer.run(["logits"], feeds)[0] if self._performer is not None else obs
        num, den = token_parts_np(np.asarray(obs[:, :-1], dtype=np.float64), np.asarray(perf[:, :-1], dtype=np.float64),
                                  ids, self.method)
        lengths = mask.sum(axis=1) - 1
        return [(num[i, : lengths[i]], den[i, : lengths[i]]) for i in range(len(rows))]
