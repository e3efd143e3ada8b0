"""Fitting on train + validation with honest validation scores (text 0.5.0, face 2.7.0), and the grouped bootstrap
intervals the cards print: on synthetic data, no dataset needed.

The property that matters: a validation item's cross-fitted score comes from a model that never saw it (nor anything
in its group). With labels that are pure noise, a model that saw an item memorises it, so its in-sample scores
separate the classes; honest out-of-fold scores must stay near chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from detectors.contract import Device
from detectors.face.descriptor_model import cross_fitted, fit_with_c
from detectors.metrics import auroc, grouped_bootstrap_ci, tpr_at_fpr
from detectors.text.crossfit import FoldScorer, cross_fit_stage1, load_oof, save_oof, validation_folds
from detectors.text.data import Row
from detectors.text.detector import build_text_detector
from detectors.text.features import FREQ_BUCKETS
from detectors.text.training import SETTINGS, STYLE_NAMES, _base_manifest


def _rows(n: int, split: str, rng: np.random.Generator, per_group: int = 3) -> list[Row]:
    labels = rng.integers(0, 2, n)
    return [Row(id=f"{split}-{i}", text="", raw_text="", label=int(labels[i]), domain="writing", generator="",
                group=f"{split}-g{i // per_group}", split=split, source_file="synthetic") for i in range(n)]


def _noise_data(rng: np.random.Generator, n_tr: int = 240, n_va: int = 150) -> dict:
    """Stage-1 training inputs whose labels carry no signal: each row has a few private hashed features."""
    width = SETTINGS["n_buckets"] + SETTINGS["skeleton_buckets"]

    def hashed(n: int) -> sparse.csr_matrix:
        cols = rng.integers(0, width, (n, 12))
        return sparse.csr_matrix((np.full(n * 12, 0.3, dtype=np.float32), cols.ravel(), np.arange(0, n * 12 + 1, 12)),
                                 shape=(n, width))

    rows_tr, rows_va = _rows(n_tr, "train", rng), _rows(n_va, "validation", rng)
    return {"h_tr": hashed(n_tr), "s_tr": rng.normal(size=(n_tr, len(STYLE_NAMES))),
            "y_tr": np.array([r.label for r in rows_tr]), "rows_tr": rows_tr,
            "h_va": hashed(n_va), "s_va": rng.normal(size=(n_va, len(STYLE_NAMES))),
            "y_va": np.array([r.label for r in rows_va]), "rows_va": rows_va}


def test_validation_folds_keep_groups_together_and_use_every_fold() -> None:
    groups = [f"g{i // 4}" for i in range(103)]
    folds = validation_folds(groups)
    assert set(folds) == set(range(5))
    for g in set(groups):
        assert len({folds[i] for i, x in enumerate(groups) if x == g}) == 1
    assert np.array_equal(folds, validation_folds(groups))


def test_text_cross_fit_scores_validation_out_of_fold(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = _noise_data(rng)
    wordfreq = tmp_path / "wordfreq.npy"
    np.save(wordfreq, np.full(FREQ_BUCKETS, -12.0, dtype=np.float16))
    extra = dict(SETTINGS, rare_logfreq=-12.0, min_stopword_share=0.05, seed=0, style_features=list(STYLE_NAMES))
    cf = cross_fit_stage1(data, 3e-7, tmp_path / "work", _base_manifest(extra), wordfreq)
    # The final model saw every validation row and memorises their noise labels; the fold models did not. (The
    # combination is fitted on the out-of-fold logits, which carry no signal here, so its sign is arbitrary: the
    # final model's ranking is perfect either way round.)
    seen = cf.final.decision(data["h_va"], data["s_va"])
    assert abs(auroc(seen, data["y_va"]) - 0.5) > 0.4
    assert abs(cf.report["oof_ngram_val_auroc_first_window"] - 0.5) < 0.15
    assert abs(cf.report["oof_skeleton_val_auroc_first_window"] - 0.5) < 0.15
    assert set(np.unique(cf.folds)) == set(range(5))
    # Each fold's exported model loads as a detector and is the one that scores that fold's texts.
    detectors = []
    for d in cf.fold_dirs:
        det = build_text_detector(d, lm_mode="off")
        det.load(Device(intra_op_threads=1))
        detectors.append(det)
    text = "The council met on Tuesday and agreed to repair the old bridge before the winter storms arrived."
    texts = [text] * 5
    routed, counts = FoldScorer(detectors).raw_scores(texts, np.arange(5))
    for k, det in enumerate(detectors):
        assert routed[k] == pytest.approx(det.raw_scores([text])[0][0])
    assert np.all(counts == counts[0])


class _Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def raw_scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(texts), self.value), np.full(len(texts), 7.0)


def test_fold_scorer_routes_each_text_to_its_fold() -> None:
    folds = np.array([2, 0, 1, 2, 0])
    z, n = FoldScorer([_Constant(10.0), _Constant(11.0), _Constant(12.0)]).raw_scores(list("abcde"), folds)
    assert z.tolist() == [12.0, 10.0, 11.0, 12.0, 10.0]
    assert n.tolist() == [7.0] * 5


def test_oof_file_belongs_to_one_model(tmp_path: Path) -> None:
    path = tmp_path / "fit_inputs" / "stage1_oof.npz"
    assert load_oof(path, ["a"], "0" * 64) is None
    save_oof(path, ["a", "b", "c"], np.array([0.5, -1.0, 2.0]), "f" * 64, {"folds": 5})
    assert load_oof(path, ["c", "a"], "f" * 64).tolist() == [2.0, 0.5]
    with pytest.raises(ValueError, match="another model"):
        load_oof(path, ["a"], "0" * 64)
    with pytest.raises(ValueError, match="lacks 1 of the ids"):
        load_oof(path, ["a", "z"], "f" * 64)


def test_face_side_model_cross_fit_is_out_of_fold() -> None:
    rng = np.random.default_rng(5)
    train_x, val_x = rng.normal(size=(300, 400)), rng.normal(size=(200, 400))
    train_y, val_y = rng.integers(0, 2, 300), rng.integers(0, 2, 200)
    groups = np.arange(200) // 2  # each file as staged and degraded
    oof, final = cross_fitted(train_x, train_y, val_x, val_y, groups, lambda x, y: fit_with_c(x, y, 1.0))
    assert auroc(final.logits(val_x), val_y) > 0.9  # saw them: memorised noise
    assert abs(auroc(oof, val_y) - 0.5) < 0.15  # did not
    # A real signal is still learned out of fold, and the refit on everything equals a plain fit on everything.
    signal = np.r_[train_y, val_y][:, None] * 0.8 + rng.normal(size=(500, 400))
    oof, final = cross_fitted(signal[:300], train_y, signal[300:], val_y, groups, lambda x, y: fit_with_c(x, y, 0.1))
    assert auroc(oof, val_y) > 0.8
    plain = fit_with_c(signal, np.r_[train_y, val_y], 0.1)
    assert np.allclose(final.coef, plain.coef)
    assert final.intercept == pytest.approx(plain.intercept)



def test_grouped_bootstrap_interval() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 500)
    s = y * 1.0 + rng.normal(size=1000)
    groups = np.arange(1000)
    lo, hi = grouped_bootstrap_ci(s, y, groups, auroc, draws=400)
    assert lo < auroc(s, y) < hi
    assert 0.03 < hi - lo < 0.1
    # Perfect separation: every draw is 1.
    assert grouped_bootstrap_ci(y + 0.5, y, groups, auroc, draws=50) == (1.0, 1.0)
    # Items that share a group move together: ten copies of each item give a wider interval than ten distinct items.
    copies = grouped_bootstrap_ci(np.repeat(s[::10], 10), np.repeat(y[::10], 10), np.repeat(groups[::10], 10), auroc,
                                  draws=400)
    distinct = grouped_bootstrap_ci(s, y, groups, auroc, draws=400)
    assert copies[1] - copies[0] > 2 * (distinct[1] - distinct[0])
    # TPR at 1% FPR, as the cards report it.
    lo, hi = grouped_bootstrap_ci(s, y, groups, lambda a, b: tpr_at_fpr(a, b, 0.01), draws=200)
    assert lo <= tpr_at_fpr(s, y, 0.01) <= hi
    # No class mix in any draw: no interval.
    lo, hi = grouped_bootstrap_ci(s[:10], np.zeros(10), groups[:10], auroc, draws=20)
    assert np.isnan(lo)
    assert np.isnan(hi)


def test_face_summary_intervals_resample_groups() -> None:
    from detectors.contract import DetectorOutput, ScoreDirection, Verdict
    from detectors.face.evaluation import summarise

    rng = np.random.default_rng(2)

    def outs(scores: np.ndarray) -> list[DetectorOutput]:
        return [DetectorOutput(detector="face", version="test", raw_score=float(v), direction=ScoreDirection.HIGHER_IS_AI,
                               probability=float(1 / (1 + np.exp(-v))), verdict=Verdict.UNCERTAIN, threshold=0.9,
                               evidence=4096.0, evidence_unit="face_pixels", work=1.0) for v in scores]

    # Five copies of each of 12 real and 12 synthetic photos (say, crops of one picture): 24 independent items.
    real, synthetic = outs(np.repeat(rng.normal(0.0, 1.0, 12), 5)), outs(np.repeat(rng.normal(1.5, 1.0, 12), 5))
    alone = summarise(real, synthetic, 0.9)
    assert alone["auroc_95ci"][0] <= alone["auroc"] <= alone["auroc_95ci"][1]
    # Told which outputs share a photo, the interval widens: the same scores, five times fewer independent draws.
    grouped = summarise(real, synthetic, 0.9, [f"photo-{i // 5}" for i in range(120)])
    assert grouped["auroc"] == alone["auroc"]
    width = grouped["auroc_95ci"][1] - grouped["auroc_95ci"][0]
    assert width > 1.5 * (alone["auroc_95ci"][1] - alone["auroc_95ci"][0])
    with pytest.raises(ValueError, match="shorter|longer"):
        summarise(real, synthetic, 0.9, ["g"] * 119)  # one group per output
