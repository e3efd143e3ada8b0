"""``read_provenance``: every provenance reader run over the original upload bytes, none able to raise.

Caveats first: read the bytes as uploaded, before any resize or re-encode, or the metadata and the watermark are
gone. Each reader runs in isolation: a corrupt segment, an oversized packet or a library error in one of them is
logged at debug level (type only, never content) and costs only that reader's findings. Pixels are decoded only
for the watermark, only up to :data:`MAX_WATERMARK_PIXELS`, and not for a JPEG with 4:2:0 chroma subsampling
whose estimated quality is below :data:`MIN_WATERMARK_JPEG_QUALITY_420` (measured with
``benchmarks/watermark_survival.py``: 0 of 108 watermarks survived 4:2:0 at q70-85, 1 of 36 at q90; at 4:4:4
they survive even q70, so those are always decoded; decoding and reading cost ~12-20 ms of CPU per 1024 px JPEG). The C2PA reader
runs only when the bytes contain the ``c2pa`` JUMBF label that every C2PA manifest store carries.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from .credentials import read_c2pa
from .exif import read_exif
from .findings import Finding, strongest_first
from .png_text import read_png_text
from .watermark import read_watermark
from .xmp import read_xmp

logger = logging.getLogger(__name__)

MAX_WATERMARK_PIXELS = 40_000_000  # about 0.3 s of decoding; larger images are not checked for the watermark
MIN_WATERMARK_JPEG_QUALITY_420 = 88.0  # estimated IJG quality; see benchmarks/results/watermark_survival.json
C2PA_LABEL = b"c2pa"
# IJG standard quantisation tables (ITU T.81 Annex K), for estimating a JPEG's quality from its own tables
_IJG_LUMA_SUM = 3688
_IJG_CHROMA_SUM = 5505


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of an image from its first bytes, for the formats C2PA can carry; None when unknown."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[4:8] == b"ftyp":
        return _isobmff_mime(data[8:12])
    return None


def _isobmff_mime(brand: bytes) -> str | None:
    if brand in (b"avif", b"avis"):
        return "image/avif"
    return "image/heic" if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis") else None


def read_provenance(data: bytes, *, trust_anchors_pem: str | None = None, bgr: np.ndarray | None = None) -> list[Finding]:
    """Provenance findings in the original upload ``data``, strongest first, without duplicates.

    ``trust_anchors_pem`` (PEM bundle of C2PA trust anchors) lets a signature be reported as trusted rather than
    merely valid. ``bgr``: the caller's :func:`watermark_pixels` of ``data``, when it already has them (the
    watermark is then read from them instead of a second decode). Never raises: unreadable metadata gives no
    findings. An empty list means "no evidence", not "human".
    """
    findings: list[Finding] = []
    mime = sniff_mime(data)
    if mime is not None and C2PA_LABEL in data:
        findings += _safely("c2pa", lambda: read_c2pa(data, mime, trust_anchors_pem))
    findings += _safely("xmp", lambda: read_xmp(data))
    findings += _safely("png_text", lambda: read_png_text(data))
    findings += _safely("exif", lambda: read_exif(data))
    findings += _safely("watermark", lambda: _watermark(data, bgr))
    return strongest_first(findings)


def _safely(reader: str, read: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return read()
    except Exception as exc:  # a reader must never take the check down; the error is logged, not swallowed silently
        logger.debug("provenance reader %s skipped the upload: %s", reader, type(exc).__name__)
        return []


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def jpeg_quality(data: bytes) -> float | None:
    """Estimated IJG quality (1-100) of a JPEG from its quantisation tables (chroma's when present: the
    watermark lives in the U channel); None for other formats or when the tables cannot be read."""
    with _open(data) as image:
        tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
    return None if not tables else _quality(tables)


def _watermark_cannot_survive(data: bytes) -> bool:
    if not data.startswith(b"\xff\xd8\xff"):
        return False
    with _open(data) as image:
        return _cannot_survive(image)


def _cannot_survive(image: Image.Image) -> bool:
    """True for a 4:2:0 JPEG whose estimated quality is below :data:`MIN_WATERMARK_JPEG_QUALITY_420`."""
    from PIL import JpegImagePlugin

    if image.format != "JPEG" or JpegImagePlugin.get_sampling(image) != 2:
        return False
    tables: dict[int, list[int]] | None = getattr(image, "quantization", None)
    return bool(tables) and tables is not None and _quality(tables) < MIN_WATERMARK_JPEG_QUALITY_420


def _quality(tables: dict[int, list[int]]) -> float:
    key, standard = (1, _IJG_CHROMA_SUM) if 1 in tables else (min(tables), _IJG_LUMA_SUM)
    scale = 100.0 * sum(tables[key]) / standard
    return float(max(1.0, min(100.0, (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale)))


def watermark_pixels(data: bytes) -> np.ndarray | None:
    """The pixels the watermark reader decodes from ``data`` with OpenCV (full size, BGR, EXIF orientation
    ignored), or None when it would not: not a colour JPEG, a 4:2:0 JPEG below the quality the watermark
    survives, more than :data:`MAX_WATERMARK_PIXELS`, or bytes OpenCV cannot decode (a truncated file among
    them). Lets a caller that needs the full-size pixels anyway decode once and hand them to
    :func:`read_provenance`."""
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _open(data)
        if _cannot_survive(image) or image.width * image.height > MAX_WATERMARK_PIXELS:
            return None
        return _colour_jpeg_bgr(data, image)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, Image.DecompressionBombError):
        return None


def _watermark(data: bytes, bgr: np.ndarray | None = None) -> list[Finding]:
    """The watermark finding; ``bgr``, when given, is :func:`watermark_pixels` of ``data`` (so the checks that
    made it need not run again)."""
    image = _open(data)
    width, height = image.size
    if bgr is not None and bgr.shape == (height, width, 3) and bgr.dtype == np.uint8:
        return read_watermark(bgr, channels="BGR")
    if _cannot_survive(image):
        return []
    if width * height > MAX_WATERMARK_PIXELS:
        logger.debug("image of %d pixels not checked for a watermark", width * height)
        return []
    bgr = _colour_jpeg_bgr(data, image)
    if bgr is not None:
        return read_watermark(bgr, channels="BGR")
    return read_watermark(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))


def _colour_jpeg_bgr(data: bytes, image: Image.Image) -> np.ndarray | None:
    """A colour JPEG decoded by OpenCV (BGR, EXIF orientation ignored, as Pillow's pixels), or None for anything
    else, which Pillow decodes. Both bundle libjpeg-turbo with the same IDCT and chroma upsampling: the pixels
    were identical on all 1,094 shared face JPEGs compared (baseline 4:2:0 q75, progressive 4:4:4, 256-768 px;
    ``tests/test_provenance_watermark.py`` keeps checking), and OpenCV's decode takes about half of Pillow's CPU time
    (5 vs 10 ms for a 1024 px headshot)."""
    if image.format != "JPEG" or image.mode != "RGB":
        return None
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None or pixels.shape != (image.height, image.width, 3):
        return None
    return np.asarray(pixels)
