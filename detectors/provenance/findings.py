"""What a provenance reader reports: :class:`Finding`, its :class:`FindingKind` and :class:`Strength`.

Caveat first: a finding is evidence found *in* a file. Missing metadata produces no finding at all, never a
"suggests human" one: most real uploads have been stripped of metadata by a CMS or a social network, and so
have most AI images. Only two findings may override a classifier (:attr:`Strength.PROVES_AI`): a C2PA manifest
with a cryptographically valid signature, and an IPTC ``DigitalSourceType`` in XMP, each declaring
``trainedAlgorithmicMedia``. Everything else is evidence to show beside the score.

IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/) and the strength each gets:

=====================================  ===================  =============================================
code                                   strength             why
=====================================  ===================  =============================================
trainedAlgorithmicMedia                proves_ai            made by a generative model
compositeWithTrainedAlgorithmicMedia   suggests_ai          partly generated (e.g. generative fill)
algorithmicMedia                       suggests_ai          made by an algorithm without training data
compositeSynthetic                     suggests_ai          composite that includes synthetic elements
digitalCapture                         suggests_camera      captured by a digital camera or phone
computationalCapture                   suggests_camera      phone capture with computational processing
negativeFilm / positiveFilm            suggests_camera      scanned film
(any other code)                       (no finding)         says nothing about generation
=====================================  ===================  =============================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

IPTC_SOURCE_TYPE_PREFIXES = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/",
    "https://cv.iptc.org/newscodes/digitalsourcetype/",
)


class FindingKind(StrEnum):
    """Where a finding was read."""

    C2PA = "c2pa"
    IPTC_DIGITAL_SOURCE_TYPE = "iptc_digital_source_type"
    EXIF_SOFTWARE = "exif_software"
    EXIF_CAMERA = "exif_camera"
    EXIF_GENERATOR_COMMENT = "exif_generator_comment"  # generator parameters in EXIF UserComment/ImageDescription
    PNG_GENERATOR_TEXT = "png_generator_text"
    INVISIBLE_WATERMARK = "invisible_watermark"


class Strength(StrEnum):
    """How far a finding goes. Declaration order is strongest first."""

    PROVES_AI = "proves_ai"
    SUGGESTS_AI = "suggests_ai"
    SUGGESTS_CAMERA = "suggests_camera"


_STRENGTH_ORDER = {strength: rank for rank, strength in enumerate(Strength)}


@dataclass(frozen=True)
class Finding:
    """One piece of provenance evidence.

    ``value`` is what was found (a digital source type code, a generator name, a camera model); ``basis`` says
    what it rests on, e.g. ``"XMP Iptc4xmpExt:DigitalSourceType"``; ``detail`` holds extra strings (signer,
    validation codes, chunk keys) for the report. Neither field ever holds prompts or image data.
    """

    kind: FindingKind
    value: str
    strength: Strength
    basis: str
    detail: Mapping[str, str] = field(default_factory=dict)


_SOURCE_TYPE_STRENGTH: Mapping[str, Strength] = {
    "trainedAlgorithmicMedia": Strength.PROVES_AI,
    "compositeWithTrainedAlgorithmicMedia": Strength.SUGGESTS_AI,
    "algorithmicMedia": Strength.SUGGESTS_AI,
    "compositeSynthetic": Strength.SUGGESTS_AI,
    "digitalCapture": Strength.SUGGESTS_CAMERA,
    "computationalCapture": Strength.SUGGESTS_CAMERA,
    "negativeFilm": Strength.SUGGESTS_CAMERA,
    "positiveFilm": Strength.SUGGESTS_CAMERA,
}


def source_type_code(value: str) -> str:
    """The bare IPTC code of a digital source type given as a URI or as a code (``trainedAlgorithmicMedia``)."""
    text = value.strip()
    for prefix in IPTC_SOURCE_TYPE_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :].strip("/")
    return text


def source_type_strength(value: str) -> Strength | None:
    """The strength a declared digital source type carries, or None when it says nothing about generation."""
    return _SOURCE_TYPE_STRENGTH.get(source_type_code(value))


def strongest_first(findings: Iterable[Finding]) -> list[Finding]:
    """Findings without duplicates (same kind, value and strength), strongest first, otherwise in input order."""
    unique: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.kind, finding.value, finding.strength), finding)
    return sorted(unique.values(), key=lambda f: _STRENGTH_ORDER[f.strength])


def proves_ai(findings: Iterable[Finding]) -> bool:
    """Whether any finding proves AI generation (a valid C2PA or IPTC declaration)."""
    return any(f.strength is Strength.PROVES_AI for f in findings)
