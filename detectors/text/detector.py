"""The text detector: Unicode-normalised, hashed n-gram + stylometric linear model in ONNX Runtime.

Caveats first: inference imports only numpy and onnxruntime. The raw score is a logit (higher is
AI); long texts are cut into sentence-aligned windows of at most ``window_words`` words whose logits
are averaged, weighted by words. Each sentence is also scored on its own (same ONNX call) for the
spans; a single sentence is little evidence, so span probabilities are indicative only. Items with
fewer than ``min_evidence`` words, or that do not look English, get ``probability=None`` and an
``abstain_reason``; their raw score is still reported.

From weights 0.2.0 the manifest's ``extra.lm`` adds a SmolLM2 stacker (``detectors.text.lm.stacker``):
with ``lm_mode`` ``auto`` (default) only texts whose n-gram probability falls in the manifest's
cascade band run the LM (first 256 tokens, ~1.4 CPU-s each on one core); ``always`` runs it on every
covered text; ``off`` skips it and uses the n-gram model's own calibration and thresholds
(``extra.ngram_only``, the 0.1.0 behaviour). The raw score is then the stacker's log-odds (LM path) or
the n-gram logit mapped to that scale. Sentence span probabilities always come from the n-gram
model (its own calibration).

Where the LM runs: when the stacker is active, ``preprocess`` (the service's per-core preprocessing
pool, not the shared inference lane) scores the item's n-gram rows itself and, if the item is on the LM
path, computes the SmolLM2 features there. So a ~1.4 CPU-s LM pass never holds the lane that every
detector's batched forward passes share, and its CPU time is billed to its own check (the pool bills
each item its thread's CPU time) instead of being split by word count over a batch. ``forward`` then
only runs the n-gram ONNX call for items that did not get it in ``preprocess``.

From weights 0.6.0 the manifest's ``extra.front`` adds a fine-tuned MiniLM-L6 window classifier
(``detectors.text.encoder``, ONNX, int8): ``preprocess`` computes its logit for every covered text (~24 ms of
CPU per 256-piece window, two at most) and ``detectors.text.front`` folds it with the n-gram logit into the front score,
which replaces the n-gram logit in the cascade (band, stacker's first column, ``lm_mode`` off's calibration and
thresholds); the encoder logit is also a stacker column. Spans stay the n-gram model's. In ``auto`` mode a text
whose n-gram probability is under the manifest's gate (``extra.lm.gate``) skips the encoder and the LM: the n-gram
logit, mapped to the stacker's scale, is its raw score (extras ``gated`` = 1), so confident plain newswire costs what
0.5.0 cost.

From weights 0.3.0 the stacker has one more input on the LM path: the logit of a small CNN over the LM's
per-token statistics (``detectors.text.lm.sequence``; one manifest file per such stacker column),
computed in ``preprocess`` from the same SmolLM2 pass (well under 1 ms of CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detectors.calibration import Calibration, Thresholds, calibration_from_dict
from detectors.contract import (
    DetectorError,
    DetectorOutput,
    Device,
    DeviceKind,
    InvalidItemError,
    Modality,
    ScoreDirection,
    SpanScore,
    TextItem,
    Verdict,
    WeightsCorruptError,
)
from detectors.manifest import Manifest, load_manifest
from detectors.runtime import onnx_session
from detectors.text.encoder.runtime import EncoderScorer
from detectors.text.features import Features, english_evidence, featurise_spans, pad_batch
from detectors.text.front import Front
from detectors.text.lm.scorer import CPU_RUNTIMES
from detectors.text.lm.sequence import VARIANTS, SequenceModel
from detectors.text.lm.stacker import Stacker, shared_scorer, verified_gguf
from detectors.text.lm.stats import FEATURE_NAMES, text_features
from detectors.text.normalise import normalise, sentence_spans, windows, word_count

ABSTAIN_EMPTY = "empty_text"
ABSTAIN_SHORT = "text_too_short"
ABSTAIN_NOT_ENGLISH = "not_english"
MAX_CHARS = 200_000
LM_MODES = ("auto", "off", "always")
LM_CHARS_PER_TOKEN = 16  # tokenise at most this many characters per LM token (a prefix; tokens ~4-5 chars)


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
    skeleton_buckets: int = 0  # the skeleton block's size (text 0.4.0 on; absent in older manifests: no block)

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
            skeleton_buckets=int(extra.get("skeleton_buckets", 0)),
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
    lm_ids: np.ndarray | None = None
    ngram_logits: np.ndarray | None = None  # set by preprocess when the stacker is active
    lm_features: np.ndarray | None = None  # set by preprocess for items on the LM path
    encoder_logit: float | None = None  # set by preprocess for covered items when the manifest has a front
    gated: bool = False  # set by preprocess (auto mode): the n-gram model alone answers (stacker.gate_below)

    @property
    def work(self) -> float:
        return float(self.words)


@dataclass(frozen=True)
class TextForward:
    """``forward``'s result for one item: the n-gram row logits and, on the LM path, the SmolLM2 features."""

    logits: np.ndarray
    lm_features: np.ndarray | None


