"""The function-word skeleton of a text and the hashes of its 1-4-grams: the n-gram model's third feature block.

Caveats first: it reads the same tokens as the word block (``features._TOKEN_RE`` on the canonical text) and maps
each one on its own, so a row's skeleton n-grams are slices of its document's, as for the other blocks. Stopwords
and punctuation stay as they are, a token that starts with a (folded) digit becomes ``<n>``, and every other word
becomes ``_`` plus its last three characters (``-ing``, ``-ely``, ``-ion``): what is left is syntax and morphology,
with most of the topic gone. Hashes: CRC-32 of each skeleton token (``hashing.crc_hashes``), combined left to
right with a multiplicative mix per n-gram length and finished with murmur3's finaliser; never Python's ``hash``.
"""

from __future__ import annotations

import numpy as np

from detectors.text.hashing import MASK32, crc_hashes, fmix32
from detectors.text.stopwords import STOPWORDS

ORDERS = (1, 2, 3, 4)
SUFFIX_CHARS = 3
_MIX = np.uint64(0x9E3779B1)
_SEED = 0x60  # xor-ed with the n-gram length before the finaliser, apart from the word block's 0x51 / 0x52


def skeleton_token(token: str) -> str:
    """The skeleton form of one canonical token."""
    if token in STOPWORDS or not (token[0].isalnum() or token[0] == "_"):
        return token
    if token[0] == "0":
        return "<n>"
    return "_" + token[-SUFFIX_CHARS:]


def token_hashes(tokens: list[str]) -> np.ndarray:
    """CRC-32 (uint64) of each token's skeleton form."""
    return crc_hashes([skeleton_token(t) for t in tokens])


def ngram_hashes(h: np.ndarray, n: int) -> np.ndarray:
    """32-bit hashes of every ``n``-gram of the skeleton token hashes ``h`` (empty when too short)."""
    count = h.size - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    acc = h[:count].copy()
    for k in range(1, n):
        acc = ((acc * _MIX) & MASK32) ^ h[k : k + count]
    return fmix32(acc ^ np.uint64(_SEED + n))


def skeleton_hashes(tokens: list[str]) -> np.ndarray:
    """Hashes of the skeleton 1-, 2-, 3- and 4-grams of ``tokens``, in that order."""
    h = token_hashes(tokens)
    return np.concatenate([ngram_hashes(h, n) for n in ORDERS])
