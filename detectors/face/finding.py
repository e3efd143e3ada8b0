"""Face finding: dlib's HOG frontal detector on a downscaled copy, then 68-point landmarks.

Caveats first: the HOG detector only sees roughly frontal faces of at least ~80 px in the working
copy (longest side ``work_side`` px); when it finds nothing there, an optional fallback (BlazeFace,
:mod:`detectors.face.blazeface`: tilted, cropped or partly covered faces HOG misses, ~3 ms) is asked next, its
boxes mapped to HOG's box geometry for the landmark model; when that finds nothing too, HOG retries once with
one up-sampling step (faces down to ~40 px, about 4x slower). Every box and landmark returned is in the
*submitted* image's pixel coordinates. Models come from the ``face-recognition-models`` package,
located without importing it (its ``__init__`` needs ``pkg_resources``).
"""

from __future__ import annotations

import importlib.util
import pickle
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.contract import Box, WeightsMissingError
from detectors.face.blazeface import BlazeFace, hog_box
from detectors.face.embedding import CHIP_PADDING, CHIP_SIZE, FaceNet, load_face_net

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
EMBEDDING_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# Coarse first pass (see FaceFinder): how many 5/6 pyramid steps below work_side it scans, the smallest
# largest-face box (px, in the coarse copy) it is trusted with (2x dlib's smallest ~73 px box: a second face of
# half the area is >= 1.4x that window even after each box snaps a pyramid step), and the margin over the
# size abstention's area.
WORK_SIDE = 448  # longest side (px) of the gray copy the HOG detector scans
COARSE_LEVELS = 3
COARSE_TRUST_BOX = 146
COARSE_SIZE_MARGIN = 2.25


def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped by ``face-recognition-models``; raises WeightsMissingError."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissingError("face-recognition-models is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise WeightsMissingError(f"dlib model {path} is missing")
    return path


