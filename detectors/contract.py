"""The contract every detector follows (load / preprocess / forward / postprocess).

Caveats first: a detector never chooses its own device (it is handed one in ``load``), never reads
the environment, and never invents a score: when evidence is insufficient it returns an output with
``probability=None`` and an ``abstain_reason``.

Life cycle, driven by the service's micro-batcher:

1. ``load(device)`` once (may raise :class:`WeightsMissingError` / :class:`WeightsCorruptError`);
2. ``preprocess(item)`` per item on the CPU (may raise :class:`InvalidItemError`, which fails only
   that item);
3. ``forward(batch)`` on the device, for up to ``max_batch_size`` prepared items; this is the part
   the energy meter brackets;
4. ``postprocess(prepared, raw)`` gives one :class:`DetectorOutput` per item, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"


class ScoreDirection(StrEnum):
    """Which way a raw score points."""

    HIGHER_IS_AI = "higher_is_ai"
    LOWER_IS_AI = "lower_is_ai"


class Verdict(StrEnum):
    LIKELY_AI = "likely_ai"
    UNCERTAIN = "uncertain"
    LIKELY_HUMAN = "likely_human"
    ABSTAIN = "abstain"


class DeviceKind(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


@dataclass(frozen=True)
class Device:
    """Where a detector runs. ``index`` is the CUDA ordinal; ignored on CPU."""

    kind: DeviceKind = DeviceKind.CPU
    index: int = 0
    intra_op_threads: int = 0  # 0 = runtime default

    @property
    def label(self) -> str:
        return "cpu" if self.kind is DeviceKind.CPU else f"cuda:{self.index}"


class DetectorError(Exception):
    """Base of detector errors."""


class WeightsMissingError(DetectorError):
    """The model files named in the manifest are not on disk."""


class WeightsCorruptError(DetectorError):
    """A model file's sha256 differs from the manifest, or the manifest is malformed."""


class InvalidItemError(DetectorError):
    """One item cannot be judged (undecodable, wrong shape); fails that item only."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TextItem:
    """A text to judge. ``text`` is exactly as submitted (offsets refer to it)."""

    text: str


@dataclass(frozen=True)
class ImageItem:
    """A decoded image: RGB uint8 array of shape (H, W, 3), plus the original bytes.

    ``submitted_size`` is the submitted image's (width, height) when ``pixels`` is a reduced decode of it
    (e.g. a JPEG decoded at 1/2 scale); None means ``pixels`` is the submitted size. Boxes in outputs are
    always in submitted-image pixels.
    """

    pixels: np.ndarray
    original: bytes = b""
    submitted_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class SpanScore:
    """A scored span of the submitted text: ``[start, end)`` character offsets."""

    start: int
    end: int
    probability: float


@dataclass(frozen=True)
class Box:
    """A pixel box in the submitted image's coordinates: x, y (top left), width, height."""

    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class DetectorOutput:
    """One detector's answer for one item.

    ``raw_score`` is the model's uncalibrated score (see ``direction``); ``probability`` is the
    calibrated probability that the item is AI-made (None when abstaining); ``evidence`` measures
    how much the detector saw, in ``evidence_unit`` (words, face pixels); ``work`` is the amount of
    compute the item cost relative to its batch-mates (tokens, pixels), used to share energy.
    """

    detector: str
    version: str
    raw_score: float | None
    direction: ScoreDirection
    probability: float | None
    verdict: Verdict
    threshold: float | None
    evidence: float
    evidence_unit: str
    work: float
    abstain_reason: str | None = None
    spans: tuple[SpanScore, ...] = ()
    region: Box | None = None
    family: str | None = None
    flags: tuple[str, ...] = ()
    extras: Mapping[str, float] = field(default_factory=dict)
    embedding: tuple[float, ...] | None = None


PreparedT = TypeVar("PreparedT")
RawT = TypeVar("RawT")
ItemT = TypeVar("ItemT", contravariant=True)


@runtime_checkable
class Prepared(Protocol):
    """A preprocessed item; ``work`` feeds the energy share."""

    @property
    def work(self) -> float: ...


@runtime_checkable
class Detector(Protocol, Generic[ItemT]):
    """What the service's batcher drives. See the module docstring for the life cycle."""

    name: str
    version: str
    modality: Modality
    max_batch_size: int

    def load(self, device: Device) -> None: ...

    def preprocess(self, item: ItemT) -> Prepared: ...

    def forward(self, batch: Sequence[Prepared]) -> Sequence[object]: ...

    def postprocess(self, prepared: Sequence[Prepared], raw: Sequence[object]) -> list[DetectorOutput]: ...
