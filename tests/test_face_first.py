"""BlazeFace asked first (``FaceFinder(first_trust_side=...)``, the manifest's ``blazeface_first_trust_side``; measured
and not adopted for face 2.4.0): when its answer stands alone, when dlib's passes still run, and the manifest field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.contract import Device, Verdict, WeightsCorruptError
from detectors.face import build_face_detector
from detectors.face.blazeface import BlazeFace
from detectors.face.data import read_rgb
from detectors.face.detector import FALLBACK_FILE
from detectors.face.finding import FaceFinder
from detectors.face.pipeline import find_and_prepare
from detectors.face.stacking import FALLBACK_MODEL_FILE, FIRST_TRUST_SIDE, training_finder
from detectors.manifest import load_manifest
from tests.test_face_detector import FFHQ_SAMPLE, WEIGHTS, _on_canvas, _recording_finder, face_pairs, needs_data


def _first_finder(trust: float = 0.3) -> tuple[FaceFinder, list[tuple[int, int, int]]]:
    fallback = BlazeFace()
    fallback.load(load_manifest(WEIGHTS).files[FALLBACK_FILE])
    return _recording_finder(3, fallback=fallback, first_trust_side=trust)


@needs_data
def test_a_big_face_is_found_by_blazeface_alone_with_landmarks_close_to_dlibs() -> None:
    pixels = cv2.resize(read_rgb(FFHQ_SAMPLE), (512, 512), interpolation=cv2.INTER_LINEAR)  # a reduced 1024 px decode
    finder, calls = _first_finder()
    faces = finder.find(pixels, 1024 / 4)
    assert calls == []  # no HOG scan at all
    reference = FaceFinder(448, 0).find(pixels)
    assert len(faces) == len(reference) == 1
    assert faces[0].found_by == "blazeface_first"
    assert 0.5 <= faces[0].score <= 1.0
    moved = np.linalg.norm(np.array(faces[0].eye_centres) - np.array(reference[0].eye_centres), axis=1)
    assert moved.max() <= 0.05 * reference[0].eye_distance
    box, inner = faces[0].box, faces[0].landmarks[27:68]  # nose, eyes and mouth inside the box
    assert (inner[:, 0] >= box.x).all()
    assert (inner[:, 0] <= box.x + box.w).all()
    assert (inner[:, 1] >= box.y).all()
    assert (inner[:, 1] <= box.y + box.h).all()


@needs_data
def test_a_face_below_the_trust_side_is_left_to_dlibs_passes() -> None:
    canvas = _on_canvas(read_rgb(FFHQ_SAMPLE), 320, 1024)  # face box ~220 px: 0.21 of the side, BlazeFace sees it
    finder, calls = _first_finder()
    faces = finder.find(canvas, 1024.0)
    assert calls == [(179, 179, 0), (448, 448, 0)]  # as without BlazeFace first: coarse pass, then the 448 px scan
    old = FaceFinder(448, 0).find(canvas)
    assert len(faces) == len(old) == 1
    assert faces[0].found_by == "hog"
    assert faces[0].box == old[0].box
    assert np.array_equal(faces[0].landmarks, old[0].landmarks)
    trusting, calls = _first_finder(trust=0.15)  # the same face is trusted at a lower bar
    assert trusting.find(canvas, 1024.0)[0].found_by == "blazeface_first"
    assert calls == []


@needs_data
def test_a_second_face_of_comparable_size_is_not_missed() -> None:
    """Two faces (the second 0.85-1.0x as wide) at several image sizes: BlazeFace first sees both, as dlib does (side
    by side, the larger is ~0.29 of the longest side: trusted at 0.25)."""
    finder, calls = _first_finder(trust=0.25)
    plain = FaceFinder(448, 0)
    alone = 0
    for _, _, image in face_pairs(read_rgb(FFHQ_SAMPLE), (0.85, 1.0)):
        calls.clear()
        new = find_and_prepare(finder, image, 1024.0)[0]
        old = find_and_prepare(plain, image, 1024.0)[0]
        alone += not calls
        assert (new.abstain_reason, new.faces_found) == (old.abstain_reason, old.faces_found) == ("multiple_faces", 2)
    assert alone == 6  # all decided by BlazeFace alone


def test_the_finder_settings_tag_tells_the_finders_apart(tmp_path: Path) -> None:
    finder = training_finder(tmp_path)  # copies the committed BlazeFace model into an empty output folder
    assert (tmp_path / FALLBACK_MODEL_FILE).read_bytes() == (WEIGHTS / FALLBACK_MODEL_FILE).read_bytes()
    assert finder.first_trust_side == FIRST_TRUST_SIDE
    assert finder.fallback is not None
    first = FaceFinder(fallback=finder.fallback, first_trust_side=0.3)
    tags = {FaceFinder().settings_tag(), finder.settings_tag(), first.settings_tag()}
    assert len(tags) == 3
    with pytest.raises(ValueError, match="first_trust_side"):
        FaceFinder(first_trust_side=1.5)


@pytest.mark.parametrize(("change", "message"), [("drop_fallback", "finder_fallback"), ("bad_side", "first_trust_side")])
def test_a_manifest_asking_for_blazeface_first_wrongly_is_a_corrupt_weights_error(
    tmp_path: Path, change: str, message: str
) -> None:
    for item in WEIGHTS.iterdir():
        shutil.copy(item, tmp_path / item.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["extra"]["blazeface_first_trust_side"] = 0.3
    if change == "drop_fallback":
        del manifest["files"][FALLBACK_FILE]
    else:
        manifest["extra"]["blazeface_first_trust_side"] = 1.5
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsCorruptError, match=message):
        build_face_detector(tmp_path).load(Device(intra_op_threads=1))


def test_the_shipped_manifest_names_the_finder_its_stack_was_fitted_with() -> None:
    manifest = load_manifest(WEIGHTS)
    assert manifest.extra["blazeface_first_trust_side"] == FIRST_TRUST_SIDE  # training_finder's setting
    detector = build_face_detector(WEIGHTS)
    detector.load(Device(intra_op_threads=1))
    assert detector._finder is not None
    assert detector._finder.fallback is not None
    assert detector._finder.first_trust_side == FIRST_TRUST_SIDE


@needs_data
def test_a_detector_asking_blazeface_first_judges_without_the_fallback_flag(tmp_path: Path) -> None:
    for item in WEIGHTS.iterdir():
        shutil.copy(item, tmp_path / item.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["extra"]["blazeface_first_trust_side"] = 0.3
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    detector = build_face_detector(tmp_path)
    detector.load(Device(intra_op_threads=1))
    out = detector.judge([read_rgb(FFHQ_SAMPLE)])[0]
    assert out.verdict is not Verdict.ABSTAIN
    assert out.probability is not None
    assert not [flag for flag in out.flags if flag.startswith("face_found_by")]  # the flag is for the fallback only
