"""The numpy evaluation of dlib's face-descriptor network gives dlib's own descriptors (stored ones stay comparable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.face.embedding import CHIP_SIZE, FaceNetFormatError, NumpyFaceNet
from detectors.face.finding import EMBEDDING_FILE, FaceEmbedder, dlib_model_path


@pytest.fixture(scope="module")
def net() -> NumpyFaceNet:
    return NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))


def _chip(seed: int) -> np.ndarray:
    """A face-like chip: smooth shading plus grain (the network's input is any 150 x 150 RGB image)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, CHIP_SIZE)
    base = np.stack([ramp[None, :].repeat(CHIP_SIZE, 0), ramp[:, None].repeat(CHIP_SIZE, 1),
                     np.full((CHIP_SIZE, CHIP_SIZE), 110.0)], -1)
    return np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)


def test_descriptors_match_dlib(net: NumpyFaceNet) -> None:
    import dlib

    reference = dlib.face_recognition_model_v1(str(dlib_model_path(EMBEDDING_FILE)))
    for seed in range(3):
        chip = _chip(seed)
        expected = np.asarray(reference.compute_face_descriptor(chip))
        assert np.abs(net.descriptor(chip) - expected).max() < 1e-4


def test_wrong_chip_size_is_refused(net: NumpyFaceNet) -> None:
    with pytest.raises(ValueError, match="150x150"):
        net.descriptor(np.zeros((96, 96, 3), np.uint8))


def test_another_dlib_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.dat"
    path.write_bytes(b"\x01\x01\x01\x0dloss_metric_2" + bytes(64))
    with pytest.raises(FaceNetFormatError):
        NumpyFaceNet.load(path)


def test_embedder_uses_landmarks_in_the_given_image(net: NumpyFaceNet) -> None:
    """Landmarks scaled with the image give nearly the same descriptor (the chip is re-cut from either size)."""
    import cv2

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8), (0, 0), 3)
    points = np.array([(150 + 100 * np.cos(a), 200 + 100 * np.sin(a)) for a in np.linspace(0, 6.0, 68)], np.float32)
    embedder = FaceEmbedder()
    full = np.asarray(embedder.embed(image, points))
    half = np.asarray(embedder.embed(cv2.resize(image, (200, 200), interpolation=cv2.INTER_AREA), points / 2))
    assert full.shape == (128,)
    assert np.linalg.norm(full - half) < 0.35


def test_finder_lends_each_concurrent_call_a_detector_made_at_load() -> None:
    """Making a HOG detector costs ~0.8 s of CPU: load() makes one per worker, and find() only borrows them."""
    from concurrent.futures import ThreadPoolExecutor

    from detectors.face.finding import FaceFinder

    finder = FaceFinder()
    finder.load(copies=2)
    image = np.full((300, 300, 3), 128, np.uint8)
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert all(found == [] for found in pool.map(finder.find, [image] * 6))
    assert finder._free.qsize() == 2
