"""Validation of submitted text and images. Every failure is a :class:`BadInputError` (a 4xx).

Caveats first: the image type is sniffed from the bytes, never from a filename or a declared
content type; the pixel count is checked from the header before any pixel is decoded (our own
decompression-bomb guard, below Pillow's); truncated files fail on a full decode. With ``min_side``,
a JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's ``draft``) as long as its longest
side stays >= ``min_side``; the result still records the submitted width and height. A colour JPEG that the
watermark reader will decode at full size anyway (see :func:`detectors.provenance.watermark_pixels`) is
decoded once, by OpenCV, and reduced from that decode by area averaging to the same size instead; the full
decode travels with the result for the watermark reader (up to :data:`SHARED_DECODE_MAX_PIXELS`).
"""

from __future__ import annotations

import hashlib
import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detectors.provenance import watermark_pixels
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
            shared = _shared_decode(data, image, min_side) if kind == "JPEG" else None
            if shared is not None:
                pixels, bgr, turned = shared
                width, height = (full_size[1], full_size[0]) if turned else full_size
                return DecodedImage(pixels=pixels, format=kind, width=width, height=height,
                                    sha256=hashlib.sha256(data).hexdigest(), original=data, full_bgr=bgr)
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
    wanted = _wanted_size(image.size, min_side)
    if wanted is not None:
        image.draft(image.mode, wanted)


def _wanted_size(size: tuple[int, int], min_side: int) -> tuple[int, int] | None:
    """The size handed to ``draft`` (None: no reduction), whose longest side is ``min_side``."""
    width, height = size
    longest = max(width, height)
    if min_side <= 0 or longest < 2 * min_side:
        return None
    return max(1, -(-width * min_side // longest)), max(1, -(-height * min_side // longest))


def _dct_scaled_size(size: tuple[int, int], wanted: tuple[int, int]) -> tuple[int, int]:
    """The size Pillow's ``draft`` decodes ``size`` to for ``wanted``: the smallest scale 1/2, 1/4 or 1/8 that
    keeps both sides at least ``wanted`` (sides rounded up, as libjpeg scales)."""
    width, height = size
    scale = 1
    for denominator in (2, 4, 8):
        if -(-width // denominator) >= wanted[0] and -(-height // denominator) >= wanted[1]:
            scale = denominator
    return -(-width // scale), -(-height // scale)


ORIENTATION_TAG = 0x0112
# The full decode is held until the check's provenance is read: 12 MB of BGR at this size (2048 x 2048), against
# 120 MB at the 40 MP pixel limit; larger uploads are decoded twice, as before, rather than held in full.
SHARED_DECODE_MAX_PIXELS = 2048 * 2048


def _shared_decode(data: bytes, image: Image.Image, min_side: int) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(reduced RGB pixels, EXIF orientation applied; the full-size BGR decode; whether the orientation turns the
    image by 90 degrees) for a JPEG that would be reduced and whose full-size pixels the watermark reader needs;
    None otherwise (Pillow then decodes as usual).

    The reduced copy has the size Pillow's DCT scaling would give and is area-averaged from the full decode
    (OpenCV's decode is Pillow's pixels, ``tests/test_provenance_watermark.py``)."""
    wanted = _wanted_size(image.size, min_side)
    if wanted is None or image.width * image.height > SHARED_DECODE_MAX_PIXELS:
        return None
    bgr = watermark_pixels(data)
    if bgr is None:
        return None
    width, height = _dct_scaled_size(image.size, wanted)
    reduced = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    orientation = image.getexif().get(ORIENTATION_TAG, 1)
    return np.ascontiguousarray(_orient(reduced, orientation)), bgr, orientation in (5, 6, 7, 8)


def _orient(pixels: np.ndarray, orientation: object) -> np.ndarray:
    """``pixels`` as displayed under EXIF ``orientation`` (what ``ImageOps.exif_transpose`` does; other values
    leave them as stored)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return pixels.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return pixels[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return pixels.transpose(1, 0, 2)[::-1]
    return pixels


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
