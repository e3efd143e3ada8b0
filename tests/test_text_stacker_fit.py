"""Fitting the text cascade on CPU: the calibration (centred isotonic), the likely_ai cut, the committed LM inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detectors.calibration import IsotonicCalibration
from detectors.text.data import Row
from detectors.text.lm.sequence import VARIANTS
from detectors.text.lm.stats import FEATURE_NAMES
from detectors.text.stacking import (
    CASCADE_TARGET_FPR,
    FIT_INPUTS,
    SHIPPED_DIR,
    calibrate_scores,
    committed_sequence_logits,
    features_run,
    lm_features,
    lm_inputs,
    save_fit_inputs,
)
from detectors.text.training import fit_centred_isotonic, fit_isotonic, likely_ai_threshold


def _scores(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    z = np.where(y == 1, rng.normal(2.0, 1.2, n), rng.normal(-1.0, 1.2, n))
    return z, y


def test_knots_are_the_isotonic_blocks_centres_and_rise_strictly() -> None:
    z = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([0, 1, 0, 1, 1, 1])  # isotonic blocks: {0} -> 0, {1, 2} -> 0.5, {3, 4, 5} -> 1
    xs, ys = fit_centred_isotonic(z, y)
    assert xs == [0.0, 1.5, 4.0]
    assert ys == [0.0, 0.5, 1.0]
    cal = IsotonicCalibration(tuple(xs), tuple(ys))
    assert cal(1.0) == pytest.approx(1 / 3)
    assert cal(2.0) == pytest.approx(0.6)
    assert cal(-5.0) == 0.0
    assert cal(9.0) == 1.0


def test_no_plateaus_so_a_cut_can_sit_at_any_validation_quantile() -> None:
    z, y = _scores()
    plain_x, plain_y = fit_isotonic(z, y)
    xs, ys = fit_centred_isotonic(z, y)
    assert np.all(np.diff(xs) > 0)
    assert np.all(np.diff(ys) > 0)
    assert np.any(np.diff(plain_y) == 0)  # the ordinary fit holds plateaus on the same data
    cal = IsotonicCalibration(tuple(xs), tuple(ys))
    p = np.array([cal(float(v)) for v in z])
    human = p[y == 0]
    inside = human[(human > ys[0]) & (human < ys[-1])]
    assert np.unique(inside).size == inside.size  # distinct probabilities between the end centres
    threshold, fpr = likely_ai_threshold(human, 0.005)
    assert fpr <= 0.005
    assert fpr >= 0.004


def test_calibration_stays_calibrated() -> None:
    z, y = _scores(1, 20000)
    xs, ys = fit_centred_isotonic(z[:10000], y[:10000])
    cal = IsotonicCalibration(tuple(xs), tuple(ys))
    p = np.array([cal(float(v)) for v in z[10000:]])
    held = y[10000:]
    bins = np.clip((p * 10).astype(int), 0, 9)
    gaps = [abs(p[bins == b].mean() - held[bins == b].mean()) for b in range(10) if (bins == b).sum() >= 200]
    assert len(gaps) >= 4
    assert max(gaps) < 0.05


def test_constant_scores_give_a_defined_map() -> None:
    xs, ys = fit_centred_isotonic(np.zeros(10), np.array([0, 1] * 5))
    assert len(xs) == 2
    assert xs[1] > xs[0]
    assert ys == [0.5, 0.5]
    with pytest.raises(ValueError, match="no scores"):
        fit_centred_isotonic(np.zeros(0), np.zeros(0))


def test_cascade_cut_keeps_every_slice_at_the_target() -> None:
    z, y = _scores(2)
    covered = np.ones(z.size, dtype=bool)
    covered[::50] = False
    modern = np.arange(z.size) % 3 != 0
    plain = (np.arange(z.size) % 5 == 0) & (y == 0)
    cal = calibrate_scores(y, z, covered, modern, plain)
    assert cal["calibration"]["fit"] == "centred isotonic"
    assert cal["target_fpr"] == CASCADE_TARGET_FPR
    f = IsotonicCalibration(tuple(cal["calibration"]["x"]), tuple(cal["calibration"]["y"]))
    p = np.array([f(float(v)) for v in z])
    t = cal["thresholds"]["likely_ai"]
    for mask in (covered & (y == 0), covered & (y == 0) & modern, covered & plain):
        assert np.mean(p[mask] >= t) <= CASCADE_TARGET_FPR
    assert cal["val_tpr_at_likely_ai"] > 0.35  # ~0.47 at an exact 0.5% FPR for these two normals
    assert 0.0 <= cal["thresholds"]["likely_human"] <= t


def _rows(n: int) -> list[Row]:
    return [Row(id=f"r{i}", text="t", raw_text="t", label=i % 2, domain="writing", generator="gpt-4", group=f"g{i}",
                split="validation" if i < n // 2 else "test", source_file="f") for i in range(n)]


def _features_file(path: Path, rows: list[Row]) -> np.ndarray:
    feats = np.random.default_rng(0).normal(size=(len(rows), len(FEATURE_NAMES))).astype(np.float32)
    order = np.arange(len(rows))[::-1]  # stored in another order than the rows: read by id
    np.savez(path, ids=np.array([rows[i].id for i in order]), features=feats[order],
             feature_names=np.array(FEATURE_NAMES), lengths=np.full(len(rows), 200, dtype=np.uint16))
    (path.parent / "run.json").write_text(json.dumps({"device": "cpu", "texts": len(rows), "tokens": 200 * len(rows),
                                                      "score_s": 10.0, "parity": {"n": 2, "max_abs_fp32_vs_numpy": {
                                                          "ll_mean": 1e-5, "fastdetect": 2e-4}}}))
    return feats


def test_fit_inputs_round_trip_by_id_and_refuse_another_cnn(tmp_path: Path) -> None:
    rows = _rows(10)
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    run_dir.mkdir()
    out_dir.mkdir()
    feats = _features_file(run_dir / "features.npz", rows)
    cnn = out_dir / VARIANTS["seq_cnn_stats_logit"].file
    cnn.write_bytes(b"cnn one")
    logits = np.arange(10, dtype=np.float64)[:, None] / 4
    saved = tmp_path / "inputs" / "lm_valtest.npz"
    save_fit_inputs(saved, rows, run_dir / "features.npz", logits, out_dir)
    assert np.array_equal(lm_features(rows, saved), feats.astype(np.float64))  # the stacker's reader, by id
    previous = {"seq_cnn_stats_logit": {"best_epoch": 7, "validation": {"auroc": 0.85}}}
    got, report = committed_sequence_logits(saved, rows[::-1], out_dir, previous)
    assert np.array_equal(got, logits[::-1])
    assert report["seq_cnn_stats_logit"]["best_epoch"] == 7
    assert "validation" not in report["seq_cnn_stats_logit"]
    run = features_run(saved)
    assert run is not None
    assert run["device"] == "cpu"
    assert run["parity_worst"] == "fastdetect"
    cnn.write_bytes(b"cnn two")
    with pytest.raises(ValueError, match="another seq_cnn_stats.onnx"):
        committed_sequence_logits(saved, rows, out_dir, previous)


def test_train_text_uses_the_gpu_features_when_present_else_the_committed_inputs(tmp_path: Path) -> None:
    assert lm_inputs(tmp_path / "absent.npz") == (FIT_INPUTS, True)
    (tmp_path / "features.npz").write_bytes(b"x")
    assert lm_inputs(tmp_path / "features.npz") == (tmp_path / "features.npz", False)


def test_shipped_cascade_is_centred_and_its_fit_inputs_match_its_cnn() -> None:
    manifest = json.loads((SHIPPED_DIR / "manifest.json").read_text(encoding="utf-8"))
    cal = manifest["calibration"]
    assert cal["fit"] == "centred isotonic"
    assert np.all(np.diff(cal["x"]) > 0)
    assert np.all(np.diff(cal["y"]) > 0)  # no plateau: the likely_ai cut is not pushed to a block's edge
    assert cal["y"][0] < manifest["thresholds"]["likely_ai"] < cal["y"][-1]
    f = np.load(FIT_INPUTS, allow_pickle=False)
    assert f["features"].shape == (len(f["ids"]), len(FEATURE_NAMES))
    assert len(set(f["ids"].tolist())) == len(f["ids"]) > 10000  # every validation and test text
    assert np.isfinite(f["sequence_logits"]).all()
    for name, digest in zip(f["sequence_names"], f["sequence_sha256"], strict=True):
        assert manifest["files"][str(name)]["sha256"] == str(digest)