class TextDetector:
    """Detector for :class:`TextItem` (see the module docstring for caveats)."""

    modality = Modality.TEXT

    def __init__(self, manifest: Manifest, max_batch_size: int = 32, lm_mode: str = "auto",
                 lm_runtime: str = "numpy") -> None:
        if manifest.modality is not Modality.TEXT:
            raise DetectorError(f"manifest {manifest.name} is for {manifest.modality}, not text")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if lm_mode not in LM_MODES:
            raise ValueError(f"lm_mode must be one of {LM_MODES}")
        if lm_runtime not in CPU_RUNTIMES:
            raise ValueError(f"lm_runtime must be one of {CPU_RUNTIMES}")
        self.lm_runtime = lm_runtime
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.max_batch_size = max_batch_size
        self.config = TextConfig.from_extra(dict(manifest.extra))
        self._session: Any = None
        self._logfreq: np.ndarray | None = None
        self._scorer: Any = None
        extra = dict(manifest.extra)
        self.stacker: Stacker | None = Stacker.from_extra(extra["lm"]) if "lm" in extra and lm_mode != "off" else None
        self.lm_mode = lm_mode if "lm" in extra else "off"
        self._sequence: dict[str, SequenceModel] = {}
        self._sequence_names = tuple(n for n in self.stacker.features if n in VARIANTS) if self.stacker else ()
        missing = [n for n in self._sequence_names if n not in manifest.files]
        if missing:
            raise WeightsCorruptError(f"the text stacker reads {', '.join(missing)} but the manifest lists no such file")
        self.front = Front.from_extra(extra["front"]) if "front" in extra else None
        missing = [n for n in ("encoder", "encoder_tokenizer") if self.front is not None and n not in manifest.files]
        if missing:
            raise WeightsCorruptError(f"the text front reads {', '.join(missing)} but the manifest lists no such file")
        self._encoder: EncoderScorer | None = None
        self._encoder_in_stacker = self.stacker is not None and "encoder" in self.stacker.features
        self._lm_names = (*FEATURE_NAMES, *self._sequence_names, *(("encoder",) if self._encoder_in_stacker else ()))
        self.ngram_calibration, self.ngram_thresholds = _ngram_only(manifest)
        # The first stage: the front (n-gram + encoder) from 0.6.0, else the n-gram model alone.
        self.first_calibration = self.front.calibration if self.front else self.ngram_calibration
        self.first_thresholds = self.front.thresholds if self.front else self.ngram_thresholds
        self.calibration = manifest.calibration if self.stacker else self.first_calibration
        self.thresholds = manifest.thresholds if self.stacker else self.first_thresholds

    def load(self, device: Device) -> None:
        """Open the ONNX session on ``device``, read the word-frequency table and (unless ``lm_mode`` is off)
        the SmolLM2 weights, once per process. Raises WeightsMissingError / WeightsCorruptError when the
        GGUF is absent or not the one in the manifest."""
        if self.stacker is not None:
            self._scorer = shared_scorer(verified_gguf(self.stacker), self.stacker.max_tokens, lm_torch_device(device),
                                         self.lm_runtime)
            for name in self._sequence_names:
                path = self.manifest.files[name]
                self._sequence[name] = SequenceModel(path, onnx_session(path, device), self.stacker.max_tokens)
        if self.front is not None:
            # The encoder's int8 graph (MatMulInteger) runs on the CPU on every device, like face finding: it runs in
            # preprocess, one text at a time, and the torch evaluator used on CUDA without onnxruntime-gpu
            # (detectors.torch_onnx) does not cover its quantised operators.
            cpu = Device(kind=DeviceKind.CPU, intra_op_threads=device.intra_op_threads)
            self._encoder = EncoderScorer(self.manifest.files["encoder_tokenizer"],
                                          onnx_session(self.manifest.files["encoder"], cpu))
        self._logfreq = np.load(self.manifest.files["wordfreq"], allow_pickle=False).astype(np.float32)
        self._session = onnx_session(self.manifest.files["model"], device)

    def preprocess(self, item: TextItem) -> PreparedText:
        """Normalise, split and featurise. Raises InvalidItemError for non-string or huge text."""
        if not isinstance(item.text, str):
            raise InvalidItemError("invalid_text", "text must be a string")
        if len(item.text) > MAX_CHARS:
            raise InvalidItemError("text_too_long", f"text longer than {MAX_CHARS} characters")
        prepared = self.prepare(item.text, with_sentences=True)
        if prepared.abstain_reason is not None:
            return prepared
        if self._scorer is None:
            return self._with_encoder(prepared, item.text)
        # Stacker active: the n-gram call, the gate, the encoder and (on the LM path) the LM run here, on the
        # caller's thread.
        (logits,) = self.ngram_logits([prepared])
        prepared = replace(prepared, ngram_logits=logits)
        z = document_logit(logits, prepared.window_words)
        if z is None:
            return prepared
        if self.lm_mode == "auto" and self.stacker is not None and self.stacker.gated(self.ngram_calibration(z)):
            return replace(prepared, gated=True)
        prepared = self._with_encoder(prepared, item.text)
        if not self._takes_lm(prepared, z):
            return prepared
        norm = normalise(item.text).text[: self._scorer.max_tokens * LM_CHARS_PER_TOKEN]
        ids = self._scorer.token_ids(norm)
        stats = self._scorer.stats_from_ids(ids)
        seq = [self._sequence[n].logit(stats, ids) for n in self._sequence_names]
        if self._encoder_in_stacker:
            seq.append(float(prepared.encoder_logit or 0.0))
        features = np.concatenate([text_features(stats), np.asarray(seq, dtype=np.float32)])
        return replace(prepared, lm_ids=ids, lm_features=features)

    def _with_encoder(self, prepared: PreparedText, text: str) -> PreparedText:
        if self._encoder is None:
            return prepared
        return replace(prepared, encoder_logit=float(self._encoder.logits([normalise(text).text])[0]))

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
        window_words = tuple(sum(counts[a:b]) for a, b in groups)
        scored = [i for i, n in enumerate(counts) if n > 0] if reason is None and with_sentences else []
        # Rows: each window's text, then each scored sentence's, featurised once per sentence.
        runs = groups + [(i, i + 1) for i in scored]
        rows = tuple(featurise_spans(norm.text, spans, runs, cfg.n_buckets, self._logfreq, cfg.rare_logfreq,
                                     cfg.skeleton_buckets))
        original = tuple(norm.span_to_original(*spans[i]) for i in scored)
        return PreparedText(rows, window_words, original, words, norm.flags, reason)

    def raw_scores(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Document raw scores (NaN for empty texts) and word counts, without sentence rows."""
        scores = np.full(len(texts), np.nan)
        counts = np.zeros(len(texts))
        for a in range(0, len(texts), batch_size):
            prepared = [self.prepare(t, with_sentences=False) for t in texts[a : a + batch_size]]
            for j, (p, r) in enumerate(zip(prepared, self.ngram_logits(prepared), strict=True)):
                counts[a + j] = p.words
                z = document_logit(r, p.window_words)
                if z is not None:
                    scores[a + j] = z
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

    def forward(self, batch: Sequence[PreparedText]) -> list[TextForward]:
        """The n-gram logits (one ONNX call for the items that ``preprocess`` did not score) and the
        SmolLM2 features that ``preprocess`` computed for items on the LM path."""
        todo = [item for item in batch if item.ngram_logits is None]
        fresh = iter(self.ngram_logits(todo)) if todo else iter(())
        out = []
        for item in batch:
            logits = item.ngram_logits if item.ngram_logits is not None else next(fresh)
            out.append(TextForward(logits, item.lm_features))
        return out

    def _takes_lm(self, item: PreparedText, z: float) -> bool:
        """Whether ``item`` (document n-gram logit ``z``) goes through SmolLM2."""
        if self.stacker is None:
            return False
        if self.lm_mode == "always":
            return True
        return self.stacker.in_band(self.first_calibration(self._first_score(z, item.encoder_logit)))

    def _first_score(self, z: float, encoder_logit: float | None) -> float:
        """The first stage's raw score: the front score when there is a front and an encoder logit, else ``z``."""
        if self.front is None or encoder_logit is None:
            return z
        return self.front.score(z, encoder_logit)

    def ngram_logits(self, batch: Sequence[PreparedText]) -> list[np.ndarray]:
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
        return [self._output(p, r) for p, r in zip(prepared, raw, strict=True)]

    def _output(self, item: PreparedText, raw: object) -> DetectorOutput:
        if not isinstance(raw, TextForward):
            raise DetectorError("TextDetector.postprocess expects forward's TextForward results")
        logits = np.asarray(raw.logits, dtype=np.float64)
        n_win = len(item.window_words)
        z = document_logit(logits, item.window_words)
        raw_score, extras = self._raw_score(z, item.encoder_logit, raw.lm_features, item.gated)
        probability = self.calibration(raw_score) if raw_score is not None and item.abstain_reason is None else None
        verdict = Verdict.ABSTAIN if probability is None else self.thresholds.verdict(probability)
        ngram_cal = self.ngram_calibration
        spans = tuple(
            SpanScore(start, end, ngram_cal(float(v))) for (start, end), v in zip(item.spans, logits[n_win:], strict=True)
        )
        return DetectorOutput(
            detector=self.name,
            version=self.version,
            raw_score=raw_score,
            direction=ScoreDirection.HIGHER_IS_AI,
            probability=probability,
            verdict=verdict,
            threshold=self.thresholds.likely_ai,
            evidence=float(item.words),
            evidence_unit=self.manifest.evidence_unit,
            work=item.work,
            abstain_reason=item.abstain_reason,
            spans=spans,
            flags=item.flags,
            extras={"windows": float(n_win), **extras},
        )

    def _raw_score(self, z: float | None, e: float | None, lm: np.ndarray | None,
                   gated: bool = False) -> tuple[float | None, dict[str, float]]:
        """The document raw score and its evidence (n-gram and encoder logits; ``gated`` 1/0; ``lm_path`` 1/0, the
        LM's token count and two features)."""
        if z is None:
            return None, {}
        extras = {"ngram_logit": z} if e is None else {"ngram_logit": z, "encoder_logit": e}
        if gated and self.stacker is not None:
            return self.stacker.gate_logit(z), {**extras, "gated": 1.0, "lm_path": 0.0}
        first = self._first_score(z, e)
        if self.stacker is None:
            return first, extras
        extras["lm_path"] = 0.0 if lm is None else 1.0
        if lm is None:
            return self.stacker.ngram_logit(first), extras
        values = dict(zip(self._lm_names, (float(v) for v in lm), strict=True))
        extras.update(lm_tokens=values["n_tokens"], lm_ll_mean=values["ll_mean"], lm_fastdetect=values["fastdetect"])
        extras.update({"lm_" + n: values[n] for n in self._sequence_names})
        return self.stacker.logit(first, lm, self._lm_names), extras


def document_logit(logits: np.ndarray, window_words: Sequence[int]) -> float | None:
    """The document's n-gram logit: its window rows' logits (the first ``len(window_words)`` rows) averaged, weighted
    by words; None for a text without windows."""
    if not window_words:
        return None
    return float(np.average(logits[: len(window_words)], weights=window_words))


def lm_torch_device(device: Device) -> str | None:
    """Where the SmolLM2 pass runs: PyTorch on the detector's GPU when the device is CUDA and torch sees
    it, otherwise (None) the numpy path on the CPU, which every install has. Never raises."""
    if device.kind is not DeviceKind.CUDA:
        return None
    try:
        import torch
    except ImportError:
        return None
    return device.label if torch.cuda.is_available() else None


def _ngram_only(manifest: Manifest) -> tuple[Calibration, Thresholds]:
    """The n-gram model's own calibration and thresholds (``extra.ngram_only``; else the manifest's)."""
    spec = manifest.extra.get("ngram_only")
    if spec is None:
        return manifest.calibration, manifest.thresholds
    try:
        thresholds = Thresholds(float(spec["thresholds"]["likely_ai"]), float(spec["thresholds"]["likely_human"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsCorruptError(f"bad extra.ngram_only entry: {exc}") from exc
    return calibration_from_dict(spec["calibration"]), thresholds


def build_text_detector(weights_dir: Path, max_batch_size: int = 32, lm_mode: str = "auto",
                        lm_runtime: str = "numpy") -> TextDetector:
    """Read and verify ``weights_dir/manifest.json``. Raises WeightsMissingError / WeightsCorruptError.

    ``lm_mode``: ``auto`` (cascade), ``always`` or ``off`` (see the module docstring); ignored for
    manifests without ``extra.lm``. ``lm_runtime``: ``numpy`` or ``onnx`` for SmolLM2's pass on CPU (see
    :mod:`detectors.text.lm.scorer`); a CUDA device uses PyTorch either way."""
    return TextDetector(load_manifest(weights_dir), max_batch_size=max_batch_size, lm_mode=lm_mode,
                        lm_runtime=lm_runtime)
