"""From pixels to model inputs: find the face, decide whether to abstain, align and crop, compute cues.

Caveats first: this is the single path shared by inference (``FaceDetector.preprocess``) and by
validation/test scoring in training, so that thresholds are fitted on exactly what the service
sees. It never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.contract import Box
from detectors.face.alignment import EYE_GAP, align_face
from detectors.face.features import eye_features, spectral_features
from detectors.face.finding import FaceFinder, FoundFace

CROP_SIZE = 96
CONTEXT_ZOOM = 0.5
V2_CROP_SIZE = 128
V2_ZOOM = 0.7
MULTIPLE_FACE_RATIO = 0.5

NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
FACE_TOO_SMALL = "face_too_small"


@dataclass(frozen=True)
class CropSpec:
    """An extra aligned crop for a second CNN: ``size`` px square, ``zoom`` as in ``align_face``."""

    size: int
    zoom: float


V2_CROP = CropSpec(size=V2_CROP_SIZE, zoom=V2_ZOOM)


@dataclass(frozen=True)
class FaceInputs:
    """Model inputs for one face: the aligned crop (RGB uint8), the engineered cues (float32) and, when
    asked for, the wider crop of a second CNN (``wide_crop``, RGB uint8, e.g. v2's 128 px at zoom 0.7)."""

    crop: np.ndarray
    cues: np.ndarray
    wide_crop: np.ndarray | None = None


def face_inputs(
    pixels: np.ndarray,
    landmarks: np.ndarray,
    jitter: np.ndarray | None = None,
    crop_size: int = CROP_SIZE,
    wide: CropSpec | None = None,
) -> FaceInputs:
    """Aligned crop plus spectral and eye-position cues for one face (landmarks in ``pixels`` coords), and
    the ``wide`` crop when given (None leaves v1's behaviour unchanged)."""
    crop = align_face(pixels, landmarks, crop_size, jitter=jitter)
    context = align_face(pixels, landmarks, crop_size, zoom=CONTEXT_ZOOM, jitter=jitter)
    height, width = pixels.shape[:2]
    cues = np.concatenate([spectral_features(crop, context), eye_features(landmarks, width, height)])
    wide_crop = None if wide is None else align_face(pixels, landmarks, wide.size, zoom=wide.zoom, jitter=jitter)
    return FaceInputs(crop=crop, cues=cues.astype(np.float32), wide_crop=wide_crop)


@dataclass(frozen=True)
class FaceChoice:
    """The face to judge, or why none is judged (``abstain_reason``)."""

    face: FoundFace | None
    abstain_reason: str | None
    faces_found: int


def choose_face(faces: list[FoundFace], min_face_pixels: float) -> FaceChoice:
    """Largest face, unless none, several of comparable size, or too few pixels (box w * h)."""
    if not faces:
        return FaceChoice(None, NO_FACE, 0)
    largest = faces[0]
    area = largest.box.w * largest.box.h
    if len(faces) > 1 and faces[1].box.w * faces[1].box.h >= MULTIPLE_FACE_RATIO * area:
        return FaceChoice(largest, MULTIPLE_FACES, len(faces))
    if area < min_face_pixels:
        return FaceChoice(largest, FACE_TOO_SMALL, len(faces))
    return FaceChoice(largest, None, len(faces))


def clip_box(box: Box, width: int, height: int) -> Box:
    """``box`` clipped to the image."""
    x0, y0 = min(max(box.x, 0), width - 1), min(max(box.y, 0), height - 1)
    x1, y1 = min(box.x + box.w, width), min(box.y + box.h, height)
    return Box(x=x0, y=y0, w=max(1, x1 - x0), h=max(1, y1 - y0))


def find_and_prepare(
    finder: FaceFinder,
    pixels: np.ndarray,
    min_face_pixels: float,
    crop_size: int = CROP_SIZE,
    wide: CropSpec | None = None,
) -> tuple[FaceChoice, FaceInputs | None]:
    """Find faces, choose one, and compute its inputs (with the ``wide`` crop when given) unless abstaining.

    ``min_face_pixels`` also goes to the finder, which re-finds a coarse-pass face near that size at its
    full working size (so the size abstention is decided as without the coarse pass)."""
    choice = choose_face(finder.find(pixels, min_face_pixels), min_face_pixels)
    if choice.face is None or choice.abstain_reason is not None:
        return choice, None
    return choice, face_inputs(pixels, choice.face.landmarks, crop_size=crop_size, wide=wide)


def min_eye_distance(crop_size: int) -> float:
    """Fewest pixels between the eyes for which a reduced decode loses nothing: the aligned crop is still a
    2x (or more) down-scale, and so is dlib's 150 px embedding chip (eyes ~50-57 px apart there)."""
    return max(2.0 * EYE_GAP * crop_size, 60.0)


def scale_face(face: FoundFace, scale_x: float, scale_y: float) -> FoundFace:
    """``face`` with its box and landmarks multiplied by the given factors (reduced -> submitted pixels)."""
    box = face.box
    scaled = Box(x=round(box.x * scale_x), y=round(box.y * scale_y), w=max(1, round(box.w * scale_x)),
                 h=max(1, round(box.h * scale_y)))
    landmarks = (face.landmarks * np.array([scale_x, scale_y], dtype=np.float32)).astype(np.float32)
    return FoundFace(box=scaled, landmarks=landmarks, score=face.score, found_by=face.found_by)
