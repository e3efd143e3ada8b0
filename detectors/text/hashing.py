"""Deterministic 32-bit hashing of tokens for the n-gram features: CRC-32 per token, murmur3's finaliser.

Caveats first: never Python's randomised ``hash``, so features are identical across processes and machines. The
token CRCs are memoised per process in a bounded table that is swapped for an empty one when full (never cleared
in place), so threads sharing it always find their tokens.
"""

from __future__ import annotations

import zlib

import numpy as np

MASK32 = np.uint64(0xFFFFFFFF)
CRC_TABLE_SIZE = 1 << 16  # memoised token CRCs per process (a few MB)
_CRC_TABLE: list[dict[str, int]] = [{}]


def fmix32(h: np.ndarray) -> np.ndarray:
    """Murmur3 32-bit finaliser on a uint64 array holding 32-bit values."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & MASK32
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & MASK32
    return h ^ (h >> np.uint64(16))


def crc_hashes(tokens: list[str]) -> np.ndarray:
    """CRC-32 of each token's UTF-8 bytes (uint64), memoised per process."""
    table = _CRC_TABLE[0]
    missing = set(tokens).difference(table)
    if missing:
        if len(table) + len(missing) > CRC_TABLE_SIZE:
            table = _CRC_TABLE[0] = {}
            missing = set(tokens)
        table.update({t: zlib.crc32(t.encode("utf-8")) for t in missing})
    return np.fromiter(map(table.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
