"""Synthetic-headshot detection: face finding, alignment, a small CNN + cue ensemble (ONNX).

Public names: :class:`FaceDetector`, :func:`build_face_detector`, :func:`face_embedding`.
Inference never imports torch; training lives in ``detectors.face.training``.
"""

from detectors.face.detector import FaceDetector, build_face_detector
from detectors.face.finding import face_embedding

__all__ = ["FaceDetector", "build_face_detector", "face_embedding"]
