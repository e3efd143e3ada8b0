"""Perceptual hash (pHash) of a headshot, for finding the same picture reused under another byline.

Caveats first: pHash matches the same *picture* through resizing and recompression, not the same *face* in a
different photo (that needs a face embedding), and it is not robust to large crops or mirroring. The hash is
bit-identical to ``imagehash.phash`` (hash_size 8, highfreq_factor 4): greyscale (Pillow's ITU-R 601-2 luma),
Lanczos resize to 32x32, unnormalised 2-D DCT-II, top-left 8x8 coefficients compared with their median,
64 bits as 16 hex digits (row-major, most significant first).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 8
IMG_SIZE = HASH_SIZE * 4
HASH_HEX_DIGITS = HASH_SIZE * HASH_SIZE // 4


def _dct_matrix(size: int) -> np.ndarray:
    """Unnormalised DCT-II (as scipy.fftpack.dct): ``y[k] = 2 * sum_n x[n] cos(pi k (2n+1) / 2N)``."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    return np.asarray(2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * size)))


_DCT = _dct_matrix(IMG_SIZE)


def perceptual_hash(pixels_or_image: np.ndarray | Image.Image) -> str:
    """The 64-bit pHash as 16 lowercase hex digits.

    Accepts a PIL image or a uint8 array of shape (H, W) or (H, W, 3). Raises ValueError for other shapes.
    """
    image = pixels_or_image if isinstance(pixels_or_image, Image.Image) else _to_image(pixels_or_image)
    grey = np.asarray(image.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    coefficients = (_DCT @ grey @ _DCT.T)[:HASH_SIZE, :HASH_SIZE]
    bits = (coefficients > np.median(coefficients)).flatten()
    value = int("".join("1" if bit else "0" for bit in bits), 2)
    return f"{value:0{HASH_HEX_DIGITS}x}"


def _to_image(pixels: np.ndarray) -> Image.Image:
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"expected an (H, W) or (H, W, 3) array, got shape {pixels.shape}")
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def hash_distance(a: str, b: str) -> int:
    """Hamming distance (0-64) between two hashes from :func:`perceptual_hash`. Raises ValueError if malformed."""
    if len(a) != HASH_HEX_DIGITS or len(b) != HASH_HEX_DIGITS:
        raise ValueError(f"perceptual hashes are {HASH_HEX_DIGITS} hex digits")
    return (int(a, 16) ^ int(b, 16)).bit_count()
