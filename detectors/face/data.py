"""Training data: source folders, seeded group splits, and the cache of aligned crops and cues.

Caveats first: splits are by source file, and for Stable Diffusion by prompt (``anB-128_12.jpg`` and
``anB-128_6.jpg`` share prompt ``anB-128`` and always land in the same split). Training samples are
always augmented (face region re-encoded, see ``augment``); validation samples go through the exact
inference path (face finding included), once as staged and once degraded.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.face.alignment import align_face
from detectors.face.augment import degrade_image, face_region, random_jitter
from detectors.face.features import eye_features, spectral_features
from detectors.face.finding import FaceFinder, FoundFace
from detectors.face.pipeline import (
    CONTEXT_ZOOM,
    CROP_SIZE,
    V2_CROP,
    CropSpec,
    FaceInputs,
    choose_face,
    face_inputs,
    find_and_prepare,
)

logger = logging.getLogger(__name__)

# folder -> (label 1 = AI, source name, generator family or "")
SOURCES: dict[str, tuple[int, str, str]] = {
    "real": (0, "ffhq", ""),
    "ai": (1, "stylegan1", "gan"),
    "real_ciplab": (0, "ciplab", ""),
    "diffusion_sd21": (1, "sd21", "diffusion"),
}
SOURCE_NAMES = [v[1] for v in SOURCES.values()]
SPLIT_FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
TRAIN_VARIANTS = 4
QTABLE_LEN = 128


@dataclass(frozen=True)
class Record:
    """One source file: ``label`` 1 = AI; ``group`` keeps near-duplicates in one split."""

    path: Path
    label: int
    source: str
    family: str
    group: str


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8; raises ValueError when undecodable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_records(data_dir: Path) -> list[Record]:
    """Every image under the four source folders, sorted by path."""
    records = []
    for folder, (label, source, family) in SOURCES.items():
        for path in sorted((data_dir / folder).glob("*.jpg")):
            group = path.stem.rsplit("_", 1)[0] if source == "sd21" else path.stem
            records.append(Record(path=path, label=label, source=source, family=family, group=group))
    return records


def split_records(records: list[Record], seed: int) -> dict[str, list[Record]]:
    """Seeded 60/20/20 split of each source's groups into train / validation / test."""
    rng = np.random.default_rng(seed)
    by_source: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_source[record.source][record.group].append(record)
    splits: dict[str, list[Record]] = {name: [] for name in SPLIT_FRACTIONS}
    for source in sorted(by_source):
        groups = sorted(by_source[source])
        order = rng.permutation(len(groups))
        n_train = round(SPLIT_FRACTIONS["train"] * len(groups))
        n_val = round(SPLIT_FRACTIONS["validation"] * len(groups))
        for rank, index in enumerate(order):
            name = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
            splits[name].extend(by_source[source][groups[index]])
    return splits