def gray_copy(pixels: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The greyscale copy the HOG detector scans (longest side ``side`` px: area averaging down, bilinear up) and
    its scale from ``pixels``."""
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), size, interpolation=interp), scale


def hog_rect(box: np.ndarray, scale: float) -> Any:
    """The ``dlib.rectangle`` HOG would draw for a fallback (x0, y0, x1, y1) ``box`` in image pixels, in the
    coordinates of a copy scaled by ``scale`` (see :func:`~detectors.face.blazeface.hog_box`)."""
    import dlib

    cx, cy, side = (v * scale for v in hog_box(box))
    return dlib.rectangle(round(cx - side / 2), round(cy - side / 2), round(cx + side / 2) - 1, round(cy + side / 2) - 1)


@dataclass(frozen=True)
class FoundFace:
    """One face: ``box`` and ``landmarks`` (68 x 2 float32, x then y) in submitted-image pixels."""

    box: Box
    landmarks: np.ndarray
    score: float
    found_by: str = "hog"  # "hog" (dlib) or "blazeface" (the fallback; ``score`` is then its probability)

    @property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(left-in-image, right-in-image) eye centres from landmarks 36-41 and 42-47."""
        return self.landmarks[36:42].mean(axis=0), self.landmarks[42:48].mean(axis=0)

    @property
    def eye_distance(self) -> float:
        left, right = self.eye_centres
        return float(np.linalg.norm(right - left))


class FaceFinder:
    """Finds faces and their landmarks. Thread-safe: dlib's HOG detector keeps scratch buffers, so each
    concurrent call borrows its own copy from a free list. Making the detector costs ~0.5-0.8 s of CPU, so
    :meth:`load` makes it once and further copies are unpickled from it (~2 ms each); the 68-point
    predictor (100 MB, read-only) is shared. dlib releases the GIL while it scans, so two threads use two
    cores.

    Coarse pass: with ``coarse_levels`` > 0 the HOG scan first runs on the ``work_side`` copy shrunk that
    many times by dlib's own 5/6 pyramid step (3: ~259 px, ~1/3 of the scan), i.e. on exactly the pyramid
    levels the ``work_side`` scan would reach for big faces, so its boxes are those levels' boxes. Its
    faces are kept only when the largest box is at least :data:`COARSE_TRUST_BOX` px wide there (so any
    second face with half its area or more is well above dlib's smallest ~73 px window and is found
    too) and its area is at least :data:`COARSE_SIZE_MARGIN` times ``min_face_pixels`` (so a face near the
    size abstention is decided on the ``work_side`` scan, as before). Otherwise the ``work_side`` scan (and
    its up-sampled retry) runs as without the coarse pass. Landmarks are always predicted on the
    ``work_side`` copy, the coarse box mapped up to it."""

    def __init__(self, work_side: int = WORK_SIDE, coarse_levels: int = COARSE_LEVELS,
                 fallback: BlazeFace | None = None) -> None:
        if work_side < 64:
            raise ValueError("work_side must be >= 64")
        if not 0 <= coarse_levels <= 8:
            raise ValueError("coarse_levels must be in 0..8")
        self.work_side = work_side
        self.coarse_levels = coarse_levels
        self.fallback = fallback
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._template: bytes | None = None
        self._predictor: Any = None

    def load(self, copies: int = 1) -> None:
        """Load the landmark model and have ``copies`` HOG detectors ready (one per thread that will call find)."""
        import dlib

        if self._template is None:
            self._template = pickle.dumps(dlib.get_frontal_face_detector())
            self._predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_FILE)))
        for _ in range(max(1, copies) - self._free.qsize()):
            self._free.put(pickle.loads(self._template))  # our own bytes, made just above

    def _borrow(self) -> Any:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            if self._template is None:
                self.load()
                return self._free.get_nowait()
            return pickle.loads(self._template)  # our own bytes, made in load()

    def find(self, pixels: np.ndarray, min_face_pixels: float = 0.0) -> list[FoundFace]:
        """All faces in an RGB uint8 (H, W, 3) image, largest first. ``min_face_pixels`` (box area in
        ``pixels``' coordinates) is the caller's size abstention: a coarse-pass face near it is re-found
        at ``work_side``."""
        gray, scale = gray_copy(pixels, self.work_side)
        detector = self._borrow()
        try:
            found = self._coarse_pass(detector, gray, min_face_pixels * scale * scale)
            found_by = "hog"
            if found is None:
                rects, scores, _ = detector.run(gray, 0, -0.2)
                if not rects and self.fallback is not None:
                    rects, scores = self._fallback_rects(pixels, scale)
                    found_by = "blazeface" if rects else found_by
                if not rects:
                    rects, scores, _ = detector.run(gray, 1, -0.2)
                found = list(zip(rects, (float(s) for s in scores), strict=True))
        finally:
            self._free.put(detector)
        faces = [self._face(gray, rect, score, scale, found_by) for rect, score in found]
        return sorted(faces, key=lambda f: f.box.w * f.box.h, reverse=True)

    def _fallback_rects(self, pixels: np.ndarray, scale: float) -> tuple[list[Any], list[float]]:
        """The fallback's faces as the boxes dlib's HOG detector would draw (see :func:`hog_box`), in the
        ``work_side`` copy's coordinates, with the fallback's probabilities."""
        assert self.fallback is not None
        found = self.fallback.detect(pixels)
        return [hog_rect(d.box, scale) for d in found], [d.score for d in found]

    def _coarse_pass(self, detector: Any, gray: np.ndarray, min_work_pixels: float) -> list[tuple[Any, float]] | None:
        """Faces found ``coarse_levels`` pyramid steps below ``gray``, their boxes in ``gray``'s coordinates, or
        None when the result is not to be trusted (nothing found, largest face too small; see the class
        docstring)."""
        import dlib

        if not self.coarse_levels:
            return None
        pyramid = dlib.pyramid_down(6)
        coarse = gray
        for _ in range(self.coarse_levels):
            coarse = pyramid(coarse)
        if min(coarse.shape) < COARSE_TRUST_BOX:
            return None
        rects, scores, _ = detector.run(coarse, 0, -0.2)
        if not rects:
            return None
        boxes = [pyramid.rect_up(rect, self.coarse_levels) for rect in rects]
        largest = max(range(len(rects)), key=lambda i: rects[i].width() * rects[i].height())
        if min(rects[largest].width(), rects[largest].height()) < COARSE_TRUST_BOX \
                or boxes[largest].width() * boxes[largest].height() < COARSE_SIZE_MARGIN * min_work_pixels:
            return None
        return [(box, float(score)) for box, score in zip(boxes, scores, strict=True)]

    def _face(self, gray: np.ndarray, rect: Any, score: float, scale: float, found_by: str = "hog") -> FoundFace:
        shape = self._predictor(gray, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32) / scale
        box = Box(
            x=max(0, round(rect.left() / scale)),
            y=max(0, round(rect.top() / scale)),
            w=max(1, round(rect.width() / scale)),
            h=max(1, round(rect.height() / scale)),
        )
        return FoundFace(box=box, landmarks=points, score=score, found_by=found_by)


