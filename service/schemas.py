"""Pydantic models at the HTTP edge: the report (a public contract: add keys, never rename) and requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from detectors.contract import Verdict


class SentenceScore(BaseModel):
    start: int = Field(description="Character offset (inclusive) into the submitted text")
    end: int = Field(description="Character offset (exclusive) into the submitted text")
    ai_probability: float


class DetectorScore(BaseModel):
    """One detector's own answer within a role (shipped or declared), with its energy share."""

    name: str
    model: str | None = Field(default=None, description="name@version")
    kind: str = Field(description="shipped | hf-sequence-classifier | zero-shot-lm | hf-image-classifier | onnx")
    ai_probability: float | None = Field(default=None, description="Calibrated; null when uncalibrated or abstained")
    raw_score: float | None = None
    score_direction: str | None = None
    verdict: Verdict
    abstain_reason: str | None = None
    threshold: float | None = None
    calibrated: bool = False
    evidence: float | None = None
    evidence_unit: str | None = None
    energy_j: float | None = Field(default=None, description="This check's share of the detector's batch energy")
    energy_method: str | None = None
    sentences: list[SentenceScore] = []


class EnsembleReport(BaseModel):
    """How the role's main probability was stacked from its members."""

    stacker: str = Field(description="stacker name@version")
    members: list[str]
    used: list[str] = Field(description="Members whose raw score entered the stacker")
    imputed: list[str] = Field(default=[], description="Members that abstained; their score counted as the mean")
    logit: float | None = None
    threshold: float | None = None


class TextReport(BaseModel):
    ai_probability: float | None = Field(description="Calibrated probability the text is AI-written; null when abstained")
    verdict: Verdict
    abstain_reason: str | None = None
    sentences: list[SentenceScore] = []
    model: str | None = None
    threshold: float | None = Field(default=None, description="The likely_ai threshold on ai_probability")
    raw_score: float | None = None
    score_direction: str | None = None
    evidence_words: float | None = None
    flags: list[str] = []
    detectors: list[DetectorScore] = Field(default=[], description="Each detector that judged the text")
    ensemble: EnsembleReport | None = None


class ProvenanceFinding(BaseModel):
    model_config = ConfigDict(frozen=True)  # cached per upload and shared between reports (Pipeline._evidence)

    kind: str
    value: str
    strength: str = Field(description="proves_ai | suggests_ai | suggests_camera")
    basis: str


class ReuseMatch(BaseModel):
    check_id: str
    byline: str | None
    headshot_index: int
    similarity: float
    method: str


class HeadshotReport(BaseModel):
    index: int
    synthetic_probability: float | None
    verdict: Verdict
    abstain_reason: str | None = None
    face_box: list[int] | None = Field(default=None, description="[x, y, w, h] in the submitted image's pixels")
    provenance: list[ProvenanceFinding] = []
    model: str | None = None
    threshold: float | None = None
    raw_score: float | None = None
    family: str | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    phash: str | None = None
    reuse: list[ReuseMatch] = []
    reasons: list[str] = []
    detectors: list[DetectorScore] = Field(default=[], description="Each detector that judged the headshot")
    ensemble: EnsembleReport | None = None


class EnergyPart(BaseModel):
    detector: str
    joules: float
    method: str
    source: str
    device: str
    window_s: float
    batch_size: int
    share: float
    below_resolution: bool = False
    note: str = ""
    forward_j: float = Field(default=0.0, description="Share of the batch's forward-pass energy")
    preprocess_j: float = Field(default=0.0, description="This item's own preprocessing, CPU-time estimate")


class EnergyReport(BaseModel):
    joules: float | None = Field(description="Energy of this check's inference, in joules; null if none ran")
    method: str = Field(description="measured | estimated | none")
    source: str = Field(description="nvml | rapl | cpu-time-estimate | none")
    device: str | None
    window_s: float
    batch_size: int
    share: float = Field(description="This check's share of the energy of the batches it ran in")
    kwh: float | None
    gco2e: float | None
    grid_gco2e_per_kwh: float
    grid_source: str
    smartphone_charges: float | None
    smartphone_charge_kwh: float
    below_resolution: bool = False
    parts: list[EnergyPart] = []


class Report(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "One check's report"})

    id: str
    created_at: datetime
    verdict: Verdict
    reasons: list[str]
    byline: str | None = None
    text: TextReport | None
    headshots: list[HeadshotReport]
    energy: EnergyReport
    detectors: dict[str, str] = Field(default_factory=dict, description="detector name -> version")


class ReportPage(BaseModel):
    items: list[Report]
    next_cursor: str | None = None


class HeadshotJson(BaseModel):
    data: str = Field(description="Base64-encoded JPEG, PNG or WebP bytes")
    filename: str | None = None


class CheckJson(BaseModel):
    text: str | None = None
    byline: str | None = Field(default=None, max_length=300)
    bio: str | None = Field(default=None, max_length=5000)
    headshots: list[HeadshotJson] = []


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ReadyStatus(BaseModel):
    ready: bool
    detectors: dict[str, str]
    workers: dict[str, bool]


class BylineCheck(BaseModel):
    id: str
    created_at: datetime
    verdict: Verdict
    text_ai_probability: float | None


class BylineHeadshot(BaseModel):
    check_id: str
    index: int
    sha256: str | None
    phash: str | None
    verdict: Verdict
    synthetic_probability: float | None


class BylineProfile(BaseModel):
    byline: str
    checks: list[BylineCheck]
    headshots: list[BylineHeadshot]
    reuse: list[dict[str, Any]]
