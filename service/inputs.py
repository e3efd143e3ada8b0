"""Validation of submitted text and images. Every failure is a :class:`BadInputError` (a 4xx).

Caveats first: the image type is sniffed from the bytes, never from a filename or a declared
content type; the pixel count is checked from the header before any pixel is decoded (our own
decompression-bomb guard, below Pillow's); truncated files fail on a full decode. With ``min_side``,
a JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's ``draft``) as long as its longest
side stays >= ``min_side``; the result still records the submitted width and height.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.config import Settings
from service.domain import DecodedImage
from service.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyTextError,
    ImageTooLargeError,
    InvalidEncodingError,
    TextTooLongError,
    UnsupportedImageError,
)

_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


def sniff_image_type(data: bytes) -> str | None:
    """``JPEG``, ``PNG`` or ``WEBP`` from the leading bytes; None for anything else."""
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_text(raw: bytes) -> str:
    """Strict UTF-8 (a BOM is dropped). Raises InvalidEncodingError."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidEncodingError(f"text is not valid UTF-8 (byte {exc.start})") from None


def validate_text(text: str, settings: Settings) -> str:
    """Returns the text unchanged; raises EmptyTextError / TextTooLongError / InvalidEncodingError."""
    if len(text) > settings.max_text_chars:
        raise TextTooLongError(f"text has {len(text)} characters; the limit is {settings.max_text_chars}")
    if "\x00" in text:
        raise InvalidEncodingError("text contains NUL characters")
    if not text.strip():
        raise EmptyTextError("text is empty")
    return text


def decode_image(data: bytes, settings: Settings, min_side: int = 0) -> DecodedImage:
    """Validate and decode an upload to RGB. Raises a BadInputError subclass on any problem.

    ``min_side`` > 0 allows a reduced JPEG decode whose longest side is at least ``min_side`` px (about 3x
    less CPU for a 1024 px JPEG at 1/2 scale); ``width``/``height`` stay the submitted image's.
    """
    if len(data) > settings.max_image_bytes:
        raise ImageTooLargeError(f"image has {len(data)} bytes; the limit is {settings.max_image_bytes}")
    kind = sniff_image_type(data)
    if kind is None:
        raise UnsupportedImageError("only JPEG, PNG and WebP images are accepted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Corrupt EXIF data": the EXIF is ignored, not the image
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[kind])
            _check_header(image, settings)
            full_size = image.size
            if min_side > 0 and kind == "JPEG":
                _reduce(image, min_side)
            reduced_size = image.size
            image.load()
            rgb = _to_rgb(ImageOps.exif_transpose(image))
        except (DecompressionBombError, UnsupportedImageError):
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DecompressionBombError(str(exc)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            raise CorruptImageError(f"image could not be decoded: {type(exc).__name__}") from None
    pixels = np.asarray(rgb, dtype=np.uint8)
    width, height = _submitted_size(full_size, reduced_size, rgb.size)
    return DecodedImage(
        pixels=pixels,
        format=kind,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        original=data,
    )


def _reduce(image: Image.Image, min_side: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale (1/2, 1/4, 1/8) keeping the longest side >= ``min_side``."""
    width, height = image.size
    longest = max(width, height)
    if longest < 2 * min_side:
        return
    wanted = (max(1, -(-width * min_side // longest)), max(1, -(-height * min_side // longest)))
    image.draft(image.mode, wanted)


def _submitted_size(full: tuple[int, int], reduced: tuple[int, int], oriented: tuple[int, int]) -> tuple[int, int]:
    """The submitted (width, height) after EXIF orientation, given the decoded sizes before and after it."""
    if full == reduced:
        return oriented
    turned = oriented != reduced
    return (full[1], full[0]) if turned else full


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit greyscale is scaled (Pillow's own conversion clips it to 255); alpha is dropped;
    CMYK, palette and 1-bit images go through Pillow's conversions."""
    if image.mode in _SIXTEEN_BIT:
        wide = np.asarray(image, dtype=np.uint32)
        return Image.fromarray((wide >> 8).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # the direct conversion warns about byte transparency
    return image.convert("RGB")


_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


def _check_header(image: Image.Image, settings: Settings) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImageError("image has no pixels")
    if width * height > settings.max_image_pixels:
        raise DecompressionBombError(
            f"image is {width}x{height} pixels; the limit is {settings.max_image_pixels} pixels"
        )
    if getattr(image, "n_frames", 1) > 1:
        raise UnsupportedImageError("animated or multi-frame images are not accepted as headshots")