class FaceEmbedder:
    """dlib's 128-d face descriptor: dlib cuts the 150 px face chip, ONNX Runtime evaluates dlib's network (~10 ms).

    Caveats first: the network runs on the calling thread (one ONNX Runtime thread), so a descriptor costs
    one core for ~9-10 ms, runs beside other checks on the other cores, and its CPU time is seen by
    ``time.thread_time`` (the energy estimate). :meth:`load` limits the process's BLAS (numpy's OpenBLAS) to
    one thread, for the load-time check against the numpy evaluation and for its fallback to numpy (~25 ms)
    should ONNX Runtime disagree (see :func:`~detectors.face.embedding.load_face_net`). Thread-safe after
    :meth:`load` (read-only weights; dlib's chip extraction holds no state).
    """

    def __init__(self) -> None:
        self._net: FaceNet | None = None
        self._predictor: Any = None

    def load(self) -> None:
        """Read dlib's models and build the ONNX Runtime session now (about 1 s), so that the first check does not pay for it."""
        import dlib

        if self._net is None:
            self._net = load_face_net(dlib_model_path(EMBEDDING_FILE))
            self._predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_FILE)))

    def embed(self, pixels: np.ndarray, face: Box | np.ndarray) -> tuple[float, ...]:
        """Descriptor of the face given by a Box or by 68 landmarks (in ``pixels``' coordinates).

        ``pixels`` may be a reduced copy of the submitted image as long as the face keeps at least ~60 px
        between the eyes (the chip is 150 px with the eyes ~50 px apart).
        """
        chip = self.chip(pixels, face)
        net = self._net
        if net is None:  # pragma: no cover - chip() loads it
            raise RuntimeError("FaceEmbedder.load() failed")
        return tuple(float(v) for v in net.descriptor(chip))

    def chip(self, pixels: np.ndarray, face: Box | np.ndarray) -> np.ndarray:
        """The 150 x 150 RGB uint8 chip that :meth:`embed` describes (dlib's alignment, padding 0.25)."""
        import dlib

        self.load()
        image = np.ascontiguousarray(pixels, dtype=np.uint8)
        if isinstance(face, Box):
            rect = dlib.rectangle(face.x, face.y, face.x + face.w, face.y + face.h)
            shape = self._predictor(image, rect)
        else:
            points = np.asarray(face, dtype=np.float64).reshape(68, 2)
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
            shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in points])
        return np.asarray(dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING), dtype=np.uint8)


_EMBEDDER: FaceEmbedder | None = None


def face_embedding(pixels: np.ndarray, box_or_landmarks: Box | np.ndarray) -> tuple[float, ...]:
    """128-d dlib descriptor of one face in an RGB uint8 image (for headshot-reuse search).

    Euclidean distance < 0.6 between two descriptors usually means the same person. Raises
    WeightsMissingError when the dlib model files are absent.
    """
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = FaceEmbedder()
    return _EMBEDDER.embed(pixels, box_or_landmarks)
