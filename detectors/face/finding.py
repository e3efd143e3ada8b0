"""Face finding: dlib's HOG frontal detector on a downscaled copy, then 68-point landmarks.

Caveats first: the HOG detector only sees roughly frontal faces of at least ~80 px in the working
copy (longest side ``work_side`` px); when it finds nothing there, an optional fallback (BlazeFace,
:mod:`detectors.face.blazeface`: tilted, cropped or partly covered faces HOG misses, ~3 ms) is asked next, its
boxes mapped to HOG's box geometry for the landmark model; when that finds nothing too, HOG retries once with
one up-sampling step (faces down to ~40 px, about 4x slower). With ``first_trust_side`` > 0 (an option; 0 in the
shipped manifest) BlazeFace is asked first, and its faces stand without dlib's scans when the largest is big enough
(see :class:`FaceFinder`). Every box and landmark returned is in the *submitted* image's pixel coordinates. Models
come from the ``face-recognition-models`` package, located without importing it (its ``__init__`` needs
``pkg_resources``).
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
from detectors.face.blazeface import BlazeDetection, BlazeFace, hog_box
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
# The coarse pass skips the coarse copy's finest pyramid levels, whose boxes (~73 and ~88 px) can be neither a trusted
# face nor a second face of half its area: it scans the copy COARSE_SKIP steps smaller and lifts each box to the one
# the coarse copy's own scan draws (see lift_rect). HOG_FINEST_BOX is the frontal detector's box at a scan's finest
# level (px; larger levels' boxes are it times 1.2 per step), PYRAMID_RATIO dlib's pyramid_down(6) step.
COARSE_SKIP = 2
HOG_FINEST_BOX = 73
PYRAMID_RATIO = 6 / 5.0


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


def _levels_up(value: float, levels: int) -> float:
    """A coordinate ``levels`` pyramid steps up, in the order dlib's ``pyramid_down<6>::point_up`` computes it."""
    for _ in range(levels):
        value = value * PYRAMID_RATIO + 0.3
    return value


def _levels_down(value: float, levels: int) -> float:
    for _ in range(levels):
        value = (value - 0.3) / PYRAMID_RATIO
    return value


def _round(value: float) -> int:
    return int(np.floor(value + 0.5))


