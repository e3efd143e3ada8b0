"""``zero-shot-lm``: Binoculars and Fast-DetectGPT scores from one or two local causal LMs.

Caveats first: both models must share a tokenizer (checked at load: same vocabulary). Scores are
raw statistics, not probabilities; only a manifest written by ``bylinecheck calibrate`` turns them
into one.

* **Binoculars** (Hans et al. 2024): ``log PPL_performer(x) / X-PPL(observer, performer)``, where
  the cross-perplexity is the observer's next-token distribution scored by the performer's log
  probabilities. **Lower is AI.** ``path`` is the observer, ``performer_path`` the performer.
* **Fast-DetectGPT** (Bao et al. 2024), analytic form: ``(sum log p(x_t) - sum E[log p]) /
  sqrt(sum Var[log p])`` with expectations under the sampling model. **Higher is AI.** ``path`` is
  the scoring model; ``performer_path`` (optional) the sampling model, else the same model.

Long texts are cut into windows of ``max_length`` tokens (each starting with BOS when the tokenizer
has one); both statistics are sums over tokens, so windows simply add up. Sentence spans use the
same statistic over the sentence's tokens (indicative only, and only when calibrated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.contract import (
    DetectorError,
    DetectorOutput,
    Device,
    InvalidItemError,
    Modality,
    ScoreDirection,
    SpanScore,
    TextItem,
)
from detectors.custom.calibrated import CalibrationState
from detectors.custom.spec import CustomSpec, ZeroShotMethod, import_transformers
from detectors.custom.textclass import DEFAULT_MIN_TOKENS, EMPTY_TEXT, MAX_CHARS, TEXT_TOO_SHORT, padded
from detectors.custom.windows import sentence_spans
from detectors.runtime import torch_device

MIN_SPAN_TOKENS = 3


@dataclass(frozen=True)
class PreparedTokens:
    """Rows of token ids; ``offsets[k]`` is the character span of the k-th scored token."""

    rows: tuple[tuple[int, ...], ...]
    offsets: tuple[tuple[int, int], ...]
    sentences: tuple[tuple[int, int], ...]
    flags: tuple[str, ...]
    abstain_reason: str | None

    @property
    def work(self) -> float:
        return float(sum(len(r) for r in self.rows))


def score(num: np.ndarray, den: np.ndarray, method: ZeroShotMethod) -> float | None:
    """The statistic over a set of tokens from their per-token parts (see the module docstring)."""
    if len(num) == 0:
        return None
    if method is ZeroShotMethod.BINOCULARS:
        return float(num.sum() / max(den.sum(), 1e-12))
    return float(num.sum() / np.sqrt(max(den.sum(), 1e-12)))


class ZeroShotLmDetector:
    """Detector for :class:`TextItem` from causal LMs (see the module docstring)."""

    modality = Modality.TEXT

    def __init__(self, spec: CustomSpec, state: CalibrationState) -> None:
        self.spec = spec
        self.state = state
        self.method = spec.zero_shot_method
        self.name = spec.name
        self.version = state.version
        self.max_batch_size = spec.max_batch_size
        self.min_tokens = state.min_evidence if state.min_evidence is not None else \
            (spec.min_evidence if spec.min_evidence is not None else DEFAULT_MIN_TOKENS)
        self.direction = ScoreDirection.LOWER_IS_AI if self.method is ZeroShotMethod.BINOCULARS \
            else ScoreDirection.HIGHER_IS_AI
        self._tokenizer: Any = None
        self._observer: Any = None
        self._performer: Any = None
        self._device: Any = None
        self._pad_id = 0
        self._bos: int | None = None

    def load(self, device: Device) -> None:
        transformers = import_transformers()
        self._device = torch_device(device)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.spec.path), local_files_only=True)
        self._observer = self._load_lm(transformers, self.spec.path)
        if self.spec.performer_path is not None:
            other = transformers.AutoTokenizer.from_pretrained(str(self.spec.performer_path), local_files_only=True)
            if other.get_vocab() != tokenizer.get_vocab():
                raise DetectorError(f"{self.name}: the two models do not share a tokenizer")
            self._performer = self._load_lm(transformers, self.spec.performer_path)
        elif self.method is ZeroShotMethod.BINOCULARS:
            raise DetectorError(f"{self.name}: Binoculars needs performer_path (a second model)")
        self._tokenizer = tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = int(pad or 0)
        self._bos = tokenizer.bos_token_id

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids (no special tokens) and each token's character span."""
        enc = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def _load_lm(self, transformers: Any, path: Any) -> Any:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **self.spec.model_kwargs())
        return model.to(self._device).eval()

    def preprocess(self, item: TextItem) -> PreparedTokens:
        if self._tokenizer is None:
            raise DetectorError(f"{self.name}: load must be called before preprocess")
        if not isinstance(item.text, str):
            raise InvalidItemError("invalid_text", "text must be a string")
        if len(item.text) > MAX_CHARS:
            raise InvalidItemError("text_too_long", f"text longer than {MAX_CHARS} characters")
        ids, offsets = self._encode(item.text)
        bos = self._bos
        width = self.spec.max_length - (1 if bos is not None else 0)
        chunks = [ids[i : i + width] for i in range(0, len(ids), width)]
        flags: tuple[str, ...] = ("truncated",) if len(chunks) > self.spec.max_windows else ()
        chunks = chunks[: self.spec.max_windows]
        rows = tuple(tuple([bos, *c] if bos is not None else c) for c in chunks)
        scored: list[tuple[int, int]] = []
        for n, chunk in enumerate(chunks):
            first = n * width + (0 if bos is not None else 1)
            scored.extend(offsets[first : n * width + len(chunk)])
        reason = EMPTY_TEXT if not ids else TEXT_TOO_SHORT if len(scored) < self.min_tokens else None
        return PreparedTokens(rows, tuple(scored), tuple(sentence_spans(item.text)), flags, reason)

    def forward(self, batch: Sequence[PreparedTokens]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per item, the per-token numerator and denominator parts of the statistic."""
        if self._observer is None:
            raise DetectorError(f"{self.name}: load must be called before forward")
        rows = [r for p in batch for r in p.rows]
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(rows), self.max_batch_size):
            parts.extend(self._token_parts(rows[start : start + self.max_batch_size]))
        out, k = [], 0
        for p in batch:
            mine = parts[k : k + len(p.rows)]
            k += len(p.rows)
            out.append((np.concatenate([m[0] for m in mine]) if mine else np.zeros(0),
                        np.concatenate([m[1] for m in mine]) if mine else np.zeros(0)))
        return out

    def _token_parts(self, rows: Sequence[Sequence[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        import torch

        ids_np, mask_np = padded(rows, self._pad_id)
        ids = torch.from_numpy(ids_np).to(self._device)
        mask = torch.from_numpy(mask_np).to(self._device)
        with torch.inference_mode():
            obs = self._observer(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            perf = self._performer(input_ids=ids, attention_mask=mask).logits[:, :-1].float() \
                if self._performer is not None else obs
            targets = ids[:, 1:].unsqueeze(-1)
            if self.method is ZeroShotMethod.BINOCULARS:
                perf_log = torch.log_softmax(perf, dim=-1)
                num = -perf_log.gather(-1, targets).squeeze(-1)
                den = -(torch.softmax(obs, dim=-1) * perf_log).sum(-1)
            else:
                score_log = torch.log_softmax(obs, dim=-1)
                ref = torch.softmax(perf, dim=-1)
                mean = (ref * score_log).sum(-1)
                num = score_log.gather(-1, targets).squeeze(-1) - mean
                den = (ref * score_log.square()).sum(-1) - mean.square()
        lengths = mask_np.sum(axis=1) - 1
        num_np, den_np = num.cpu().numpy().astype(np.float64), den.cpu().numpy().astype(np.float64)
        return [(num_np[i, : lengths[i]], den_np[i, : lengths[i]]) for i in range(len(rows))]

    def postprocess(self, prepared: Sequence[PreparedTokens], raw: Sequence[object]) -> list[DetectorOutput]:
        return [self._output(p, r) for p, r in zip(prepared, raw, strict=True)]  # type: ignore[arg-type]

    def _output(self, item: PreparedTokens, parts: tuple[np.ndarray, np.ndarray]) -> DetectorOutput:
        num, den = parts
        raw = score(num, den, self.method)
        judged = self.state.judge(raw, item.abstain_reason)
        return DetectorOutput(
            detector=self.name, version=self.version, raw_score=raw, direction=self.direction,
            probability=judged.probability, verdict=judged.verdict, threshold=judged.threshold,
            evidence=float(len(num)), evidence_unit="tokens", work=item.work, abstain_reason=judged.abstain_reason,
            spans=self._spans(item, num, den), flags=item.flags, extras={"windows": float(len(item.rows))},
        )

    def _spans(self, item: PreparedTokens, num: np.ndarray, den: np.ndarray) -> tuple[SpanScore, ...]:
        if self.state.calibration is None or len(num) == 0:
            return ()
        starts = np.array([o[0] for o in item.offsets[: len(num)]])
        spans = []
        for a, b in item.sentences:
            chosen = (starts >= a) & (starts < b)
            value = score(num[chosen], den[chosen], self.method) if chosen.sum() >= MIN_SPAN_TOKENS else None
            if value is not None:
                spans.append(SpanScore(a, b, self.state.calibration(value)))
        return tuple(spans)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    peak = z.max(axis=-1, keepdims=True)
    shifted = z - peak
    return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))


def token_parts_np(obs: np.ndarray, perf: np.ndarray, ids: np.ndarray,
                   method: ZeroShotMethod) -> tuple[np.ndarray, np.ndarray]:
    """The torch computation of :meth:`ZeroShotLmDetector._token_parts` in numpy: logits (B, T, V) of
    positions 0..T-2, ``ids`` (B, T); returns per-token numerators and denominators (B, T-1)."""
    targets = ids[:, 1:, None]
    if method is ZeroShotMethod.BINOCULARS:
        perf_log = _log_softmax(perf)
        num = -np.take_along_axis(perf_log, targets, axis=-1)[..., 0]
        den = -(np.exp(_log_softmax(obs)) * perf_log).sum(-1)
        return num, den
    score_log = _log_softmax(obs)
    ref = np.exp(_log_softmax(perf))
    mean = (ref * score_log).sum(-1)
    num = np.take_along_axis(score_log, targets, axis=-1)[..., 0] - mean
    return num, (ref * np.square(score_log)).sum(-1) - np.square(mean)
