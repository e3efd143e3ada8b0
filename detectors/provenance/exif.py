"""EXIF ``Software``, ``Make``/``Model`` and generator parameters in ``UserComment``/``ImageDescription``.

Caveats first: EXIF is unsigned and trivially edited; a camera Make/Model only *suggests* a camera (and is what a
careful forger would add), a generator name only *suggests* AI. Read with Pillow's lazy ``Image.open`` (no pixel
decode), except PNG, whose eXIf chunk our own chunk walker finds (Pillow's PNG ``getexif`` decodes the image).
AUTOMATIC1111's web UI stores its generation parameters in ``UserComment`` when it saves JPEG or WebP
(``UNICODE`` header, UTF-16); they are recognised by ``Steps:`` plus ``Sampler:`` or ``CFG scale:``.
"""

from __future__ import annotations

import io
import logging

from PIL import Image

from .findings import Finding, FindingKind, Strength
from .generators import generator_name
from .png_text import PNG_SIGNATURE, png_chunks

logger = logging.getLogger(__name__)

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_EXIF_IFD = 0x8769
TAG_USER_COMMENT = 0x9286
MAX_TAG_CHARS = 20_000


def read_exif(data: bytes) -> list[Finding]:
    """Findings from the EXIF of an image file (PNG: its eXIf chunk; other formats: through Pillow)."""
    exif = _png_exif(data) if data.startswith(PNG_SIGNATURE) else Image.open(io.BytesIO(data)).getexif()
    findings = _software(exif.get(TAG_SOFTWARE)) + _camera(exif.get(TAG_MAKE), exif.get(TAG_MODEL))
    comments = {
        "ImageDescription": exif.get(TAG_IMAGE_DESCRIPTION),
        "UserComment": exif.get_ifd(TAG_EXIF_IFD).get(TAG_USER_COMMENT),
    }
    for tag, raw in comments.items():
        findings += _generator_comment(tag, _text(raw))
    return findings


def _png_exif(data: bytes) -> Image.Exif:
    """The eXIf chunk parsed, without decoding pixels (Pillow's PNG getexif decodes the whole image)."""
    exif = Image.Exif()
    body = next((body for ctype, body in png_chunks(data) if ctype == b"eXIf"), None)
    if body is not None:
        exif.load(body)
    return exif


def _text(raw: object) -> str:
    """A tag value as text; UserComment's 8-byte charset header is honoured."""
    if isinstance(raw, str):
        return raw[:MAX_TAG_CHARS].strip("\x00 ")
    if not isinstance(raw, bytes):
        return ""
    header, body = raw[:8], raw[8 : 8 + 2 * MAX_TAG_CHARS]
    if header == b"UNICODE\x00":
        return _utf16(body)
    if header in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("latin-1").strip("\x00 ")
    return raw[: 2 * MAX_TAG_CHARS].decode("utf-8", "replace").strip("\x00 ")


def _utf16(body: bytes) -> str:
    """UTF-16 of unknown byte order (writers disagree): the decoding with fewer NULs wins."""
    decoded = [body.decode(codec, "replace") for codec in ("utf-16-be", "utf-16-le")]
    return min(decoded, key=lambda text: text.count("\x00")).strip("\x00 ")


def _software(raw: object, tag: str = "Software") -> list[Finding]:
    software = _text(raw)
    name = generator_name(software[:200]) if software else None
    if name is None:
        return []
    return [
        Finding(
            kind=FindingKind.EXIF_SOFTWARE,
            value=name,
            strength=Strength.SUGGESTS_AI,
            basis=f"EXIF {tag} names an image generator (unsigned metadata)",
            detail={"software": software[:200]},
        )
    ]


def _camera(raw_make: object, raw_model: object) -> list[Finding]:
    make, model = _text(raw_make)[:100], _text(raw_model)[:100]
    if not (make or model):
        return []
    label = model if make and model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    name = generator_name(label)
    if name is not None:  # a generator posing as a camera make
        return _software(label, tag="Make/Model")
    return [
        Finding(
            kind=FindingKind.EXIF_CAMERA,
            value=label,
            strength=Strength.SUGGESTS_CAMERA,
            basis="EXIF Make/Model (unsigned metadata)",
            detail={"make": make, "model": model},
        )
    ]


def _generator_comment(tag: str, text: str) -> list[Finding]:
    if not ("Steps:" in text and ("Sampler:" in text or "CFG scale:" in text)):
        return []
    return [
        Finding(
            kind=FindingKind.EXIF_GENERATOR_COMMENT,
            value="AUTOMATIC1111-style web UI parameters",
            strength=Strength.SUGGESTS_AI,
            basis=f"EXIF {tag} holds diffusion generation parameters (unsigned metadata)",
            detail={"tag": tag},
        )
    ]
