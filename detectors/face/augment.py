"""Training-time augmentation, applied identically to both classes (numpy + OpenCV only).

Caveats first: every augmented sample is re-encoded as JPEG at a random quality, from a face region
rescaled to a random face scale, so that neither the source's resolution nor its JPEG settings
survive as a class cue. ``face_region`` returns the encoded bytes too, for the shortcut check
(a model on file size and quantisation tables alone must be near chance).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from detectors.face.alignment import EYE_GAP, anchor_points, jitter_matrix

REGION_EYE_GAPS = 7.0
JPEG_QUALITY = (50, 95)
SCALE_RANGE = (0.5, 1.5)
BLUR_PROBABILITY = 0.3


@dataclass(frozen=True)
class AugmentedRegion:
    """A re-encoded face region: decoded RGB pixels, landmarks in its coordinates, JPEG bytes, quality."""

    pixels: np.ndarray
    landmarks: np.ndarray
    jpeg: bytes
    quality: int


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, bytes]:
    """Encode as baseline 4:2:0 JPEG at ``quality`` and decode again."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    data = buf.tobytes()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("JPEG decoding failed")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), data


def face_region(pixels: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, crop_size: int) -> AugmentedRegion:
    """Square region around the face, rescaled so the eye gap is 0.5-1.5x the model's, blurred, re-encoded."""
    anchors = anchor_points(landmarks)
    gap = float(np.linalg.norm(anchors[1] - anchors[0])) or 1.0
    target_gap = EYE_GAP * crop_size * rng.uniform(*SCALE_RANGE)
    scale = target_gap / gap
    side = round(REGION_EYE_GAPS * target_gap)
    centre = anchors.mean(axis=0)
    matrix = np.array([[scale, 0.0, side / 2 - scale * centre[0]], [0.0, scale, side / 2 - scale * centre[1]]])
    image = pixels
    if scale < 0.5:
        factor = 1.0 / (2.0 * scale)
        height, width = pixels.shape[:2]
        new_w, new_h = max(1, round(width / factor)), max(1, round(height / factor))
        image = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA)
        matrix[:, :2] *= width / new_w
    region = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < BLUR_PROBABILITY:
        region = cv2.GaussianBlur(region, (0, 0), rng.uniform(0.3, 0.8))
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    decoded, data = jpeg_roundtrip(region, quality)
    points = np.asarray(landmarks, dtype=np.float64) * scale + (side / 2 - scale * centre)
    return AugmentedRegion(pixels=decoded, landmarks=points.astype(np.float32), jpeg=data, quality=quality)


def random_jitter(rng: np.random.Generator, crop_size: int) -> np.ndarray:
    """Crop jitter: shift up to 4% of the crop, scale 0.93-1.07, rotation up to 6 degrees."""
    shift = (float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04)))
    return jitter_matrix(crop_size, shift, float(rng.uniform(0.93, 1.07)), float(rng.uniform(-6, 6)))


def degrade_image(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole-image degradation for validation: resize 0.5-1.5x, optional blur, JPEG 50-95."""
    height, width = pixels.shape[:2]
    scale = rng.uniform(*SCALE_RANGE)
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    image = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if rng.random() < BLUR_PROBABILITY:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.8))
    decoded, _ = jpeg_roundtrip(image, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    return decoded


def q60_half(pixels: np.ndarray) -> np.ndarray:
    """The robustness condition of the issue: half size (area), then JPEG quality 60."""
    height, width = pixels.shape[:2]
    half = cv2.resize(pixels, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
    return jpeg_roundtrip(half, 60)[0]
