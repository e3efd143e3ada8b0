"""Face alignment: a similarity transform from eye and mouth centres to a fixed template.

Caveats first: the template puts the eyes at 30% of the crop width apart (``EYE_GAP``), so a
``size``-px crop up-samples any face whose eye distance is below ``EYE_GAP * size`` px; the
detector abstains on faces too small to judge (see the manifest's ``min_evidence``). ``zoom`` < 1
widens the field of view (0.5 = twice the extent, used for the background/context crop).
"""

from __future__ import annotations

import cv2
import numpy as np

EYE_GAP = 0.30
EYE_Y = 0.40
MOUTH_Y = 0.72
_TEMPLATE = np.array([[0.5 - EYE_GAP / 2, EYE_Y], [0.5 + EYE_GAP / 2, EYE_Y], [0.5, MOUTH_Y]], dtype=np.float64)


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """Left eye, right eye and mouth centres (3 x 2) from 68 dlib landmarks."""
    points = np.asarray(landmarks, dtype=np.float64)
    return np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[48:68].mean(axis=0)])


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2 x 3 similarity (rotation, uniform scale, shift) mapping ``src`` onto ``dst``."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    denom = float((s**2).sum()) or 1e-9
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / denom
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom
    rot = np.array([[a, -b], [b, a]])
    shift = dst_mean - rot @ src_mean
    return np.hstack([rot, shift[:, None]])


def jitter_matrix(size: int, shift: tuple[float, float], scale: float, angle_deg: float) -> np.ndarray:
    """3 x 3 perturbation about the crop centre (shift in fractions of ``size``), for augmentation."""
    centre = size / 2.0
    rot = cv2.getRotationMatrix2D((centre, centre), angle_deg, scale)
    rot[:, 2] += np.array(shift) * size
    return np.vstack([rot, [0.0, 0.0, 1.0]])


def align_matrix(landmarks: np.ndarray, size: int, zoom: float = 1.0, jitter: np.ndarray | None = None) -> np.ndarray:
    """2 x 3 matrix mapping submitted-image pixels to the aligned crop."""
    template = (0.5 + (_TEMPLATE - 0.5) * zoom) * size
    matrix = np.vstack([similarity_matrix(anchor_points(landmarks), template), [0.0, 0.0, 1.0]])
    if jitter is not None:
        matrix = jitter @ matrix
    return matrix[:2]


def _source_window(pixels: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``pixels`` the crop can touch (plus 2 px), and the matrix shifted to it."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inverse.T
    height, width = pixels.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 3, x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 3, y0 + 1, height))
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return pixels[y0:y1, x0:x1], shifted


def align_face(
    pixels: np.ndarray, landmarks: np.ndarray, size: int, zoom: float = 1.0, jitter: np.ndarray | None = None
) -> np.ndarray:
    """Aligned RGB uint8 crop (size x size x 3); areas outside the image are edge-replicated.

    Down-scaling uses area averaging on a pre-shrunk copy so that large faces are not aliased.
    """
    matrix = align_matrix(landmarks, size, zoom, jitter)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    pixels, matrix = _source_window(pixels, matrix, size)
    image = pixels
    if scale < 0.5:
        factor = 1.0 / (2.0 * scale)
        height, width = pixels.shape[:2]
        new_w, new_h = max(1, round(width / factor)), max(1, round(height / factor))
        image = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA)
        matrix = matrix.copy()
        matrix[:, :2] *= width / new_w
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
