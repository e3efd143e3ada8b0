"""The face finder's BlazeFace fallback (face 2.3.0): decoding, the box mapping, and the shipped model on photos
dlib's HOG detector does not see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device, Verdict, WeightsCorruptError
from detectors.face import blazeface, build_face_detector
from detectors.face.blazeface import BlazeFace, anchor_centres, box_iou, decode, hog_box
from detectors.face.data import read_rgb
from detectors.face.detector import FALLBACK_FILE
from detectors.face.finding import FaceFinder
from detectors.manifest import load_manifest
from tests.test_face_detector import DATA, WEIGHTS, needs_data

# CIPLAB real photos whose large, clear faces dlib's HOG misses at every scale it tries (benchmarks/NOTES.md, round 12)
HOG_MISSES = ("real_00018.jpg", "real_00047.jpg", "real_00083.jpg")


def test_anchors_follow_mediapipes_short_range_layout() -> None:
    anchors = anchor_centres()
    assert anchors.shape == (896, 2)
    assert np.allclose(anchors[0], [1 / 32, 1 / 32])
    assert np.allclose(anchors[1], anchors[0])  # two anchors per 8 px cell
    assert np.allclose(anchors[512], [1 / 16, 1 / 16])  # then six per 16 px cell
    assert np.allclose(anchors[-1], [15 / 16, 15 / 16])


def test_decode_scales_boxes_keeps_the_strongest_of_overlapping_ones_and_drops_weak_ones() -> None:
    anchors = anchor_centres()
    regressors = np.zeros((896, 16), np.float32)
    logits = np.full(896, -10.0, np.float32)
    # anchor 0 (centre 4, 4 of 128): a 32 x 16 px box 8 px right of it; anchor 1 the same box, weaker
    regressors[0, :4] = regressors[1, :4] = [8.0, 0.0, 32.0, 16.0]
    logits[0], logits[1] = 3.0, 2.0
    regressors[600, :4] = [0.0, 0.0, 20.0, 20.0]
    logits[600] = 0.1  # probability 0.52: kept
    logits[700] = -0.1  # 0.48: dropped
    found = decode(regressors, logits, side=256.0, anchors=anchors)
    assert len(found) == 2
    assert found[0].score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert np.allclose(found[0].box, np.array([12 - 16, 4 - 8, 12 + 16, 4 + 8]) * 2.0)
    centre = anchors[600] * 256.0
    assert np.allclose(found[1].box, [centre[0] - 20, centre[1] - 20, centre[0] + 20, centre[1] + 20])
    assert box_iou(found[0].box, found[0].box) == pytest.approx(1.0)
    assert box_iou(found[0].box, found[1].box) == 0.0


def test_hog_box_shifts_and_scales_as_fitted() -> None:
    cx, cy, side = hog_box(np.array([100.0, 200.0, 180.0, 300.0]))  # 80 x 100
    assert cy == pytest.approx(250.0 + blazeface.HOG_SHIFT_Y * 100.0)
    assert side == pytest.approx(blazeface.HOG_SIDE * np.sqrt(80.0 * 100.0))
    assert 139.0 < cx < 141.0


def test_the_shipped_fallback_is_listed_and_refuses_another_graph() -> None:
    manifest = load_manifest(WEIGHTS)  # checks its sha256
    model = BlazeFace()
    model.load(manifest.files[FALLBACK_FILE])
    with pytest.raises(ValueError, match="short-range BlazeFace"):
        BlazeFace().load(manifest.files["model_v2"])
    with pytest.raises(RuntimeError, match="load"):
        BlazeFace().detect(np.zeros((64, 64, 3), np.uint8))
    assert model.detect(np.full((300, 200, 3), 128, np.uint8)) == []  # a flat grey image holds no face


def test_a_manifest_naming_a_wrong_graph_is_a_corrupt_weights_error(tmp_path: Path) -> None:
    import json
    import shutil

    from detectors.manifest import sha256_file

    for item in WEIGHTS.iterdir():
        shutil.copy(item, tmp_path / item.name)
    shutil.copy(WEIGHTS / "model_v2.onnx", tmp_path / "finder_fallback.onnx")  # a valid ONNX file, the wrong graph
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"][FALLBACK_FILE]["sha256"] = sha256_file(tmp_path / "finder_fallback.onnx")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsCorruptError, match="fallback"):
        build_face_detector(tmp_path).load(Device(intra_op_threads=1))


@needs_data
@pytest.mark.parametrize("name", HOG_MISSES)
def test_the_fallback_finds_faces_hog_misses_and_the_detector_judges_them(name: str) -> None:
    pixels = read_rgb(DATA / "real_ciplab" / name)
    fallback = BlazeFace()
    fallback.load(load_manifest(WEIGHTS).files[FALLBACK_FILE])
    assert FaceFinder().find(pixels, 1024.0) == []  # dlib alone: coarse pass, 448 px scan, up-sampled retry
    faces = FaceFinder(fallback=fallback).find(pixels, 1024.0)
    assert len(faces) == 1
    face = faces[0]
    assert face.found_by == "blazeface"
    assert 0.5 <= face.score <= 1.0
    box = face.box
    assert box.w > pixels.shape[1] / 4  # a large face, not a small one the retry was for
    inside = (face.landmarks[:, 0] >= box.x - box.w / 2) & (face.landmarks[:, 0] <= box.x + 1.5 * box.w) \
        & (face.landmarks[:, 1] >= box.y - box.h / 2) & (face.landmarks[:, 1] <= box.y + 1.5 * box.h)
    assert inside.all()
    left, right = face.eye_centres
    assert left[0] < right[0]  # the eyes landed left and right of each other, not on one eye
    detector = build_face_detector(WEIGHTS)
    detector.load(Device(intra_op_threads=1))
    out = detector.judge([pixels])[0]
    assert out.verdict is not Verdict.ABSTAIN
    assert "face_found_by_blazeface" in out.flags
    assert out.probability is not None
    assert out.verdict is not Verdict.LIKELY_AI  # a real photo: no false alarm on these three