def lift_rect(rect: Any, extra: int) -> Any:
    """The box dlib's HOG scan of an image draws for a detection that the scan of the same image ``extra`` pyramid
    steps smaller returned as ``rect``, or None when that cannot be told exactly.

    dlib maps a detection at pyramid level ``k`` to the image as an integer box in that level's pixels moved ``k``
    steps up in floating point and rounded once (``scan_fhog_pyramid::detect``). The smaller image is the larger
    one's pyramid level ``extra``, so the same detection sits ``extra`` levels deeper there: recover the level from
    the box's size, undo the step-up, check that redoing it gives ``rect`` back, and step up ``extra`` more."""
    import dlib

    sides = (rect.left(), rect.top(), rect.right(), rect.bottom())
    level = round(float(np.log(min(rect.width(), rect.height()) / HOG_FINEST_BOX) / np.log(PYRAMID_RATIO)))
    if level < 0:
        return None
    grid = [_round(_levels_down(float(v), level)) for v in sides]
    if [_round(_levels_up(float(v), level)) for v in grid] != list(sides):
        return None
    return dlib.rectangle(*(_round(_levels_up(float(v), level + extra)) for v in grid))


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
    # "hog" (dlib), "blazeface_first" (BlazeFace asked first and trusted) or "blazeface" (the fallback, where dlib found
    # nothing); for BlazeFace's two, ``score`` is its probability
    found_by: str = "hog"

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
    many times by dlib's own 5/6 pyramid step (3: ~259 px), i.e. on exactly the pyramid levels the ``work_side``
    scan would reach for big faces, so its boxes are those levels' boxes; it skips that copy's two finest levels
    (:meth:`_coarse_scan`: the scan runs on a ~179 px copy, ~1/6 of the ``work_side`` scan, and returns the boxes
    the ~259 px scan draws, bit for bit). Its
    faces are kept only when the largest box is at least :data:`COARSE_TRUST_BOX` px wide there (so any
    second face with half its area or more is well above dlib's smallest ~73 px window and is found
    too) and its area is at least :data:`COARSE_SIZE_MARGIN` times ``min_face_pixels`` (so a face near the
    size abstention is decided on the ``work_side`` scan, as before). Otherwise the ``work_side`` scan (and
    its up-sampled retry) runs as without the coarse pass. Landmarks are always predicted on the
    ``work_side`` copy, the coarse box mapped up to it.

    BlazeFace first: with a ``fallback`` and ``first_trust_side`` > 0, BlazeFace (~3 ms) runs before any HOG
    scan. Its faces (boxes mapped to HOG's geometry, :func:`hog_rect`) are kept when the largest is at least
    ``first_trust_side`` of the image's longest side (BlazeFace finds 99% of faces from ~0.16 of it, so any second
    face of half the area of a 0.3 face is seen too; ``benchmarks/finder_sizes.py``) and well above the size
    abstention; otherwise dlib's passes run as above, and BlazeFace's answer is reused where the fallback is
    asked."""

    def __init__(self, work_side: int = WORK_SIDE, coarse_levels: int = COARSE_LEVELS,
                 fallback: BlazeFace | None = None, first_trust_side: float = 0.0, coarse_skip: int = COARSE_SKIP) -> None:
        if work_side < 64:
            raise ValueError("work_side must be >= 64")
        if not 0 <= coarse_levels <= 8:
            raise ValueError("coarse_levels must be in 0..8")
        if not 0.0 <= first_trust_side <= 1.0:
            raise ValueError("first_trust_side must be in [0, 1]")
        if not 0 <= coarse_skip <= 2:
            raise ValueError("coarse_skip must be in 0..2")
        self.work_side = work_side
        self.coarse_levels = coarse_levels
        self.fallback = fallback
        self.first_trust_side = first_trust_side
        self.coarse_skip = coarse_skip
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._template: bytes | None = None
        self._predictor: Any = None

    def settings_tag(self) -> str:
        """The settings that decide which faces and landmarks it returns, as a file-name-safe tag (for caches;
        ``coarse_skip`` changes only the cost)."""
        tag = f"ws{self.work_side}_coarse{self.coarse_levels}"
        if self.fallback is not None:
            tag += "_blazefallback" + (f"_first{self.first_trust_side:g}" if self.first_trust_side > 0 else "")
        return tag

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
        ``pixels``' coordinates) is the caller's size abstention: a first-pass face (BlazeFace's or the coarse
        pass's) near it is re-found at ``work_side``."""
        gray, scale = gray_copy(pixels, self.work_side)
        blaze = self.fallback.detect(pixels) if self.fallback is not None and self.first_trust_side > 0 else None
        if blaze and self._trusts_first(blaze, pixels, min_face_pixels):
            if self._predictor is None:
                self.load()
            return self._faces(gray, self._as_hog(blaze, scale), scale, "blazeface_first")
        detector = self._borrow()
        try:
            found = self._coarse_pass(detector, gray, min_face_pixels * scale * scale)
            found_by = "hog"
            if found is None:
                rects, scores, _ = detector.run(gray, 0, -0.2)
                found = list(zip(rects, (float(s) for s in scores), strict=True))
                if not found and self.fallback is not None:
                    found = self._as_hog(self.fallback.detect(pixels) if blaze is None else blaze, scale)
                    found_by = "blazeface" if found else found_by
                if not found:
                    rects, scores, _ = detector.run(gray, 1, -0.2)
                    found = list(zip(rects, (float(s) for s in scores), strict=True))
        finally:
            self._free.put(detector)
        return self._faces(gray, found, scale, found_by)

    def _faces(self, gray: np.ndarray, found: list[tuple[Any, float]], scale: float, found_by: str) -> list[FoundFace]:
        faces = [self._face(gray, rect, score, scale, found_by) for rect, score in found]
        return sorted(faces, key=lambda f: f.box.w * f.box.h, reverse=True)

    def _trusts_first(self, found: list[BlazeDetection], pixels: np.ndarray, min_face_pixels: float) -> bool:
        """Whether BlazeFace's answer stands without dlib's scans: its largest face is at least ``first_trust_side``
        of the image's longest side (so any second face of half its area is one BlazeFace finds too) and well above
        the size abstention (as for the coarse pass)."""
        largest = max(float(np.sqrt(max(d.box[2] - d.box[0], 0.0) * max(d.box[3] - d.box[1], 0.0))) for d in found)
        return largest >= self.first_trust_side * max(pixels.shape[:2]) \
            and largest * largest >= COARSE_SIZE_MARGIN * min_face_pixels

    @staticmethod
    def _as_hog(found: list[BlazeDetection], scale: float) -> list[tuple[Any, float]]:
        """BlazeFace's faces as the boxes dlib's HOG detector would draw (see :func:`hog_box`), in the ``work_side``
        copy's coordinates, with BlazeFace's probabilities."""
        return [(hog_rect(d.box, scale), d.score) for d in found]

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
        rects, scores = self._coarse_scan(detector, coarse, pyramid)
        if not rects:
            return None
        boxes = [pyramid.rect_up(rect, self.coarse_levels) for rect in rects]
        largest = max(range(len(rects)), key=lambda i: rects[i].width() * rects[i].height())
        if min(rects[largest].width(), rects[largest].height()) < COARSE_TRUST_BOX \
                or boxes[largest].width() * boxes[largest].height() < COARSE_SIZE_MARGIN * min_work_pixels:
            return None
        return [(box, float(score)) for box, score in zip(boxes, scores, strict=True)]

    def _coarse_scan(self, detector: Any, coarse: np.ndarray, pyramid: Any) -> tuple[list[Any], list[float]]:
        """dlib's detections on ``coarse`` from its pyramid level ``coarse_skip`` down, as its own scan draws them:
        the copy ``coarse_skip`` steps smaller is scanned and its boxes lifted (:func:`lift_rect`); if any box cannot
        be lifted exactly, ``coarse`` itself is scanned. Skipping two levels changes no decision: their boxes (~73 and
        ~88 px) are under half the area of a trusted face (COARSE_TRUST_BOX), so they can be neither it nor a
        comparable second face; they could only add to ``faces_found``, or, through dlib's overlap suppression, hide
        a larger box. Neither happened on the 3,341 images of ``benchmarks/coarse_skip.py``."""
        if self.coarse_skip:
            short = coarse
            for _ in range(self.coarse_skip):
                short = pyramid(short)
            rects, scores, _ = detector.run(short, 0, -0.2)
            lifted = [lift_rect(rect, self.coarse_skip) for rect in rects]
            if all(rect is not None for rect in lifted):
                return lifted, [float(s) for s in scores]
        rects, scores, _ = detector.run(coarse, 0, -0.2)
        return list(rects), [float(s) for s in scores]

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
        return tuple(float(v) for v in self._loaded_net().descriptor(self.chip(pixels, face)))

    def describe(self, pixels: np.ndarray, face: Box | np.ndarray, mirrored: bool = False,
                 ) -> tuple[tuple[float, ...], np.ndarray]:
        """:meth:`embed`'s descriptor and, from the same pass, the network summary of the face (float32,
        ``embedding.SUMMARY_DIM``: :func:`~detectors.face.embedding.stage_features` then
        :func:`~detectors.face.embedding.grid_features`). ``mirrored``: of the chip flipped left to right (the mirror
        image of the aligned face)."""
        chip = self.chip(pixels, face)
        if mirrored:
            chip = np.ascontiguousarray(chip[:, ::-1])
        descriptor, stages = self._loaded_net().describe(chip)
        return tuple(float(v) for v in descriptor), stages

    def _loaded_net(self) -> FaceNet:
        self.load()
        if self._net is None:  # pragma: no cover - load() sets it or raises
            raise RuntimeError("FaceEmbedder.load() failed")
        return self._net

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
