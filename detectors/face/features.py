"""Engineered cues: frequency spectra of the face and its surroundings, and eye position in the frame.

Caveats first: spectra are computed on the *aligned* crops (fixed size), never at the submitted
resolution, so that image size and the source's JPEG settings are not measured directly. The eye
position cue separates StyleGAN output from ordinary headshots but not from FFHQ-aligned real photos
(they share the alignment) and it misses diffusion faces; the stacker weighs it accordingly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SPECTRUM_BINS = 16
EYE_FEATURES = 6


def _radial_index(size: int, bins: int) -> np.ndarray:
    freq = np.fft.fftshift(np.fft.fftfreq(size))
    radius = np.hypot(*np.meshgrid(freq, freq, indexing="ij")) / 0.5
    return np.asarray(np.clip((radius * bins).astype(np.int64), 0, bins), dtype=np.int64)


@lru_cache(maxsize=8)
def _spectrum_layout(size: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Hann window, flat radial bin index, pixels per bin) for one crop size: fixed per size, so computed once
    (read-only; ~0.6 ms per call otherwise)."""
    window = np.outer(np.hanning(size), np.hanning(size))
    index = _radial_index(size, bins).ravel()
    counts = np.bincount(index, minlength=bins + 1)[:bins]
    for array in (window, index, counts):
        array.flags.writeable = False
    return window, index, counts


def azimuthal_spectrum(gray: np.ndarray, bins: int = SPECTRUM_BINS) -> np.ndarray:
    """Azimuthal average of the log FFT magnitude of a square float image, ``bins`` radial bins.

    The mean over bins is removed (overall contrast is not a cue); the corner band beyond the
    Nyquist circle is dropped.
    """
    window, index, counts = _spectrum_layout(gray.shape[0], bins)
    centred = (gray - gray.mean()) * window
    magnitude = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(centred))))
    sums = np.bincount(index, weights=magnitude.ravel(), minlength=bins + 1)[:bins]
    profile = sums / np.maximum(counts, 1)
    return np.asarray(profile - profile.mean(), dtype=np.float32)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def spectral_features(face_crop: np.ndarray, context_crop: np.ndarray) -> np.ndarray:
    """Spectra of the aligned face crop and of the wider context crop (2 * SPECTRUM_BINS values)."""
    return np.concatenate([azimuthal_spectrum(_gray(face_crop)), azimuthal_spectrum(_gray(context_crop))])


def eye_features(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Eye centres as fractions of the frame, eye distance / width and roll (radians): 6 values."""
    points = np.asarray(landmarks, dtype=np.float64)
    left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    frame = np.array([width, height], dtype=np.float64)
    gap = right - left
    roll = float(np.arctan2(gap[1], gap[0]))
    return np.array([*(left / frame), *(right / frame), np.linalg.norm(gap) / width, roll], dtype=np.float32)
