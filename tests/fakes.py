"""Fakes at the edges only: detectors whose *forward pass* is a small formula, and energy counters.

Everything around them (batcher, pipeline, app, SQLite, energy accounting) runs for real.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from detectors.contract import (
    Box,
    DetectorOutput,
    Device,
    ImageItem,
    InvalidItemError,
    Modality,
    ScoreDirection,
    SpanScore,
    TextItem,
    Verdict,
)


class WorkerKilledError(BaseException):
    """Escapes every ``except Exception``: stands for a crash that kills the worker."""


@dataclass(frozen=True)
class _PreparedText:
    text: str
    words: int

    @property
    def work(self) -> float:
        return float(self.words)


class FakeTextDetector:
    """Scores a text by the share of the word 'delve' and friends: a stand-in forward pass."""

    name = "fake-text"
    version = "0"
    modality = Modality.TEXT

    def __init__(self, max_batch_size: int = 64, forward_delay_s: float = 0.0, fail_forward: bool = False,
                 kill_worker: bool = False) -> None:
        self.max_batch_size = max_batch_size
        self.kill_worker = kill_worker
        self.forward_delay_s = forward_delay_s
        self.fail_forward = fail_forward
        self.batch_sizes: list[int] = []
        self.device: Device | None = None
        self._lock = threading.Lock()

    def load(self, device: Device) -> None:
        self.device = device

    def preprocess(self, item: TextItem) -> _PreparedText:
        if "\ufffd" in item.text:
            raise InvalidItemError("replacement_char", "text holds U+FFFD")
        return _PreparedText(item.text, len(item.text.split()))

    def forward(self, batch: Sequence[_PreparedText]) -> list[float]:
        import time

        with self._lock:
            self.batch_sizes.append(len(batch))
        if self.fail_forward:
            raise RuntimeError("forward exploded")
        if self.kill_worker:
            raise WorkerKilledError("simulated death of the inference worker")
        if self.forward_delay_s:
            time.sleep(self.forward_delay_s)
        return [min(1.0, p.text.lower().count("delve") / 3) for p in batch]

    def postprocess(self, prepared: Sequence[_PreparedText], raw: Sequence[float]) -> list[DetectorOutput]:
        outs = []
        for p, score in zip(prepared, raw, strict=True):
            if p.words < 5:
                outs.append(DetectorOutput(self.name, self.version, None, ScoreDirection.HIGHER_IS_AI, None,
                                           Verdict.ABSTAIN, 0.9, p.words, "words", p.work,
                                           abstain_reason="text_too_short"))
                continue
            verdict = Verdict.LIKELY_AI if score >= 0.9 else Verdict.LIKELY_HUMAN if score <= 0.2 else Verdict.UNCERTAIN
            end = p.text.find(".") + 1 or len(p.text)
            outs.append(DetectorOutput(self.name, self.version, score, ScoreDirection.HIGHER_IS_AI, score, verdict,
                                       0.9, p.words, "words", p.work, spans=(SpanScore(0, end, score),)))
        return outs


@dataclass(frozen=True)
class _PreparedImage:
    pixels: np.ndarray

    @property
    def work(self) -> float:
        return float(self.pixels.shape[0] * self.pixels.shape[1])


class FakeFaceDetector:
    """Calls an image synthetic when its mean red channel is high: a stand-in forward pass."""

    name = "fake-face"
    version = "0"
    modality = Modality.IMAGE
    max_batch_size = 16

    def load(self, device: Device) -> None:
        self.device = device

    def preprocess(self, item: ImageItem) -> _PreparedImage:
        return _PreparedImage(item.pixels)

    def forward(self, batch: Sequence[_PreparedImage]) -> list[float]:
        return [float(p.pixels[..., 0].mean() / 255.0) for p in batch]

    def postprocess(self, prepared: Sequence[_PreparedImage], raw: Sequence[float]) -> list[DetectorOutput]:
        outs = []
        for p, score in zip(prepared, raw, strict=True):
            h, w = p.pixels.shape[:2]
            verdict = Verdict.LIKELY_AI if score >= 0.8 else Verdict.LIKELY_HUMAN if score <= 0.3 else Verdict.UNCERTAIN
            outs.append(DetectorOutput(self.name, self.version, score, ScoreDirection.HIGHER_IS_AI, score, verdict,
                                       0.8, float(h * w), "face_pixels", p.work, region=Box(w // 4, h // 4, w // 2, h // 2),
                                       family="unknown"))
        return outs


class FakeClock:
    """A monotonic clock that only moves when the test sets ``now``."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeNvml:
    """The few NVML calls the meter uses, over a counter the test advances."""

    def __init__(self, step_mj: int = 2500) -> None:
        self.energy_mj = 1_000_000
        self.step_mj = step_mj
        self.initialised = False

    def nvmlInit(self) -> None:  # noqa: N802 - NVML's name
        self.initialised = True

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        self.energy_mj += self.step_mj
        return self.energy_mj


def jpeg_bytes(color: tuple[int, int, int] = (90, 120, 150), size: tuple[int, int] = (256, 256), quality: int = 90) -> bytes:
    rng = np.random.default_rng(sum(color))
    arr = np.clip(rng.normal(0, 12, (size[1], size[0], 3)) + np.array(color), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def portrait_bytes(seed: int, size: int = 512, quality: int = 92) -> bytes:
    """A structured (not noise) test picture: gradient, an oval and seeded shapes; stable under resizing."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x * 200 + 30, y * 180 + 40, (1 - x) * 150 + 50], axis=-1).astype(np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, size * 3 // 4, 2)
        w, h = rng.integers(size // 8, size // 3, 2)
        draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw.ellipse([size // 3, size // 4, 2 * size // 3, 3 * size // 4], fill=(220, 180, 150))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
