"""The text detector: Unicode-normalised, hashed n-gram + stylometric linear model in ONNX Runtime.

Caveats first: inference imports only numpy and onnxruntime. The raw score is a logit (higher is
AI); long texts are cut into sentence-aligned windows of at most ``window_words`` words whose logits
are averaged, weighted by words. Each sentence is also scored on its own (same ONNX call) for the
spans; a single sentence is little evidence, so span probabilities are indicative only. Items with
fewer than ``min_evidence`` words, or that do not look English, get ``probability=None`` and an
``abstain_reason``; their raw score is still reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    Verdict,
)
from detectors.manifest import Manifest, load_manifest
from detectors.runtime import onnx_session
from detectors.text.features import Features, english_evidence, featurise_many, pad_batch
from detectors.text.normalise import normalise, sentence_spans, windows, word_count

ABSTAIN_EMPTY = "empty_text"
ABSTAIN_SHORT = "text_too_short"
ABSTAIN_NOT_ENGLISH = "not_english"
MAX_CHARS = 200_000


@dataclass(frozen=True)
class TextConfig:
    """Featurisation and abstention settings read from the manifest's ``extra``."""

    n_buckets: int
    rare_logfreq: float
    window_words: int
    min_last_window_words: int
    min_latin_share: float
    min_stopword_share: float
    english_check_min_words: int

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> TextConfig:
        return cls(
            n_buckets=int(extra["n_buckets"]),
            rare_logfreq=float(extra["rare_logfreq"]),
            window_words=int(extra["window_words"]),
            min_last_window_words=int(extra["min_last_window_words"]),
            min_latin_share=float(extra["min_latin_share"]),
            min_stopword_share=float(extra["min_stopword_share"]),
            english_check_min_words=int(extra["english_check_min_words"]),
        )


@dataclass(frozen=True)
class PreparedText:
    """One text ready for ``forward``: ``rows`` = window rows, then one row per sentence."""

    rows: tuple[Features, ...]
    window_words: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    words: int
    flags: tuple[str, ...]
    abstain_reason: str | None

    @property
    def work(self) -> float:
        return float(self.words)


