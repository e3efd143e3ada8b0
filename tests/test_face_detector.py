"""The shipped face detector, run for real: weights, face finding, abstentions, coordinates, AUROC bar."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.contract import (
    Box,
    DetectorOutput,
    Device,
    ImageItem,
    InvalidItemError,
    ScoreDirection,
    Verdict,
    WeightsMissingError,
)
from detectors.face import FaceDetector, build_face_detector, face_embedding
from detectors.face.alignment import align_face
from detectors.face.blazeface import BlazeFace
from detectors.face.data import list_records, read_rgb, split_records
from detectors.face.embedding import STAGES_DIM, SUMMARY_DIM
from detectors.face.finding import FaceFinder
from detectors.face.pipeline import V2_CROP, face_inputs, find_and_prepare
from detectors.manifest import file_entry, load_manifest
from detectors.metrics import auroc

ROOT = Path(__file__).parents[1]
WEIGHTS = ROOT / "weights" / "face"
DATA = Path(__file__).parents[1].parent / "shared" / "datasets" / "faces"
FFHQ_SAMPLE = DATA / "real" / "00000.jpg"
# Stated bars for the fixed 64-image subset of the seed-0 test split: 2.7.0 measures 0.998 overall and 0.992 on
# FFHQ vs StyleGAN v1 there (2.6.0: 0.997 and 0.992; 2.2.0-2.5.0: 0.993 and 0.980; 2.1.0: 0.972 and 0.926, so it would fail both;
# 1.0.0: 0.946 and 0.867); the model card has the full test split.
AUROC_BAR = 0.98
FFHQ_STYLEGAN_AUROC_BAR = 0.95

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="face dataset not staged at ../shared/datasets/faces")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    det = build_face_detector(WEIGHTS)
    det.load(Device(intra_op_threads=1))
    return det


def _judge(detector: FaceDetector, pixels: np.ndarray) -> DetectorOutput:
    prepared = [detector.preprocess(ImageItem(pixels=pixels))]
    return detector.postprocess(prepared, detector.forward(prepared))[0]


def test_missing_manifest_raises(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError):
        build_face_detector(tmp_path)


def test_malformed_array_fails_only_that_item(detector: FaceDetector) -> None:
    with pytest.raises(InvalidItemError):
        detector.preprocess(ImageItem(pixels=np.zeros((32, 32), np.uint8)))


def test_no_face_abstains(detector: FaceDetector) -> None:
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    out = detector.judge([noise])[0]
    assert out.verdict is Verdict.ABSTAIN
    assert out.abstain_reason == "no_face"
    assert out.probability is None
    assert out.region is None


@needs_data
def test_judged_face_fills_the_contract(detector: FaceDetector) -> None:
    out = _judge(detector, read_rgb(FFHQ_SAMPLE))
    assert out.verdict is not Verdict.ABSTAIN
    assert out.probability is not None
    assert 0.0 <= out.probability <= 1.0
    assert out.direction is ScoreDirection.HIGHER_IS_AI
    assert out.threshold == detector.manifest.thresholds.likely_ai
    assert out.evidence_unit == "face_pixels"
    assert out.evidence >= detector.manifest.min_evidence
    assert out.family in (None, "gan", "diffusion", "unknown")


@needs_data
def test_tiny_face_abstains_face_too_small(detector: FaceDetector) -> None:
    pixels = read_rgb(FFHQ_SAMPLE)
    region = detector.judge([pixels])[0].region
    assert region is not None
    face_w = region.w
    min_w = np.sqrt(detector.manifest.min_evidence)
    scale = 0.7 * min_w / face_w
    tiny = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = detector.judge([tiny])[0]
    assert out.verdict is Verdict.ABSTAIN
    assert out.abstain_reason == "face_too_small"
    assert out.region is not None


@needs_data
def test_two_comparable_faces_abstain(detector: FaceDetector) -> None:
    pixels = read_rgb(FFHQ_SAMPLE)
    out = detector.judge([np.concatenate([pixels, pixels[:, ::-1]], axis=1)])[0]
    assert out.abstain_reason == "multiple_faces"


@needs_data
def test_box_is_in_submitted_pixel_coordinates(detector: FaceDetector) -> None:
    pixels = read_rgb(FFHQ_SAMPLE)
    box = detector.judge([pixels])[0].region
    assert box is not None
    padded = cv2.copyMakeBorder(pixels, 50, 0, 120, 0, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    big = cv2.resize(padded, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    moved = detector.judge([big])[0].region
    assert moved is not None
    # HOG boxes snap to pyramid scales, so compare centres tightly and sizes loosely.
    expected_centre = 3 * np.array([box.x + 120 + box.w / 2, box.y + 50 + box.h / 2])
    centre = np.array([moved.x + moved.w / 2, moved.y + moved.h / 2])
    assert np.abs(centre - expected_centre).max() <= 0.1 * 3 * box.w
    assert 0.75 <= moved.w / (3 * box.w) <= 1.33
    assert moved.x > 3 * 120 - moved.w


@needs_data
def test_shipped_weights_reach_auroc_bar_on_fixed_test_subset(detector: FaceDetector) -> None:
    test = split_records(list_records(DATA), seed=0)["test"]
    subset = [r for source in ("ffhq", "stylegan1", "ciplab", "sd21") for r in [x for x in test if x.source == source][:16]]
    outputs = detector.judge([read_rgb(r.path) for r in subset])
    judged = [(o.raw_score, r.label, r.source) for o, r in zip(outputs, subset, strict=True) if o.raw_score is not None]
    assert len(judged) >= 0.9 * len(subset)
    scores, labels = np.array([j[0] for j in judged]), np.array([j[1] for j in judged])
    assert auroc(scores, labels) >= AUROC_BAR
    gan_pair = np.array([j[2] in ("ffhq", "stylegan1") for j in judged])
    assert auroc(scores[gan_pair], labels[gan_pair]) >= FFHQ_STYLEGAN_AUROC_BAR


@needs_data
def test_face_embedding_is_128_d_and_stable(detector: FaceDetector) -> None:
    pixels = read_rgb(FFHQ_SAMPLE)
    box = detector.judge([pixels])[0].region
    assert box is not None
    first = np.array(face_embedding(pixels, box))
    mirrored = Box(x=pixels.shape[1] - box.x - box.w, y=box.y, w=box.w, h=box.h)
    flipped = np.array(face_embedding(np.ascontiguousarray(pixels[:, ::-1]), mirrored))
    assert first.shape == (128,)
    assert np.linalg.norm(first - flipped) < 0.6


def test_inference_path_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from detectors.contract import Device\n"
        "from detectors.face import build_face_detector\n"
        f"d = build_face_detector(Path({str(WEIGHTS)!r})); d.load(Device())\n"
        "d.judge([np.zeros((64, 64, 3), np.uint8)])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_shipped_manifest_is_the_v2_stack() -> None:
    manifest = load_manifest(WEIGHTS)
    assert manifest.version == "2.7.0"
    assert manifest.extra["coarse_levels"] == 3  # the finder the validation logits were computed with
    assert manifest.extra["blazeface_first_trust_side"] == 0.0  # BlazeFace as the fallback only
    assert manifest.extra["cnn_v2"] == {"crop_size": 128, "zoom": 0.7}
    assert manifest.extra["ensemble"]["inputs"] == ["cnn_v2", "cues", "net_grid"]
    assert manifest.extra["family"]["from"] == "cnn_v2"
    assert set(manifest.files) == {"model_v2", "cue_trees", "grid_model", "finder_fallback"}


@needs_data
def test_v2_crop_is_the_gpu_models_crop_and_v1_inputs_are_unchanged(detector: FaceDetector) -> None:
    pixels = read_rgb(FFHQ_SAMPLE)
    prepared = detector.preprocess(ImageItem(pixels=pixels))
    assert prepared.inputs is not None
    assert prepared.inputs.wide_crop is not None
    assert prepared.inputs.wide_crop.shape == (128, 128, 3)
    assert prepared.inputs.crop.shape == (96, 96, 3)
    _, found = find_and_prepare(FaceFinder(), pixels, 0.0)
    assert found is not None
    landmarks = FaceFinder().find(pixels)[0].landmarks
    assert np.array_equal(prepared.inputs.wide_crop, align_face(pixels, landmarks, 128, zoom=0.7))
    v1 = face_inputs(pixels, landmarks)
    assert v1.wide_crop is None
    assert np.array_equal(v1.crop, found.crop)
    assert np.array_equal(v1.cues, prepared.inputs.cues)
    assert V2_CROP.size == 128


@needs_data
def test_v1_manifest_without_stacker_inputs_still_loads(tmp_path: Path) -> None:
    """A 1.0.0-style manifest (model.onnx, no ``inputs``) is read as cnn + cues."""
    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    shutil.copy(WEIGHTS / "cue_trees.npz", tmp_path / "cue_trees.npz")
    shutil.copy(WEIGHTS / "model_v2.onnx", tmp_path / "model.onnx")  # any (N, 2)-logit CNN; 128 px input here
    files = manifest["files"]
    manifest["files"] = {"model": {**files["model_v2"], "path": "model.onnx"}, "cue_trees": files["cue_trees"]}
    manifest["extra"] = {"ensemble": {"stack_coef": [0.5, 0.5], "stack_intercept": 0.0}, "crop_size": 128}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    det = build_face_detector(tmp_path)
    det.load(Device(intra_op_threads=1))
    out = det.judge([read_rgb(FFHQ_SAMPLE)])[0]
    assert out.probability is not None
    assert set(out.extras) == {"cnn_logit", "cue_logit", "p_diffusion"}


class _RecordingHog:
    """Wraps a dlib HOG detector and records the (height, width, upsample) of every scan."""

    def __init__(self, inner: object, calls: list[tuple[int, int, int]]) -> None:
        self._inner, self._calls = inner, calls

    def run(self, image: np.ndarray, upsample: int, threshold: float) -> object:
        self._calls.append((image.shape[0], image.shape[1], upsample))
        return self._inner.run(image, upsample, threshold)  # type: ignore[attr-defined]


def _recording_finder(coarse_levels: int, work_side: int = 448, fallback: BlazeFace | None = None,
                      first_trust_side: float = 0.0) -> tuple[FaceFinder, list[tuple[int, int, int]]]:
    finder = FaceFinder(work_side, coarse_levels, fallback, first_trust_side)
    finder.load()
    calls: list[tuple[int, int, int]] = []
    finder._free.put(_RecordingHog(finder._free.get_nowait(), calls))
    return finder, calls


def _on_canvas(face_image: np.ndarray, face_side: int, canvas_side: int, at: tuple[int, int] = (40, 60)) -> np.ndarray:
    """``face_image`` resized to ``face_side`` px and pasted on a grey ``canvas_side`` px square."""
    canvas = np.full((canvas_side, canvas_side, 3), 128, np.uint8)
    small = cv2.resize(face_image, (face_side, face_side), interpolation=cv2.INTER_AREA)
    canvas[at[1] : at[1] + face_side, at[0] : at[0] + face_side] = small
    return canvas


@needs_data
def test_big_face_is_found_by_the_coarse_pass_alone() -> None:
    pixels = cv2.resize(read_rgb(FFHQ_SAMPLE), (512, 512), interpolation=cv2.INTER_LINEAR)  # a reduced 1024 px decode
    finder, calls = _recording_finder(3)
    faces = finder.find(pixels, 1024 / 4)
    assert calls == [(179, 179, 0)]  # one scan, 5 pyramid steps below 448 px (the coarse copy less its 2 finest levels)
    reference = FaceFinder(448, 0).find(pixels)
    assert len(faces) == len(reference) == 1
    # the same pyramid level's box (up to rounding); the landmarks (predicted on the 448 px copy) barely move
    assert abs(faces[0].box.w - reference[0].box.w) <= 0.02 * reference[0].box.w
    anchors = np.array(faces[0].eye_centres) - np.array(reference[0].eye_centres)
    assert np.linalg.norm(anchors, axis=1).max() <= 0.05 * reference[0].eye_distance


@needs_data
def test_small_face_in_big_image_is_found_by_the_fallback() -> None:
    canvas = _on_canvas(read_rgb(FFHQ_SAMPLE), 320, 1024)  # face box ~220 px: ~56 px on the coarse copy, ~96 at 448
    finder, calls = _recording_finder(3)
    faces = finder.find(canvas, 1024.0)
    assert calls == [(179, 179, 0), (448, 448, 0)]
    old = FaceFinder(448, 0).find(canvas)
    assert len(faces) == len(old) == 1
    assert faces[0].box == old[0].box  # the fallback is the previous path, unchanged
    assert np.array_equal(faces[0].landmarks, old[0].landmarks)
    centre = (faces[0].box.x + faces[0].box.w / 2, faces[0].box.y + faces[0].box.h / 2)
    assert 40 < centre[0] < 360
    assert 60 < centre[1] < 380


@needs_data
def test_face_near_the_size_abstention_is_refound_at_work_side() -> None:
    """A face that fills the frame but is near min_face_pixels is decided on the 448 px pass, as before."""
    pixels = read_rgb(FFHQ_SAMPLE)
    box = FaceFinder(448, 0).find(pixels)[0].box
    finder, calls = _recording_finder(3)
    plain = FaceFinder(448, 0)
    for face_w in (28, 32, 36, 44):
        scale = face_w / box.w
        small = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        calls.clear()
        new = find_and_prepare(finder, small, 1024.0)[0]
        old = find_and_prepare(plain, small, 1024.0)[0]
        assert len(calls) >= 2  # coarse pass not trusted this close to 32 x 32 px
        assert new.abstain_reason == old.abstain_reason
        assert new.face is not None
        assert old.face is not None
        assert new.face.box == old.face.box


@needs_data
def test_second_face_of_comparable_size_is_not_missed_by_the_coarse_pass() -> None:
    """Two faces (the second 0.72-1.0x as wide) at several image sizes: same decision as the 448 px scan alone."""
    finder, calls = _recording_finder(3)
    plain = FaceFinder(448, 0)
    coarse_only = 0
    for ratio, width, image in face_pairs(read_rgb(FFHQ_SAMPLE), (0.72, 0.85, 1.0)):
        calls.clear()
        new = find_and_prepare(finder, image, 1024.0)[0]
        old = find_and_prepare(plain, image, 1024.0)[0]
        coarse_only += len(calls) == 1
        assert (new.abstain_reason, new.faces_found) == (old.abstain_reason, old.faces_found), (ratio, width)
        if ratio == 1.0:
            assert new.abstain_reason == "multiple_faces"
    assert coarse_only >= 6  # most of these were decided by the coarse pass alone


def face_pairs(face: np.ndarray, ratios: tuple[float, ...]) -> Iterator[tuple[float, int, np.ndarray]]:
    """(ratio, width, image): ``face`` beside its mirror image scaled by each ratio, on grey, the pair resized to
    300, 600 and 1200 px wide."""
    for ratio in ratios:
        second = cv2.resize(face[:, ::-1], None, fx=ratio, fy=ratio, interpolation=cv2.INTER_AREA)
        pair = np.full((face.shape[0], face.shape[1] + second.shape[1], 3), 128, np.uint8)
        pair[:, : face.shape[1]], pair[: second.shape[0], face.shape[1] :] = face, second
        for width in (300, 600, 1200):
            scale = width / pair.shape[1]
            yield ratio, width, cv2.resize(pair, None, fx=scale, fy=scale,
                                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def test_coarse_pass_is_skipped_on_images_too_small_for_a_trusted_face() -> None:
    with pytest.raises(ValueError, match="coarse_levels"):
        FaceFinder(448, -1)
    finder, calls = _recording_finder(3, work_side=160)  # coarse copy 92 px: no box there reaches COARSE_TRUST_BOX
    rng = np.random.default_rng(1)
    assert finder.find(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)) == []
    assert [c[:2] for c in calls] == [(160, 160), (160, 160)]  # work-side scan and its up-sampled retry only


def test_lift_rect_redoes_dlibs_step_up_from_deeper_levels() -> None:
    import dlib

    from detectors.face.finding import HOG_FINEST_BOX, PYRAMID_RATIO, lift_rect

    def stepped(v: int, levels: int) -> int:  # dlib: floating-point steps up from the level's integer, rounded once
        x = float(v)
        for _ in range(levels):
            x = x * PYRAMID_RATIO + 0.3
        return int(np.floor(x + 0.5))

    rng = np.random.default_rng(3)
    for level in range(6):
        for _ in range(40):
            left, top = (int(v) for v in rng.integers(-40, 200, 2))
            grid = (left, top, left + HOG_FINEST_BOX - 1, top + HOG_FINEST_BOX - 1)
            seen = dlib.rectangle(*(stepped(v, level) for v in grid))
            lifted = lift_rect(seen, 2)
            assert lifted is not None
            assert (lifted.left(), lifted.top(), lifted.right(), lifted.bottom()) == tuple(stepped(v, level + 2) for v in grid)
    assert lift_rect(dlib.rectangle(0, 0, 49, 49), 2) is None  # smaller than any level's box
    assert lift_rect(dlib.rectangle(10, 10, 96, 97), 2) is None  # 87-88 px: level 1, but 10 is no stepped-up integer


@needs_data
def test_the_coarse_scan_draws_the_coarse_copys_own_boxes() -> None:
    """Over shared photos: the coarse pass's boxes from the ~179 px scan equal the ~259 px scan's boxes of the same
    size (its levels 2 and up), scores included."""
    import dlib

    from detectors.face.finding import COARSE_SKIP, HOG_FINEST_BOX, PYRAMID_RATIO, gray_copy

    finder = FaceFinder()
    finder.load()
    detector, pyramid = finder._borrow(), dlib.pyramid_down(6)
    checked = 0
    for record in split_records(list_records(DATA), 0)["test"][:40]:
        coarse, _ = gray_copy(read_rgb(record.path), 448)
        for _ in range(3):
            coarse = pyramid(coarse)
        full_rects, full_scores, _ = detector.run(coarse, 0, -0.2)
        rects, scores = finder._coarse_scan(detector, coarse, pyramid)
        deep = HOG_FINEST_BOX * PYRAMID_RATIO ** (COARSE_SKIP - 0.5)
        expected = sorted((str(r), round(float(s), 6)) for r, s in zip(full_rects, full_scores, strict=True)
                          if min(r.width(), r.height()) > deep)
        assert sorted((str(r), round(s, 6)) for r, s in zip(rects, scores, strict=True)) == expected, record.path.name
        checked += bool(expected)
    assert checked >= 30


def test_descriptor_model_round_trip_and_malformed_files(tmp_path: Path) -> None:
    from detectors.face.descriptor_model import DescriptorModel

    rng = np.random.default_rng(0)
    model = DescriptorModel(mean=rng.normal(size=128), scale=rng.uniform(0.5, 2.0, 128), coef=rng.normal(size=128),
                            intercept=-0.3)
    model.save(tmp_path / "d.npz")
    loaded = DescriptorModel.load(tmp_path / "d.npz")
    x = rng.normal(size=(3, 128))
    assert np.allclose(loaded.logits(x), ((x - model.mean) / model.scale) @ model.coef - 0.3)
    with pytest.raises(ValueError, match="128"):
        loaded.logits(np.zeros((1, 64)))
    np.savez(tmp_path / "bad.npz", mean=np.zeros(128), scale=np.zeros(128), coef=np.zeros(128), intercept=np.array(0.0))
    with pytest.raises(ValueError, match="malformed"):
        DescriptorModel.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="malformed"):  # a 128-input model is not a stage-statistics model
        DescriptorModel.load(tmp_path / "d.npz", dim=STAGES_DIM)
    wide = DescriptorModel(mean=np.zeros(STAGES_DIM), scale=np.ones(STAGES_DIM), coef=np.full(STAGES_DIM, 0.5),
                           intercept=1.0)
    wide.save(tmp_path / "s.npz")
    assert DescriptorModel.load(tmp_path / "s.npz", dim=STAGES_DIM).logits(np.ones((2, STAGES_DIM))) == pytest.approx(
        [1.0 + 0.5 * STAGES_DIM] * 2)
    with pytest.raises(ValueError, match=str(STAGES_DIM)):
        wide.logits(np.ones((1, 128)))


@pytest.mark.parametrize(("stack_input", "role"), [("descriptor", "descriptor_model"), ("net_stages", "stages_model"),
                                                   ("net_grid", "grid_model")])
def test_a_stacker_reading_a_side_model_needs_its_file(tmp_path: Path, stack_input: str, role: str) -> None:
    from detectors.contract import WeightsCorruptError

    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    for name in ("cue_trees.npz", "model_v2.onnx", "finder_fallback.onnx"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    manifest["files"] = {k: v for k, v in manifest["files"].items()
                         if k not in ("descriptor_model", "stages_model", "grid_model")}
    manifest["extra"]["ensemble"] = {"inputs": ["cnn_v2", "cues", stack_input], "stack_coef": [1.0, 1.0, 1.0],
                                     "stack_intercept": 0.0}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(WeightsCorruptError, match=role):
        build_face_detector(tmp_path)


@pytest.mark.parametrize(("stack_input", "title"), [("net_stages", "stage-statistics"), ("net_grid", "grid-statistics")])
def test_a_summary_model_of_the_wrong_width_is_refused_at_load(tmp_path: Path, stack_input: str, title: str) -> None:
    from detectors.contract import WeightsCorruptError
    from detectors.face.descriptor_model import SUMMARY_INPUTS, DescriptorModel

    spec = SUMMARY_INPUTS[stack_input]
    for name in ("cue_trees.npz", "model_v2.onnx", "finder_fallback.onnx", "manifest.json"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    DescriptorModel(mean=np.zeros(128), scale=np.ones(128), coef=np.ones(128), intercept=0.0).save(tmp_path / spec.file)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k not in ("stages_model", "grid_model")}
    manifest["files"][spec.role] = file_entry(tmp_path, tmp_path / spec.file)
    manifest["extra"]["ensemble"] = {"inputs": ["cnn_v2", "cues", stack_input], "stack_coef": [1.0, 1.0, 1.0],
                                     "stack_intercept": 0.0}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    detector = build_face_detector(tmp_path)
    with pytest.raises(WeightsCorruptError, match=title):
        detector.load(Device(intra_op_threads=1))


@needs_data
def test_the_stage_statistics_are_scored_and_the_descriptor_only_handed_out_when_embeddings_are_on(
        detector: FaceDetector) -> None:
    """The stacker reads models of the face network's summary (2.5.0's stage statistics; 2.6.0's grid, when chosen):
    computed with the descriptor in one pass for every judged face, the descriptor reported only with embed_faces (the
    service's BYLINECHECK_FACE_EMBEDDINGS), and the same score either way."""
    from detectors.face.descriptor_model import SUMMARY_INPUTS, DescriptorModel

    pixels = read_rgb(FFHQ_SAMPLE)
    hidden = _judge(detector, pixels)
    shown_detector = build_face_detector(WEIGHTS, embed_faces=True)
    shown_detector.load(Device(intra_op_threads=1))
    shown = _judge(shown_detector, pixels)
    assert hidden.embedding is None
    assert shown.embedding is not None
    assert len(shown.embedding) == 128
    prepared = detector.preprocess(ImageItem(pixels=pixels))
    assert prepared.stages is not None
    assert prepared.stages.shape == (SUMMARY_DIM,)
    read = [name for name in SUMMARY_INPUTS if name in detector.manifest.extra["ensemble"]["inputs"]]
    assert read
    for name in read:
        spec = SUMMARY_INPUTS[name]
        model = DescriptorModel.load(WEIGHTS / spec.file, dim=spec.dim)
        expected = float(model.logits(prepared.stages[spec.start : spec.stop])[0])
        assert hidden.extras[f"{name}_logit"] == pytest.approx(expected, abs=1e-9)
    assert "descriptor_logit" not in hidden.extras
    assert shown.raw_score == hidden.raw_score


def test_model_card_judges_speed_on_the_latest_rerun_set() -> None:
    from detectors.face.card import _speed_reruns, _speed_target

    def rerun(note: str, service_ms: float) -> dict[str, object]:
        runs = [{"load_average_1min": 0.5, "service_path_median_cpu_ms": service_ms + d, "service_path_min_cpu_ms": 30.0,
                 "median_cpu_ms": 70.0} for d in (-1.0, 0.0, 5.0)]
        return {"note": note, "runs": runs}

    training = {"service_path_median_cpu_ms": 58.9, "median_cpu_ms": 75.9}
    [slow] = _speed_target(training)
    assert "58.9" in slow
    assert "> 50" in slow
    older, latest = rerun("first", 52.0), rerun("second", 35.0)
    assert len(_speed_reruns(older)) == 1  # the single-dict form written before 2026-11-28
    assert len(_speed_reruns([older, latest])) == 2
    [judged] = _speed_target(training, [older, latest])
    assert "35.0 ms" in judged
    assert "meets 50" in judged
    [judged_older] = _speed_target(training, older)
    assert "52.0 ms" in judged_older
    assert "> 50" in judged_older
