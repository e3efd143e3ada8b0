"""The exploration's kernel model of the face network's grid statistics (``explore_kernel``, not adopted): numpy
inference against scikit-learn, its file, its settings chosen by cross-validation on train, and its cross-fitted
validation logits; synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.face.descriptor_model import cross_fitted
from detectors.face.explore_kernel import KernelModel, fit_kernel_model, fit_with
from detectors.metrics import auroc


def _data(n: int, d: int, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.normal(size=d)
    x[:, :4] += signal * np.where(y[:, None] == 1, 1.0, -1.0) * np.array([1.0, -1.0, 0.5, 0.0])
    x[:, 4] += signal * (2 * y - 1) * np.abs(x[:, 5])  # an interaction a linear model cannot use
    return x, y


def test_numpy_inference_is_the_scikit_learn_pipeline() -> None:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = _data(400, 60, 1.0, 0)
    model = fit_with(x, y, dim=16, c=3.0, gamma_scale=1.0)
    scaled = StandardScaler().fit(x)
    pca = PCA(16, whiten=True, random_state=0).fit(scaled.transform(x))
    z = pca.transform(scaled.transform(x))
    svm = SVC(C=3.0, gamma=1.0 / 16).fit(z, y)
    test, _ = _data(50, 60, 1.0, 1)
    expected = svm.decision_function(pca.transform(scaled.transform(test)))
    assert np.allclose(model.logits(test), expected, atol=2e-3)  # float32 storage of the folded projection
    assert np.corrcoef(model.logits(test), expected)[0, 1] > 0.9999


def test_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    x, y = _data(200, 30, 1.0, 2)
    model = fit_with(x, y, dim=8, c=1.0, gamma_scale=1.0)
    path = tmp_path / "grid_kernel.npz"
    model.save(path)
    loaded = KernelModel.load(path, dim=30)
    assert np.array_equal(loaded.logits(x[:7]), model.logits(x[:7]))
    with pytest.raises(ValueError, match="malformed"):
        KernelModel.load(path, dim=31)
    with pytest.raises(ValueError, match="finite rows of 30"):
        loaded.logits(np.full((1, 30), np.nan))
    with pytest.raises(ValueError, match="finite rows of 30"):
        loaded.logits(np.zeros((1, 29)))
    arrays = dict(np.load(path))
    arrays["gamma"] = np.array(-1.0)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="malformed"):
        KernelModel.load(tmp_path / "bad.npz", dim=30)


def _xor(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two informative dimensions in an XOR pattern (no linear signal) and four of noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)


def test_settings_come_from_grouped_cross_validation_and_beat_a_linear_fit() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _xor(400, 3)
    model, summary = fit_kernel_model(x, y, np.arange(400) // 2, dims=(4, 6))
    cv = {k: v for k, v in summary.items() if k.startswith("cv_auroc_dim")}
    assert len(cv) == 18
    assert max(cv.values()) == summary[
        f"cv_auroc_dim{summary['chosen_dim']}_c{summary['chosen_c']:g}_g{summary['chosen_gamma_scale']:g}"]
    assert summary["chosen_dim"] == 6  # the two informative dimensions survive only without truncation
    test_x, test_y = _xor(400, 4)
    linear = LogisticRegression(max_iter=2000).fit(x, y).decision_function(test_x)
    assert auroc(linear, test_y) < 0.65
    assert auroc(model.logits(test_x), test_y) > 0.85


def test_cross_fitted_validation_logits_are_out_of_fold() -> None:
    rng = np.random.default_rng(5)
    train_x, val_x = rng.normal(size=(200, 30)), rng.normal(size=(150, 30))
    train_y, val_y = rng.integers(0, 2, 200), rng.integers(0, 2, 150)
    oof, final = cross_fitted(train_x, train_y, val_x, val_y, np.arange(150) // 2, lambda x, y: fit_with(x, y, 16, 10.0, 2.0))
    assert auroc(final.logits(val_x), val_y) > 0.9  # saw them: memorised noise
    assert abs(auroc(oof, val_y) - 0.5) < 0.15  # did not
