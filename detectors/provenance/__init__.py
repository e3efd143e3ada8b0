"""Provenance evidence read from an image's original bytes, and perceptual hashes for headshot reuse.

Caveats first: provenance is read from the upload *as received* (before any resize or re-encode); missing
metadata proves nothing and yields no finding. Only a C2PA manifest with a valid signature, or an IPTC XMP
``DigitalSourceType``, declaring ``trainedAlgorithmicMedia`` proves AI generation (``Strength.PROVES_AI``);
everything else only suggests. ``read_provenance`` never raises: corrupt or oversized metadata is skipped and
logged at debug level.

Modules, one per source: :mod:`.credentials` (C2PA), :mod:`.xmp` (IPTC digital source type), :mod:`.exif`
(Software, Make/Model, generator comments), :mod:`.png_text` (generator text chunks), :mod:`.watermark`
(Stable Diffusion's DWT-DCT watermark), :mod:`.generators` (generator names), :mod:`.hashing` (pHash).
"""

from .findings import Finding, FindingKind, Strength, proves_ai, source_type_strength
from .hashing import hash_distance, perceptual_hash
from .reader import read_provenance, sniff_mime, watermark_pixels

__all__ = [
    "Finding",
    "FindingKind",
    "Strength",
    "hash_distance",
    "perceptual_hash",
    "proves_ai",
    "read_provenance",
    "sniff_mime",
    "source_type_strength",
    "watermark_pixels",
]
