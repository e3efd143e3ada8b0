"""The face stacker's choice among its candidates and the files it writes for the chosen inputs (2.5.0: the stage
statistics of dlib's face network as an input), on synthetic validation logits: no dataset needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device
from detectors.face import build_face_detector
from detectors.face.descriptor_model import DESCRIPTOR_DIM, DescriptorModel
from detectors.face.embedding import GRID_DIM, STAGES_DIM, SUMMARY_DIM
from detectors.face.scoring import CueTrees
from detectors.face.stacking import (
    ValidationLogits,
    _manifest_fields,
    _place_files,
    choose_candidate,
    compare_candidates,
    ensemble_for,
    write_manifest_v2,
)

WEIGHTS = Path(__file__).parents[1] / "weights" / "face"


def _validation(strong: str, n: int = 600, seed: int = 0) -> ValidationLogits:
    """Logits where the CNN and the cues are weak, ``strong`` separates the classes well, and the other side model
    carries nothing."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    columns = {name: labels * 0.6 + rng.normal(size=n) for name in ("cnn_v2", "cues")}
    columns |= {name: rng.normal(size=n) for name in ("descriptor", "net_stages", "net_grid")}
    columns[strong] = labels * 3.0 + rng.normal(size=n)
    zeros = np.zeros(n, dtype=np.int64)
    return ValidationLogits(columns, np.zeros(n), labels, zeros, zeros, np.arange(n) // 2, zeros,
                            np.zeros((n, DESCRIPTOR_DIM)), np.zeros((n, SUMMARY_DIM), dtype=np.float32))


@pytest.mark.parametrize(("strong", "expected"), [("net_stages", "v2+cues+stages"), ("descriptor", "v2+cues+descriptor"),
                                                  ("net_grid", "v2+cues+grid")])
def test_the_simplest_candidate_with_the_strong_input_is_chosen(strong: str, expected: str) -> None:
    comparison = compare_candidates(_validation(strong))
    assert {"v2+cues+stages", "v2+cues+descriptor+stages", "v2+cues+grid", "v2+cues+stages+grid"} <= set(comparison)
    assert choose_candidate(comparison) == expected


def test_a_stack_reading_the_stage_statistics_writes_and_lists_their_model(tmp_path: Path) -> None:
    val = _validation("net_stages")
    comparison = compare_candidates(val)
    trees = CueTrees.load(WEIGHTS / "cue_trees.npz")
    ensemble = ensemble_for(trees, comparison[choose_candidate(comparison)])
    fields, stats = _manifest_fields(val, ensemble, seed=0)
    assert stats["val_auroc_per_input"]["net_stages"] > 0.9
    rng = np.random.default_rng(1)
    stages = DescriptorModel(mean=rng.normal(size=STAGES_DIM), scale=rng.uniform(0.5, 2.0, STAGES_DIM),
                             coef=rng.normal(size=STAGES_DIM) / STAGES_DIM, intercept=0.1)
    descriptor = DescriptorModel(mean=np.zeros(DESCRIPTOR_DIM), scale=np.ones(DESCRIPTOR_DIM),
                                 coef=np.ones(DESCRIPTOR_DIM), intercept=0.0)
    (tmp_path / "descriptor_lr.npz").write_bytes(b"left by an earlier version")
    grid = DescriptorModel(mean=np.zeros(GRID_DIM), scale=np.ones(GRID_DIM), coef=np.zeros(GRID_DIM), intercept=0.0)
    (tmp_path / "grid_lr.npz").write_bytes(b"left by an earlier version")
    _place_files(tmp_path, WEIGHTS / "model_v2.onnx", None, fields, trees, descriptor,
                 {"net_stages": stages, "net_grid": grid})
    write_manifest_v2(tmp_path, fields, 0.0)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["extra"]["ensemble"]["inputs"] == ["cnn_v2", "cues", "net_stages"]
    assert set(manifest["files"]) == {"model_v2", "cue_trees", "stages_model"}
    assert not (tmp_path / "descriptor_lr.npz").exists()  # an input the stacker no longer reads leaves no file
    assert not (tmp_path / "grid_lr.npz").exists()
    loaded = DescriptorModel.load(tmp_path / "stages_lr.npz", dim=STAGES_DIM)
    x = rng.normal(size=(2, STAGES_DIM))
    np.testing.assert_allclose(loaded.logits(x), stages.logits(x))
    detector = build_face_detector(tmp_path)
    detector.load(Device(intra_op_threads=1))  # every file it lists loads, the stage model at its width


def test_reproducing_the_shipped_model_elsewhere_starts_from_a_copy_of_the_shipped_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bylinecheck train faces`` without a GPU run refits from the committed CNN; into another folder it first copies
    the shipped files, so that what a CPU cannot recompute carries over, and never writes to the shipped folder."""
    import detectors.face.stacking as stacking

    calls: list[tuple[Path, Path]] = []

    def refit(data_dir: Path, out_dir: Path, cnn_v2: Path, seed: int, cache_dir: Path) -> dict[str, str]:
        calls.append((out_dir, cnn_v2))
        return {"refitted": str(out_dir)}

    monkeypatch.setattr(stacking, "stack_face_v2", refit)
    shipped = {p.name: p.read_bytes() for p in WEIGHTS.iterdir() if p.is_file()}
    out = tmp_path / "face"
    assert stacking.reproduce_shipped(tmp_path / "data", out, 0, tmp_path / "cache") == {"refitted": str(out)}
    assert calls == [(out, out / "model_v2.onnx")]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == shipped
    assert {p.name: p.read_bytes() for p in WEIGHTS.iterdir() if p.is_file()} == shipped
