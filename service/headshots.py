"""Headshot evidence beside the classifier: provenance findings, perceptual hash, and reuse matches.

Caveats first: provenance is read from the original upload bytes; missing metadata yields no
finding and never moves a score. Reuse compares a new headshot with earlier ones stored under
*other* bylines, by face embedding (Euclidean distance of dlib's 128-d descriptors) when both have
one, and by perceptual-hash Hamming distance otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.provenance import hash_distance, perceptual_hash, read_provenance
from service.config import Settings
from service.schemas import ProvenanceFinding, ReuseMatch
from service.store.repository import HeadshotFingerprint

PROVES_AI = "proves_ai"


def provenance(original: bytes, full_bgr: np.ndarray | None = None) -> list[ProvenanceFinding]:
    """Findings in the upload's bytes; ``full_bgr`` is the decode the watermark reader wants, when the upload's
    decode already made it (``DecodedImage.full_bgr``)."""
    return [
        ProvenanceFinding(kind=str(f.kind), value=f.value, strength=str(f.strength), basis=f.basis)
        for f in read_provenance(original, bgr=full_bgr)
    ]


def phash(pixels: np.ndarray) -> str:
    return perceptual_hash(pixels)


def embedding_bytes(embedding: Sequence[float] | None) -> bytes | None:
    return None if embedding is None else np.asarray(embedding, dtype=np.float32).tobytes()


def find_reuse(
    phash_hex: str,
    embedding: Sequence[float] | None,
    candidates: Sequence[HeadshotFingerprint],
    settings: Settings,
) -> list[ReuseMatch]:
    """Earlier headshots that show the same face (or image) under a different byline."""
    matches: list[ReuseMatch] = []
    vector = None if embedding is None else np.asarray(embedding, dtype=np.float32)
    for cand in candidates:
        match = _embedding_match(vector, cand, settings) or _phash_match(phash_hex, cand, settings)
        if match is not None:
            matches.append(match)
    matches.sort(key=lambda m: -m.similarity)
    return matches[:20]


def _embedding_match(vector: np.ndarray | None, cand: HeadshotFingerprint, settings: Settings) -> ReuseMatch | None:
    if vector is None or cand.embedding is None:
        return None
    other = np.frombuffer(cand.embedding, dtype=np.float32)
    if other.shape != vector.shape:
        return None
    distance = float(np.linalg.norm(vector - other))
    if distance > settings.reuse_embedding_max_distance:
        return None
    return ReuseMatch(check_id=cand.check_id, byline=cand.byline, headshot_index=cand.idx,
                      similarity=round(1.0 - distance, 4), method="face_embedding")


def _phash_match(phash_hex: str, cand: HeadshotFingerprint, settings: Settings) -> ReuseMatch | None:
    if cand.phash is None:
        return None
    distance = hash_distance(phash_hex, cand.phash)
    if distance > settings.reuse_phash_max_distance:
        return None
    return ReuseMatch(check_id=cand.check_id, byline=cand.byline, headshot_index=cand.idx,
                      similarity=round(1.0 - distance / 64.0, 4), method="perceptual_hash")