def qtable_vector(jpeg: bytes) -> np.ndarray:
    """The JPEG's quantisation tables (luma then chroma, 64 each) as a float vector."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        tables = getattr(image, "quantization", None) or {}
    values = [v for key in sorted(tables) for v in tables[key]][:QTABLE_LEN]
    return np.array(values + [0] * (QTABLE_LEN - len(values)), dtype=np.float32)


@dataclass
class SampleSet:
    """Arrays for one split: crops (N, S, S, 3) uint8, cues (N, C), labels, family (1 = diffusion), ..."""

    crops: list[np.ndarray]
    cues: list[np.ndarray]
    labels: list[int]
    family: list[int]
    source: list[int]
    record: list[int]
    condition: list[int]  # 0 = as staged, 1 = degraded / augmented
    jpeg_size: list[int]
    qtables: list[np.ndarray]

    @classmethod
    def empty(cls) -> SampleSet:
        return cls([], [], [], [], [], [], [], [], [])

    def add(self, crop: np.ndarray, cues: np.ndarray, record: Record, index: int, condition: int) -> None:
        self.crops.append(crop)
        self.cues.append(cues)
        self.labels.append(record.label)
        self.family.append(1 if record.family == "diffusion" else 0)
        self.source.append(SOURCE_NAMES.index(record.source))
        self.record.append(index)
        self.condition.append(condition)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "crops": np.stack(self.crops).astype(np.uint8),
            "cues": np.stack(self.cues).astype(np.float32),
            "labels": np.array(self.labels, dtype=np.int64),
            "family": np.array(self.family, dtype=np.int64),
            "source": np.array(self.source, dtype=np.int64),
            "record": np.array(self.record, dtype=np.int64),
            "condition": np.array(self.condition, dtype=np.int64),
        }
        if self.jpeg_size:
            out["jpeg_size"] = np.array(self.jpeg_size, dtype=np.float32)
            out["qtables"] = np.stack(self.qtables)
        return {f"{prefix}_{key}": value for key, value in out.items()}


def _train_samples(finder: FaceFinder, records: list[Record], rng: np.random.Generator) -> SampleSet:
    samples = SampleSet.empty()
    for index, record in enumerate(records):
        pixels = read_rgb(record.path)
        faces = finder.find(pixels)
        if not faces:
            continue
        landmarks = faces[0].landmarks
        height, width = pixels.shape[:2]
        eyes = eye_features(landmarks, width, height)
        for _ in range(TRAIN_VARIANTS):
            region = face_region(pixels, landmarks, rng, CROP_SIZE)
            jitter = random_jitter(rng, CROP_SIZE)
            crop = align_face(region.pixels, region.landmarks, CROP_SIZE, jitter=jitter)
            context = align_face(region.pixels, region.landmarks, CROP_SIZE, zoom=CONTEXT_ZOOM, jitter=jitter)
            samples.add(crop, np.concatenate([spectral_features(crop, context), eyes]), record, index, 1)
            samples.jpeg_size.append(len(region.jpeg))
            samples.qtables.append(qtable_vector(region.jpeg))
        if index % 200 == 0:
            logger.info("train features %d / %d", index, len(records))
    return samples


def _eval_samples(finder: FaceFinder, records: list[Record], rng: np.random.Generator) -> SampleSet:
    samples = SampleSet.empty()
    for index, record in enumerate(records):
        staged = read_rgb(record.path)
        for condition, pixels in enumerate((staged, degrade_image(staged, rng))):
            choice = choose_face(finder.find(pixels), 0.0)
            if choice.face is None or choice.abstain_reason is not None:
                continue
            inputs = face_inputs(pixels, choice.face.landmarks)
            samples.add(inputs.crop, inputs.cues, record, index, condition)
        if index % 200 == 0:
            logger.info("validation features %d / %d", index, len(records))
    return samples


@dataclass(frozen=True)
class JudgedFace:
    """One judged face of :func:`judged_faces`: the file's position and record, 0 = as staged / 1 = degraded, the
    pixels it was found in, the face and its model inputs."""

    index: int
    record: Record
    condition: int
    pixels: np.ndarray
    face: FoundFace
    inputs: FaceInputs


def judged_faces(records: list[Record], rng: np.random.Generator, wide: CropSpec | None = V2_CROP,
                 label: str = "faces", finder: FaceFinder | None = None, mirror: bool = False) -> Iterator[JudgedFace]:
    """Each file as staged and once degraded with ``rng`` (``degrade_image``, one draw per file, in order), through
    the inference path (``find_and_prepare`` with the ``wide`` crop and ``finder``, by default dlib's alone): every
    face that is judged, in order. ``mirror`` flips each file left to right first (a training augmentation)."""
    finder = finder or FaceFinder()
    for index, record in enumerate(records):
        staged = read_rgb(record.path)
        if mirror:
            staged = np.ascontiguousarray(staged[:, ::-1])
        for condition, pixels in enumerate((staged, degrade_image(staged, rng))):
            choice, inputs = find_and_prepare(finder, pixels, 0.0, wide=wide)
            if inputs is not None and choice.face is not None:
                yield JudgedFace(index, record, condition, pixels, choice.face, inputs)
        if index % 200 == 0:
            logger.info("%s %d / %d", label, index, len(records))


def cache_name(seed: int, finder: FaceFinder | None = None) -> str:
    """File name of ``build_cache``'s arrays: keyed by the seed and by the face finder's settings (``finder``, by
    default dlib's alone), so that arrays computed on another finder's landmarks are never reused."""
    return f"seed{seed}_{(finder or FaceFinder()).settings_tag()}.npz"


def build_cache(splits: dict[str, list[Record]], cache_path: Path, seed: int,
                finder: FaceFinder | None = None) -> dict[str, np.ndarray]:
    """Compute (or load) the train and validation arrays (faces found by ``finder``, by default dlib's alone);
    cached as ``.npz`` at ``cache_path``."""
    if cache_path.is_file():
        with np.load(cache_path) as cached:
            return dict(cached)
    finder = finder or FaceFinder()
    rng = np.random.default_rng(seed + 1)
    arrays = _train_samples(finder, splits["train"], rng).arrays("train")
    arrays.update(_eval_samples(finder, splits["validation"], rng).arrays("val"))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(cache_path)
    return arrays