class TextDetector:
    """Detector for :class:`TextItem` (see the module docstring for caveats)."""

    modality = Modality.TEXT

    def __init__(self, manifest: Manifest, max_batch_size: int = 32) -> None:
        if manifest.modality is not Modality.TEXT:
            raise DetectorError(f"manifest {manifest.name} is for {manifest.modality}, not text")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.max_batch_size = max_batch_size
        self.config = TextConfig.from_extra(dict(manifest.extra))
        self._session: Any = None
        self._logfreq: np.ndarray | None = None

    def load(self, device: Device) -> None:
        """Open the ONNX session on ``device`` and read the word-frequency table."""
        self._logfreq = np.load(self.manifest.files["wordfreq"], allow_pickle=False).astype(np.float32)
        self._session = onnx_session(self.manifest.files["model"], device)

    def preprocess(self, item: TextItem) -> PreparedText:
        """Normalise, split and featurise. Raises InvalidItemError for non-string or huge text."""
        if not isinstance(item.text, str):
            raise InvalidItemError("invalid_text", "text must be a string")
        if len(item.text) > MAX_CHARS:
            raise InvalidItemError("text_too_long", f"text longer than {MAX_CHARS} characters")
        return self.prepare(item.text, with_sentences=True)

    def prepare(self, text: str, with_sentences: bool) -> PreparedText:
        """Window rows (and, with ``with_sentences``, one row per sentence) for ``text``."""
        if self._logfreq is None:
            raise DetectorError("TextDetector.load must be called before preprocess")
        norm = normalise(text)
        spans = sentence_spans(norm.text)
        counts = [word_count(norm.text[s:e]) for s, e in spans]
        words = sum(counts)
        reason = self.abstain_reason(norm.text, words)
        if words == 0:
            return PreparedText((), (), (), 0, norm.flags, reason)
        cfg = self.config
        groups = windows(counts, cfg.window_words, cfg.min_last_window_words)
        texts = [norm.text[spans[a][0] : spans[b - 1][1]] for a, b in groups]
        window_words = tuple(sum(counts[a:b]) for a, b in groups)
        scored = [i for i, n in enumerate(counts) if n > 0] if reason is None and with_sentences else []
        texts += [norm.text[spans[i][0] : spans[i][1]] for i in scored]
        rows = tuple(featurise_many(texts, cfg.n_buckets, self._logfreq, cfg.rare_logfreq))
        original = tuple(norm.span_to_original(*spans[i]) for i in scored)
        return PreparedText(rows, window_words, original, words, norm.flags, reason)

    def raw_scores(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Document raw scores (NaN for empty texts) and word counts, without sentence rows."""
        scores = np.full(len(texts), np.nan)
        counts = np.zeros(len(texts))
        for a in range(0, len(texts), batch_size):
            prepared = [self.prepare(t, with_sentences=False) for t in texts[a : a + batch_size]]
            for j, (p, r) in enumerate(zip(prepared, self.forward(prepared), strict=True)):
                counts[a + j] = p.words
                if p.window_words:
                    scores[a + j] = float(np.average(r, weights=p.window_words))
        return scores, counts

    def abstain_reason(self, text: str, words: int) -> str | None:
        """Why a normalised ``text`` of ``words`` words gets no probability (None: it gets one)."""
        if words == 0:
            return ABSTAIN_EMPTY
        cfg = self.config
        latin, stop = english_evidence(text)
        if latin < cfg.min_latin_share:
            return ABSTAIN_NOT_ENGLISH
        if words >= cfg.english_check_min_words and stop < cfg.min_stopword_share:
            return ABSTAIN_NOT_ENGLISH
        if words < self.manifest.min_evidence:
            return ABSTAIN_SHORT
        return None

    def forward(self, batch: Sequence[PreparedText]) -> list[np.ndarray]:
        """One ONNX call for every row of every item; returns each item's row logits."""
        if self._session is None:
            raise DetectorError("TextDetector.load must be called before forward")
        rows = [row for item in batch for row in item.rows]
        if not rows:
            return [np.zeros(0, dtype=np.float32) for _ in batch]
        idx, val, style = pad_batch(rows)
        (logits,) = self._session.run(["logit"], {"indices": idx, "values": val, "style": style})
        bounds = np.cumsum([0] + [len(item.rows) for item in batch])
        return [np.asarray(logits[a:b], dtype=np.float32) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def postprocess(self, prepared: Sequence[PreparedText], raw: Sequence[object]) -> list[DetectorOutput]:
        """One DetectorOutput per item, in order."""
        return [self._output(p, np.asarray(r, dtype=np.float64)) for p, r in zip(prepared, raw, strict=True)]

    def _output(self, item: PreparedText, logits: np.ndarray) -> DetectorOutput:
        n_win = len(item.window_words)
        raw_score = float(np.average(logits[:n_win], weights=item.window_words)) if n_win else None
        cal = self.manifest.calibration
        probability = cal(raw_score) if raw_score is not None and item.abstain_reason is None else None
        verdict = Verdict.ABSTAIN if probability is None else self.manifest.thresholds.verdict(probability)
        spans = tuple(
            SpanScore(start, end, cal(float(z))) for (start, end), z in zip(item.spans, logits[n_win:], strict=True)
        )
        return DetectorOutput(
            detector=self.name,
            version=self.version,
            raw_score=raw_score,
            direction=ScoreDirection.HIGHER_IS_AI,
            probability=probability,
            verdict=verdict,
            threshold=self.manifest.thresholds.likely_ai,
            evidence=float(item.words),
            evidence_unit=self.manifest.evidence_unit,
            work=item.work,
            abstain_reason=item.abstain_reason,
            spans=spans,
            flags=item.flags,
            extras={"windows": float(n_win)},
        )


def build_text_detector(weights_dir: Path, max_batch_size: int = 32) -> TextDetector:
    """Read and verify ``weights_dir/manifest.json``. Raises WeightsMissingError / WeightsCorruptError."""
    return TextDetector(load_manifest(weights_dir), max_batch_size=max_batch_size)
