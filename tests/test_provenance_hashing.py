"""Perceptual hash: identical to imagehash.phash, stable under resizing and JPEG, different for other pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detectors.provenance import hash_distance, perceptual_hash


def picture(seed: int, size: int = 256) -> np.ndarray:
    """A smooth random picture (low-frequency content, like a face photo at pHash's 32x32 scale)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


def jpeg_roundtrip(rgb: np.ndarray, quality: int, size: int) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR).save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_imagehash(seed: int) -> None:
    imagehash = pytest.importorskip("imagehash")
    image = Image.fromarray(picture(seed))

    assert perceptual_hash(image) == str(imagehash.phash(image))


def test_array_and_image_inputs_agree() -> None:
    rgb = picture(3)

    assert perceptual_hash(rgb) == perceptual_hash(Image.fromarray(rgb))
    assert len(perceptual_hash(rgb[:, :, 0])) == 16


def test_survives_resize_and_jpeg_q70() -> None:
    rgb = picture(4)

    assert hash_distance(perceptual_hash(rgb), perceptual_hash(jpeg_roundtrip(rgb, 70, 160))) <= 6


def test_different_pictures_are_far_apart() -> None:
    assert hash_distance(perceptual_hash(picture(5)), perceptual_hash(picture(6))) > 16


def test_hash_distance_validates() -> None:
    assert hash_distance("ffffffffffffffff", "0000000000000000") == 64
    assert hash_distance("00000000000000f0", "0000000000000000") == 4
    with pytest.raises(ValueError, match="16 hex digits"):
        hash_distance("abc", "0000000000000000")
    with pytest.raises(ValueError, match="shape"):
        perceptual_hash(np.zeros((4, 4, 4), dtype=np.uint8))
