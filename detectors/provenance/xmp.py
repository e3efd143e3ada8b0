"""IPTC ``DigitalSourceType`` declared in XMP packets.

Caveats first: XMP is unsigned, so anyone can write or strip it; a declaration of ``trainedAlgorithmicMedia`` is
still treated as proof (see :mod:`.findings`) because nobody writes it by accident. Packets are found by scanning
the raw bytes for ``<x:xmpmeta`` ... ``</x:xmpmeta>`` (XMP is stored uncompressed in JPEG APP1, PNG iTXt, WebP,
TIFF and HEIF; compressed PNG iTXt packets are inflated first), at most :data:`MAX_PACKETS` of them, each at most
:data:`MAX_PACKET_BYTES`; larger packets are ignored. Packets are parsed with defusedxml (no DTDs, no entity
expansion, no external entities); a packet that is not well-formed XML yields nothing.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET  # noqa: N817 - only for the Element type; parsing goes through defusedxml
from collections.abc import Iterator

from defusedxml import ElementTree as SafeET

from .findings import Finding, FindingKind, Strength, source_type_code, source_type_strength
from .png_text import png_text_chunks

logger = logging.getLogger(__name__)

MAX_PACKET_BYTES = 1_000_000
MAX_PACKETS = 8
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_TAG = f"{{{IPTC_EXT_NS}}}DigitalSourceType"
_RESOURCE = f"{{{RDF_NS}}}resource"
PNG_XMP_KEY = "XML:com.adobe.xmp"
_OPENERS = (b"<x:xmpmeta", b"<x:xapmeta")
_CLOSERS = (b"</x:xmpmeta>", b"</x:xapmeta>")


def xmp_packets(data: bytes) -> Iterator[bytes]:
    """XMP packets in ``data`` (``<x:xmpmeta>`` elements), oversized ones skipped."""
    for opener, closer in zip(_OPENERS, _CLOSERS, strict=True):
        start = data.find(opener)
        found = 0
        while start >= 0 and found < MAX_PACKETS:
            end = data.find(closer, start)
            if end < 0:
                logger.debug("XMP packet without its end tag ignored")
                return
            end += len(closer)
            if end - start > MAX_PACKET_BYTES:
                logger.debug("XMP packet of %d bytes ignored (cap %d)", end - start, MAX_PACKET_BYTES)
            else:
                found += 1
                yield data[start:end]
            start = data.find(opener, end)


def declared_source_types(packet: bytes) -> list[str]:
    """The ``Iptc4xmpExt:DigitalSourceType`` values in one packet (element text, ``rdf:resource`` or attribute).

    Raises whatever defusedxml raises on malformed or dangerous XML (the caller logs and moves on).
    """
    root = SafeET.fromstring(packet)
    values: list[str] = []
    for element in root.iter():
        values.extend(_values_of(element))
    return [v for v in (value.strip() for value in values) if v]


def _values_of(element: ET.Element) -> list[str]:
    values = [element.attrib[_TAG]] if _TAG in element.attrib else []
    if element.tag == _TAG:
        values.append(element.attrib.get(_RESOURCE) or element.text or "")
    return values


def read_xmp(data: bytes) -> list[Finding]:
    """Findings from every XMP packet's ``DigitalSourceType``; malformed packets are skipped (logged at debug)."""
    findings: list[Finding] = []
    for packet in [*xmp_packets(data), *_compressed_png_packets(data)]:
        try:
            declared = declared_source_types(packet)
        except Exception as exc:  # defusedxml raises several unrelated types (ParseError, DTDForbidden, ...)
            logger.debug("unreadable XMP packet skipped: %s", type(exc).__name__)
            continue
        for value in declared:
            strength = source_type_strength(value)
            if strength is not None:
                findings.append(_finding(value, strength))
    return findings


def _compressed_png_packets(data: bytes) -> list[bytes]:
    """XMP in compressed PNG iTXt chunks, which the raw scan cannot see (uncompressed ones it already saw)."""
    texts = [text.encode() for key, text in png_text_chunks(data) if key == PNG_XMP_KEY]
    return [packet for packet in texts if packet not in data and len(packet) <= MAX_PACKET_BYTES]


def _finding(value: str, strength: Strength) -> Finding:
    return Finding(
        kind=FindingKind.IPTC_DIGITAL_SOURCE_TYPE,
        value=source_type_code(value),
        strength=strength,
        basis="XMP Iptc4xmpExt:DigitalSourceType (unsigned metadata)",
        detail={"declared": value[:200]},
    )
