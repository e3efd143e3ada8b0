"""Typed domain objects shared by the entry points (API, webhooks, audit). A leaf module."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Scope(StrEnum):
    CHECK = "check"
    AUDIT = "audit"
    ADMIN = "admin"


@dataclass(frozen=True)
class HeadshotUpload:
    """An uploaded headshot exactly as received (provenance is read from these bytes)."""

    data: bytes
    filename: str | None = None


@dataclass(frozen=True)
class CheckRequest:
    """One article with its byline; ``text`` None means headshots only."""

    text: str | None
    byline: str | None = None
    bio: str | None = None
    headshots: tuple[HeadshotUpload, ...] = ()
    idempotency_key: str | None = None
    source: str = "api"
    external_id: str | None = None


@dataclass(frozen=True)
class DecodedImage:
    """A validated upload: RGB pixels (H, W, 3) uint8 plus facts about the file.

    ``width`` and ``height`` are the submitted image's (after EXIF orientation); ``pixels`` may be a reduced
    decode of it (see :func:`service.inputs.decode_image`), in which case :attr:`is_reduced` is True.
    """

    pixels: np.ndarray
    format: str
    width: int
    height: int
    sha256: str
    original: bytes = field(repr=False, default=b"")
    # The full-size decode the watermark reader reads (BGR, EXIF orientation not applied), when decoding made it.
    full_bgr: np.ndarray | None = field(repr=False, compare=False, default=None)

    @property
    def is_reduced(self) -> bool:
        return (self.pixels.shape[1], self.pixels.shape[0]) != (self.width, self.height)

    @property
    def submitted_size(self) -> tuple[int, int] | None:
        """(width, height) for :class:`detectors.contract.ImageItem` when ``pixels`` is reduced, else None."""
        return (self.width, self.height) if self.is_reduced else None
