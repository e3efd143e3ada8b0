"""``FaceDetector``: is the (single) face in a headshot synthetic?

Caveats first: judges one face per image, the largest, and abstains with ``no_face``,
``multiple_faces`` (a second face at least half the largest's area) or ``face_too_small`` (face box
below the manifest's ``min_evidence`` pixels, where accuracy was measured to collapse). Trained on
StyleGAN v1 and Stable Diffusion 2.1 faces only: other generators (StyleGAN2/3, Midjourney, FLUX,
Generated Photos) are never seen; see the model card. ``raw_score`` is a logit, higher = more
likely AI. The inference path imports numpy, OpenCV, dlib and onnxruntime, never torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import (
    Box,
    DetectorOutput,
    Device,
    ImageItem,
    InvalidItemError,
    Modality,
    ScoreDirection,
    Verdict,
    WeightsCorruptError,
)
from detectors.face.blazeface import BlazeFace
from detectors.face.descriptor_model import SUMMARY_INPUTS, DescriptorModel
from detectors.face.finding import COARSE_LEVELS, WORK_SIDE, FaceEmbedder, FaceFinder
from detectors.face.pipeline import (
    CROP_SIZE,
    CropSpec,
    FaceInputs,
    clip_box,
    face_inputs,
    find_and_prepare,
    min_eye_distance,
    scale_face,
)
from detectors.face.scoring import CueTrees, Ensemble, parse_stacker, sigmoid
from detectors.manifest import Manifest, load_manifest
from detectors.runtime import onnx_session

EVIDENCE_UNIT = "face_pixels"
# stacker input -> manifest file role of that CNN (v1: 96 px crop; v2: the manifest's ``extra.cnn_v2`` crop)
CNN_FILES = {"cnn": "model", "cnn_v2": "model_v2"}
FALLBACK_FILE = "finder_fallback"  # manifest role of the optional BlazeFace model (detectors/face/blazeface.py)


@dataclass(frozen=True)
class PreparedFace:
    """One preprocessed image: the face inputs (None when abstaining), its box, evidence and work."""

    inputs: FaceInputs | None
    box: Box | None
    abstain_reason: str | None
    evidence: float
    work: float
    faces_found: int
    embedding: tuple[float, ...] | None = None
    found_by: str = "hog"
    stages: np.ndarray | None = None  # the descriptor network's summary (stage statistics, then the grid's)


@dataclass(frozen=True)
class FamilyRule:
    """Report ``diffusion`` above ``diffusion_above``, ``gan`` below ``gan_below``, else ``unknown``."""

    diffusion_above: float = 0.9
    gan_below: float = 0.1

    def family(self, p_diffusion: float) -> str:
        if p_diffusion >= self.diffusion_above:
            return "diffusion"
        if p_diffusion <= self.gan_below:
            return "gan"
        return "unknown"


class FaceDetector:
    """Synthetic-headshot detector following ``detectors.contract.Detector`` for ``ImageItem``."""

    modality = Modality.IMAGE

    def __init__(self, manifest: Manifest, max_batch_size: int = 16, embed_faces: bool = False) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        try:
            self._stacker = parse_stacker(manifest.extra["ensemble"])
            family = manifest.extra.get("family", {})
            self._family = FamilyRule(float(family.get("diffusion_above", 0.9)), float(family.get("gan_below", 0.1)))
            self._family_from = str(family.get("from", "cnn"))
            self._work_side = int(manifest.extra.get("work_side", WORK_SIDE))
            self._coarse_levels = int(manifest.extra.get("coarse_levels", COARSE_LEVELS))
            self._first_trust_side = float(manifest.extra.get("blazeface_first_trust_side", 0.0))
            self._crop_size = int(manifest.extra.get("crop_size", CROP_SIZE))
            v2 = manifest.extra.get("cnn_v2")
            self._wide = None if v2 is None else CropSpec(size=int(v2["crop_size"]), zoom=float(v2["zoom"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsCorruptError(f"malformed face manifest extra: {exc}") from exc
        inputs = self._stacker[2]
        self._cnns = tuple(name for name in CNN_FILES if name in inputs or name == self._family_from)
        if self._family_from not in CNN_FILES or ("cnn_v2" in self._cnns and self._wide is None):
            raise WeightsCorruptError("face manifest: family source or cnn_v2 crop missing")
        self._needs_descriptor = "descriptor" in inputs
        self._summary_inputs = tuple(name for name in SUMMARY_INPUTS if name in inputs)
        self._computes_embedding = embed_faces or self._needs_descriptor or bool(self._summary_inputs)
        files = {"cue_trees", *(CNN_FILES[name] for name in self._cnns)}
        files |= {"descriptor_model"} if self._needs_descriptor else set()
        files |= {SUMMARY_INPUTS[name].role for name in self._summary_inputs}
        missing = files - set(manifest.files)
        if missing:
            raise WeightsCorruptError(f"face manifest lists no {sorted(missing)} file")
        if self._first_trust_side > 0 and FALLBACK_FILE not in manifest.files:
            raise WeightsCorruptError("face manifest asks for BlazeFace first but lists no finder_fallback file")
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.max_batch_size = max_batch_size
        self.embed_faces = embed_faces
        self._embedder = FaceEmbedder()
        self._sessions: dict[str, Any] = {}
        self._finder: FaceFinder | None = None
        self._ensemble: Ensemble | None = None
        self._descriptor_model: DescriptorModel | None = None
        self._summary_models: dict[str, DescriptorModel] = {}

    def load(self, device: Device) -> None:
        """Open the ONNX session(s) on ``device``, the cue trees and the dlib models.

        Raises WeightsMissingError (dlib models absent) or WeightsCorruptError (unreadable trees).
        """
        try:
            trees = CueTrees.load(self.manifest.files["cue_trees"])
        except (OSError, KeyError, ValueError) as exc:
            raise WeightsCorruptError(f"unreadable cue trees: {exc}") from exc
        if self._needs_descriptor:
            try:
                self._descriptor_model = DescriptorModel.load(self.manifest.files["descriptor_model"])
            except (OSError, KeyError, ValueError) as exc:
                raise WeightsCorruptError(f"unreadable descriptor model: {exc}") from exc
        for name in self._summary_inputs:
            spec = SUMMARY_INPUTS[name]
            try:
                self._summary_models[name] = DescriptorModel.load(self.manifest.files[spec.role], dim=spec.dim)
            except (OSError, KeyError, ValueError) as exc:
                raise WeightsCorruptError(f"unreadable {spec.title} model: {exc}") from exc
        coef, intercept, inputs = self._stacker
        self._ensemble = Ensemble(trees=trees, stack_coef=coef, stack_intercept=intercept, inputs=inputs)
        self._sessions = {name: onnx_session(self.manifest.files[CNN_FILES[name]], device) for name in self._cnns}
        fallback = None
        if FALLBACK_FILE in self.manifest.files:
            fallback = BlazeFace()
            try:
                fallback.load(self.manifest.files[FALLBACK_FILE])
            except (OSError, ValueError) as exc:
                raise WeightsCorruptError(f"unreadable face-finder fallback: {exc}") from exc
        try:
            finder = FaceFinder(self._work_side, self._coarse_levels, fallback, self._first_trust_side)
        except ValueError as exc:
            raise WeightsCorruptError(f"face manifest: {exc}") from exc
        finder.load(copies=os.cpu_count() or 1)  # one HOG detector per core; a larger pool borrows more on demand
        self._finder = finder
        if self._computes_embedding:
            self._embedder.load()

    def preprocess(self, item: ImageItem) -> PreparedFace:
        """Find, choose and align the face (CPU). Raises InvalidItemError on a malformed array.

        ``item.pixels`` may be a reduced decode (``item.submitted_size`` set): faces are found and cropped
        there, unless the face has fewer than :func:`min_eye_distance` px between the eyes, in which case the
        original bytes are decoded at full size for the crop and the embedding. The box, the evidence and
        the face-size abstention are in submitted-image pixels either way.
        """
        pixels = item.pixels
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise InvalidItemError("invalid_image", "expected an RGB uint8 array of shape (H, W, 3)")
        if min(pixels.shape[:2]) < 8:
            raise InvalidItemError("invalid_image", "image smaller than 8 px")
        if self._finder is None or self._ensemble is None:
            raise RuntimeError("FaceDetector.load() was not called")
        height, width = pixels.shape[:2]
        submitted_w, submitted_h = item.submitted_size or (width, height)
        scale_x, scale_y = submitted_w / width, submitted_h / height
        min_pixels = self.manifest.min_evidence / (scale_x * scale_y)
        choice, inputs = find_and_prepare(self._finder, pixels, min_pixels, self._crop_size, self._wide)
        face = choice.face
        if face is not None and inputs is not None and (scale_x > 1 or scale_y > 1) \
                and face.eye_distance < min_eye_distance(self._crop_size):
            full = decode_full(item.original, (submitted_w, submitted_h))
            if full is not None:
                pixels, face, scale_x, scale_y = full, scale_face(face, scale_x, scale_y), 1.0, 1.0
                inputs = face_inputs(pixels, face.landmarks, crop_size=self._crop_size, wide=self._wide)
        box = None if face is None else clip_box(scale_face(face, scale_x, scale_y).box, submitted_w, submitted_h)
        embedding, stages = None, None
        if self._computes_embedding and inputs is not None and face is not None:  # one pass gives both
            embedding, stages = self._embedder.describe(pixels, face.landmarks)
        return PreparedFace(
            inputs=inputs,
            box=box,
            abstain_reason=choice.abstain_reason,
            evidence=0.0 if box is None else float(box.w * box.h),
            work=float(height * width),
            faces_found=choice.faces_found,
            embedding=embedding,
            found_by=face.found_by if face is not None else "hog",
            stages=stages,
        )

    def forward(self, batch: Sequence[PreparedFace]) -> list[np.ndarray | None]:
        """One ONNX call per CNN for the batch's judged faces; per item (n_cnns, 2) logits in the order of
        ``CNN_FILES`` (AI vs real, diffusion vs GAN), None when abstaining."""
        judged = [p.inputs for p in batch if p.inputs is not None]
        out: list[np.ndarray | None] = [None] * len(batch)
        if not judged:
            return out
        logits = []
        for name in self._cnns:
            crops = np.stack([_model_crop(i, name) for i in judged])
            nchw = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
            logits.append(np.asarray(self._sessions[name].run(None, {"crops": nchw})[0], dtype=np.float64))
        stacked = np.stack(logits, axis=1)
        rows = iter(stacked)
        for index, prepared in enumerate(batch):
            if prepared.inputs is not None:
                out[index] = next(rows)
        return out

    def postprocess(self, prepared: Sequence[PreparedFace], raw: Sequence[object]) -> list[DetectorOutput]:
        return [self._output(p, r) for p, r in zip(prepared, raw, strict=True)]

    def _output(self, prepared: PreparedFace, raw: object) -> DetectorOutput:
        common: dict[str, Any] = {
            "detector": self.name,
            "version": self.version,
            "direction": ScoreDirection.HIGHER_IS_AI,
            "evidence": prepared.evidence,
            "evidence_unit": EVIDENCE_UNIT,
            "work": prepared.work,
            "region": prepared.box,
            "embedding": prepared.embedding if self.embed_faces else None,  # scored, but not handed out for storage
        }
        if prepared.inputs is None or not isinstance(raw, np.ndarray):
            reason = prepared.abstain_reason or "no_face"
            return DetectorOutput(
                raw_score=None, probability=None, verdict=Verdict.ABSTAIN, threshold=None, abstain_reason=reason, **common
            )
        ensemble = self._ensemble
        if ensemble is None:
            raise RuntimeError("FaceDetector.load() was not called")
        logits = dict(zip(self._cnns, np.atleast_2d(raw), strict=True))
        cue_logit = float(ensemble.cue_logits(prepared.inputs.cues)[0])
        columns = {n: v[:1] for n, v in logits.items()}
        descriptor_extra: dict[str, float] = {}
        if self._descriptor_model is not None:
            if prepared.embedding is None:
                raise RuntimeError("the face stacker needs the descriptor, and preprocess did not compute it")
            columns["descriptor"] = self._descriptor_model.logits(np.asarray(prepared.embedding))
            descriptor_extra["descriptor_logit"] = float(columns["descriptor"][0])
        for name, model in self._summary_models.items():
            if prepared.stages is None:
                raise RuntimeError("the face stacker needs the network summary, and preprocess did not compute it")
            spec = SUMMARY_INPUTS[name]
            columns[name] = model.logits(prepared.stages[spec.start : spec.stop])
            descriptor_extra[f"{name}_logit"] = float(columns[name][0])
        score = float(ensemble.combine(columns, prepared.inputs.cues[None, :])[0])
        probability = float(self.manifest.calibration(score))
        verdict = self.manifest.thresholds.verdict(probability)
        p_diffusion = float(sigmoid(logits[self._family_from][1]))
        family = self._family.family(p_diffusion) if verdict is Verdict.LIKELY_AI else None
        flags = (("several_faces_largest_judged",) if prepared.faces_found > 1 else ()) \
            + ((f"face_found_by_{prepared.found_by}",) if prepared.found_by == "blazeface" else ())
        return DetectorOutput(
            raw_score=score,
            probability=probability,
            verdict=verdict,
            threshold=self.manifest.thresholds.likely_ai,
            family=family,
            flags=flags,
            extras={**{f"{n}_logit": float(v[0]) for n, v in logits.items()}, "cue_logit": cue_logit,
                    "p_diffusion": p_diffusion, **descriptor_extra},
            **common,
        )

    def judge(self, images: Sequence[np.ndarray]) -> list[DetectorOutput]:
        """Convenience for evaluation and tests: preprocess, forward in batches, postprocess."""
        outputs: list[DetectorOutput] = []
        for start in range(0, len(images), self.max_batch_size):
            prepared = [self.preprocess(ImageItem(pixels=p)) for p in images[start : start + self.max_batch_size]]
            outputs.extend(self.postprocess(prepared, self.forward(prepared)))
        return outputs


def _model_crop(inputs: FaceInputs, cnn: str) -> np.ndarray:
    """The crop that ``cnn`` reads: v1's aligned crop, or the wide crop for ``cnn_v2``."""
    if cnn == "cnn":
        return inputs.crop
    if inputs.wide_crop is None:
        raise RuntimeError("face inputs lack the cnn_v2 crop")
    return inputs.wide_crop


def decode_full(original: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """The original upload decoded at full size (EXIF orientation applied), or None when it cannot be, or
    when its size is not ``size`` (width, height)."""
    import io
    import warnings

    from PIL import Image, ImageOps

    if not original:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(original)) as image:
                rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, Image.DecompressionBombError):
        return None
    return np.asarray(rgb, dtype=np.uint8) if rgb.size == size else None


def build_face_detector(weights_dir: Path, max_batch_size: int = 16, embed_faces: bool = False) -> FaceDetector:
    """Detector from ``weights_dir/manifest.json`` (raises WeightsMissingError / WeightsCorruptError)."""
    return FaceDetector(load_manifest(weights_dir), max_batch_size=max_batch_size, embed_faces=embed_faces)
