"""The cross-generator study of the shipped face recipe: its per-input table, the seen / unseen pairs, the card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.face.card import _cross_v2_section
from detectors.face.cross_generator import SHIPPED_INPUTS, input_table, pair_rows
from detectors.face.data import SOURCE_NAMES
from detectors.face.descriptor_model import DESCRIPTOR_DIM, SUMMARY_INPUTS, DescriptorModel
from detectors.face.embedding import SUMMARY_DIM
from detectors.face.scoring import CueTrees, Ensemble
from detectors.face.stacking import ValidationLogits

WEIGHTS = Path(__file__).parents[1] / "weights" / "face"


def _faces(n_per_source: int = 80, seed: int = 0) -> ValidationLogits:
    """Test faces of the four sources: the CNN separates only StyleGAN v1 from the reals, the cues only SD 2.1, and the
    grid statistics carry a signal in one column for both generators."""
    rng = np.random.default_rng(seed)
    source = np.repeat(np.arange(len(SOURCE_NAMES)), n_per_source)
    labels = np.isin(source, [SOURCE_NAMES.index("stylegan1"), SOURCE_NAMES.index("sd21")]).astype(np.int64)
    n = len(labels)
    gan, diffusion = source == SOURCE_NAMES.index("stylegan1"), source == SOURCE_NAMES.index("sd21")
    columns = {"cnn_v2": 4.0 * gan + rng.normal(size=n), "cues": 4.0 * diffusion + rng.normal(size=n)}
    stages = rng.normal(size=(n, SUMMARY_DIM)).astype(np.float32)
    stages[:, SUMMARY_INPUTS["net_grid"].start] += 2.0 * labels
    zeros = np.zeros(n, dtype=np.int64)
    return ValidationLogits(columns, np.zeros(n), labels, diffusion.astype(np.int64), source, np.arange(n), zeros,
                            np.zeros((n, DESCRIPTOR_DIM)), stages)


def _grid_model() -> DescriptorModel:
    dim = SUMMARY_INPUTS["net_grid"].dim
    coef = np.zeros(dim)
    coef[0] = 1.0
    return DescriptorModel(mean=np.zeros(dim), scale=np.ones(dim), coef=coef, intercept=0.0)


def test_each_input_is_measured_per_generator_against_every_real_face() -> None:
    faces = _faces()
    ensemble = Ensemble(trees=CueTrees.load(WEIGHTS / "cue_trees.npz"), stack_coef=(1.0, 1.0, 1.0), stack_intercept=-0.5,
                        inputs=SHIPPED_INPUTS)
    table = input_table(faces, ensemble, _grid_model())
    assert set(table) == {"stylegan1", "sd21"}
    gan, diffusion = table["stylegan1"], table["sd21"]
    assert gan["cnn_v2"]["n_real"] == diffusion["cnn_v2"]["n_real"] == 160  # both real sources in each comparison
    assert gan["cnn_v2"]["n_ai"] == 80
    assert gan["cnn_v2"]["auroc"] > 0.95
    assert abs(diffusion["cnn_v2"]["auroc"] - 0.5) < 0.15
    assert diffusion["cues"]["auroc"] > 0.95
    assert abs(gan["cues"]["auroc"] - 0.5) < 0.15
    assert gan["net_grid"]["auroc"] > 0.8
    assert diffusion["net_grid"]["auroc"] > 0.8
    assert gan["stack"]["auroc"] > max(gan["cues"]["auroc"], gan["net_grid"]["auroc"])


def test_validation_subset_keeps_the_rows_aligned() -> None:
    faces = _faces(n_per_source=5)
    keep = faces.source != SOURCE_NAMES.index("sd21")
    part = faces.subset(keep)
    assert len(part.labels) == 15
    assert set(part.source.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(part.columns["cnn_v2"], faces.columns["cnn_v2"][keep])
    np.testing.assert_array_equal(part.stages, faces.stages[keep])
    np.testing.assert_array_equal(part.record, faces.record[keep])


def _entry(auroc: float) -> dict[str, object]:
    condition = {"coverage": 1.0, "auroc": auroc, "auroc_95ci": [auroc - 0.01, min(1.0, auroc + 0.01)],
                 "tpr_at_1pct_fpr": 0.5, "fpr_at_likely_ai": 0.0, "tpr_at_likely_ai": 0.4}
    return {"as_submitted": condition, "jpeg_q60_half": condition}


def test_the_card_marks_the_held_out_generator_unseen(tmp_path: Path) -> None:
    pairs = [f"{r} vs {g}" for r in ("ffhq", "ciplab") for g in ("stylegan1", "sd21")]
    inputs = {g: {k: {"auroc": 0.7} for k in (*SHIPPED_INPUTS, "stack")} for g in ("stylegan1", "sd21")}
    study = {"held_out": "sd21", "seen": "stylegan1", "test": {p: _entry(0.61 if "sd21" in p else 0.97) for p in pairs},
             "test_inputs": inputs}
    assert [(p, w) for p, w, _ in pair_rows(study)] == [("ffhq vs stylegan1", "seen"), ("ffhq vs sd21", "unseen"),
                                                        ("ciplab vs stylegan1", "seen"), ("ciplab vs sd21", "unseen")]
    data = {"shipped_inputs": inputs, "studies": {"train on stylegan1, test on sd21": study}}
    assert _cross_v2_section(tmp_path) == []  # not run: no section
    (tmp_path / "cross_generator_v2.json").write_text(json.dumps(data), encoding="utf-8")
    lines = _cross_v2_section(tmp_path)
    assert "| stylegan1 | ffhq vs sd21 | unseen | 1.0000 | 0.6100 | 0.6000-0.6200 |" in "\n".join(lines)
    assert any(line.startswith("| stylegan1 | sd21 (unseen) | 0.7000") for line in lines)
