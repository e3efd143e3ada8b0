"""Shared logic of windowed text classifiers (transformers and ONNX): prepare rows, score, decide.

Caveats first: long texts are cut into sentence-aligned windows of at most ``max_length`` tokens
(at most ``max_windows`` of them; the rest is not read and the output says ``truncated``); the raw
score is the token-weighted mean of the windows' AI logits (``log p_ai - log p_other``, higher is
AI). Each sentence is also scored on its own for the spans (at most ``max_span_rows``); a single
sentence is little evidence, so span probabilities are indicative only, and an uncalibrated detector
gives no spans (it has no probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detectors.contract import DetectorError, DetectorOutput, InvalidItemError, ScoreDirection, SpanScore, TextItem
from detectors.custom.calibrated import CalibrationState
from detectors.custom.spec import CustomSpec
from detectors.custom.windows import group_windows, sentence_spans

TEXT_TOO_SHORT = "text_too_short"
EMPTY_TEXT = "empty_text"
MAX_CHARS = 200_000
DEFAULT_MIN_TOKENS = 16.0


class TokenEncoder(Protocol):
    """Token counts without special tokens, and model rows with them (truncated to ``max_length``)."""

    pad_id: int

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def rows(self, texts: Sequence[str], max_length: int) -> list[list[int]]: ...


@dataclass(frozen=True)
class PreparedRows:
    """Window rows first, then one row per scored sentence; ``work`` is the item's token count."""

    rows: tuple[tuple[int, ...], ...]
    window_tokens: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    tokens: int
    flags: tuple[str, ...]
    abstain_reason: str | None

    @property
    def work(self) -> float:
        return float(sum(len(r) for r in self.rows))


def prepare_rows(item: TextItem, encoder: TokenEncoder, spec: CustomSpec, min_tokens: float,
                 with_spans: bool) -> PreparedRows:
    if not isinstance(item.text, str):
        raise InvalidItemError("invalid_text", "text must be a string")
    if len(item.text) > MAX_CHARS:
        raise InvalidItemError("text_too_long", f"text longer than {MAX_CHARS} characters")
    spans = sentence_spans(item.text)
    if not spans:
        return PreparedRows((), (), (), 0, (), EMPTY_TEXT)
    pieces = [item.text[a:b] for a, b in spans]
    counts = encoder.count(pieces)
    groups = group_windows(counts, spec.max_length - 2)
    flags: tuple[str, ...] = ("truncated",) if len(groups) > spec.max_windows else ()
    groups = groups[: spec.max_windows]
    tokens = sum(sum(counts[a:b]) for a, b in groups)
    reason = TEXT_TOO_SHORT if tokens < min_tokens else None
    texts = [item.text[spans[a][0] : spans[b - 1][1]] for a, b in groups]
    scored = [i for i in range(min(len(spans), spec.max_span_rows)) if counts[i] > 0] if with_spans else []
    rows = encoder.rows(texts + [pieces[i] for i in scored], spec.max_length)
    return PreparedRows(
        rows=tuple(tuple(r) for r in rows),
        window_tokens=tuple(max(sum(counts[a:b]), 1) for a, b in groups),
        spans=tuple(spans[i] for i in scored),
        tokens=tokens,
        flags=flags,
        abstain_reason=reason,
    )


def padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 ``input_ids`` and ``attention_mask``."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def ai_logits(logits: np.ndarray, ai_index: int) -> np.ndarray:
    """``log p_ai - log(1 - p_ai)`` per row from class logits (a single column is taken as that logit)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 1 or z.shape[1] == 1:
        return z.reshape(-1)
    others = np.delete(z, ai_index, axis=1)
    peak = others.max(axis=1, keepdims=True)
    lse = peak[:, 0] + np.log(np.exp(others - peak).sum(axis=1))
    return np.asarray(z[:, ai_index] - lse, dtype=np.float64)


def split_rows(batch: Sequence[PreparedRows], row_scores: np.ndarray) -> list[np.ndarray]:
    bounds = np.cumsum([0] + [len(p.rows) for p in batch])
    return [row_scores[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def text_output(name: str, state: CalibrationState, item: PreparedRows, scores: np.ndarray) -> DetectorOutput:
    n_win = len(item.window_tokens)
    raw = float(np.average(scores[:n_win], weights=item.window_tokens)) if n_win else None
    judged = state.judge(raw, item.abstain_reason)
    spans: tuple[SpanScore, ...] = ()
    if state.calibration is not None:
        spans = tuple(SpanScore(a, b, state.calibration(float(z)))
                      for (a, b), z in zip(item.spans, scores[n_win:], strict=True))
    return DetectorOutput(
        detector=name, version=state.version, raw_score=raw, direction=ScoreDirection.HIGHER_IS_AI,
        probability=judged.probability, verdict=judged.verdict, threshold=judged.threshold,
        evidence=float(item.tokens), evidence_unit="tokens", work=item.work,
        abstain_reason=judged.abstain_reason, spans=spans, flags=item.flags, extras={"windows": float(n_win)},
    )


def resolve_label(ai_label: str, id2label: dict[int, str], n_outputs: int) -> int:
    """The output index meaning AI: a label name (case-insensitive) or an index."""
    for index, label in id2label.items():
        if str(label).lower() == ai_label.lower():
            return int(index)
    if ai_label.lstrip("-").isdigit() and -n_outputs <= int(ai_label) < max(n_outputs, 1):
        return int(ai_label) % max(n_outputs, 1)
    raise DetectorError(f"ai_label {ai_label!r} is neither a label ({sorted(id2label.values())}) nor an index")
