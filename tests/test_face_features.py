"""The face cues' spectra: the cached per-size layout gives exactly the plain computation's values."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.face.features import SPECTRUM_BINS, azimuthal_spectrum, spectral_features


def plain_spectrum(gray: np.ndarray, bins: int) -> np.ndarray:
    """Azimuthal average of the windowed log-FFT magnitude, everything computed afresh."""
    size = gray.shape[0]
    freq = np.fft.fftshift(np.fft.fftfreq(size))
    index = np.clip((np.hypot(*np.meshgrid(freq, freq, indexing="ij")) / 0.5 * bins).astype(np.int64), 0, bins).ravel()
    centred = (gray - gray.mean()) * np.outer(np.hanning(size), np.hanning(size))
    magnitude = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(centred)))).ravel()
    sums = np.bincount(index, weights=magnitude, minlength=bins + 1)[:bins]
    profile = sums / np.maximum(np.bincount(index, minlength=bins + 1)[:bins], 1)
    return np.asarray(profile - profile.mean(), dtype=np.float32)


@pytest.mark.parametrize(("size", "bins"), [(96, SPECTRUM_BINS), (128, SPECTRUM_BINS), (33, 8)])
def test_spectrum_equals_the_plain_computation_on_repeated_calls(size: int, bins: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(3):  # the second and third calls read the cached layout
        gray = rng.uniform(0, 255, (size, size)).astype(np.float32)
        assert np.array_equal(azimuthal_spectrum(gray, bins), plain_spectrum(gray, bins))


def test_spectral_features_concatenate_face_and_context() -> None:
    rng = np.random.default_rng(1)
    face, context = (rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(2))

    features = spectral_features(face, context)

    assert features.shape == (2 * SPECTRUM_BINS,)
    gray = face.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert np.array_equal(features[:SPECTRUM_BINS], plain_spectrum(gray, SPECTRUM_BINS))
