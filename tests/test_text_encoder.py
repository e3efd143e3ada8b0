"""The fine-tuned MiniLM-L6 encoder and the front: windows, the ONNX path, the committed logits, the fold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device, WeightsCorruptError
from detectors.runtime import onnx_session
from detectors.text.detector import build_text_detector
from detectors.text.encoder import fit_inputs
from detectors.text.encoder.runtime import CLS, MAX_WINDOWS, MIN_TAIL, SEP, WINDOW, EncoderScorer, batch_arrays, windows
from detectors.text.front import Front, cross_fit_front, fit_front, front_scores

REPO = Path(__file__).parents[1]
WEIGHTS = REPO / "weights" / "text"
DATA = REPO.parent / "shared" / "datasets" / "text"
ENCODER_TEST_AUROC_BAR = 0.95  # the shipped encoder alone measured 0.984 on all covered test texts (model card)


def _scorer() -> EncoderScorer:
    return fit_inputs.shipped_scorer(WEIGHTS, threads=1)


def test_windows_cut_at_most_two_and_drop_a_short_tail() -> None:
    ids = list(range(1000, 1000 + 3 * WINDOW))
    assert [len(w) for w in windows(ids)] == [WINDOW] * MAX_WINDOWS
    assert windows(ids[: WINDOW + MIN_TAIL - 1]) == [ids[:WINDOW]]  # a 31-piece tail is not a window
    assert [len(w) for w in windows(ids[: WINDOW + MIN_TAIL])] == [WINDOW, MIN_TAIL]
    assert windows(ids[:5]) == [ids[:5]]
    assert windows([]) == [[]]


def test_batch_arrays_frame_each_window_and_mask_the_padding() -> None:
    ids, mask, owner = batch_arrays([[[5, 6, 7]], [[8], [9, 10]]])
    assert ids.tolist() == [[CLS, 5, 6, 7, SEP], [CLS, 8, SEP, 0, 0], [CLS, 9, 10, SEP, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    assert owner.tolist() == [0, 1, 1]


def test_scorer_averages_its_windows_and_a_text_does_not_move_another() -> None:
    scorer = _scorer()
    long_text = " ".join(f"The council met on day {i} to discuss the budget for the town." for i in range(120))
    short_text = "The mayor said the vote will take place in the spring, after the budget is published."
    (per_text,) = scorer.windows_of([long_text])
    assert len(per_text) == 2  # ~1,800 wordpieces: only the first two windows are read
    z = [scorer.session.run(["logits"], dict(zip(("input_ids", "attention_mask"), batch_arrays([[w]])[:2],
                                                 strict=True)))[0][0] for w in per_text]
    together = scorer.logits([long_text, short_text])
    assert together[0] == pytest.approx(float(np.mean(z)), abs=1e-6)
    assert scorer.logits([short_text])[0] == together[1]  # int8 activations: one window per call, no neighbours
    assert scorer.logits([long_text])[0] == together[0]


def test_tokenizer_file_is_the_packaged_one_without_its_truncation() -> None:
    scorer = _scorer()
    text = "word " * 600
    (per_text,) = scorer.windows_of([text])
    assert sum(len(w) for w in per_text) == 2 * WINDOW  # the packaged file alone would stop at 128 pieces


@pytest.mark.skipif(not (DATA / "l2r.jsonl").is_file(), reason="shared text data set not present")
def test_committed_test_logits_are_what_the_service_computes_and_separate_the_classes() -> None:
    """``encoder_valtest.npz``'s test logits (the card's numbers) are reproduced by the service's own path on a
    fixed sample of test texts, and the committed logits reach the bar on every covered test text."""
    from detectors.text.data import load_rows
    from detectors.text.evaluation import auroc
    from detectors.text.normalise import normalise

    rows = [r for r in load_rows(DATA, seed=0) if r.split == "test"]
    committed = fit_inputs.load(WEIGHTS, [r.id for r in rows])
    sample = np.random.default_rng(0).choice(len(rows), 24, replace=False)
    now = _scorer().logits([normalise(rows[i].text).text for i in sample])
    np.testing.assert_allclose(now, committed[sample], atol=1e-3)
    y = np.array([r.label for r in rows])
    assert auroc(y, committed) >= ENCODER_TEST_AUROC_BAR


def test_committed_logits_refuse_another_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "fit_inputs").mkdir()
    shutil.copy(WEIGHTS / "fit_inputs" / fit_inputs.FILE, tmp_path / "fit_inputs" / fit_inputs.FILE)
    (tmp_path / fit_inputs.ONNX).write_bytes(b"not the model")
    with pytest.raises(ValueError, match="another"):
        fit_inputs.load(tmp_path, ["x"])


def test_front_is_read_from_the_manifest_and_a_broken_entry_refuses() -> None:
    spec = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))["extra"]["front"]
    front = Front.from_extra(spec)
    assert front.score(2.0, -1.0) == pytest.approx(spec["a"] * 2.0 - spec["b"] + spec["c"])
    assert front.score(1e6, 0.0) == front.score(40.0, 0.0)  # the n-gram logit is clipped as in training
    with pytest.raises(WeightsCorruptError, match="extra.front"):
        Front.from_extra({k: v for k, v in spec.items() if k != "thresholds"})


def test_manifest_with_a_front_but_no_encoder_file_refuses(tmp_path: Path) -> None:
    for name in ("model.onnx", "wordfreq.npy", "seq_cnn_stats.onnx", "encoder.onnx", "encoder_tokenizer.json"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]["encoder"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(WeightsCorruptError, match="encoder"):
        build_text_detector(tmp_path, lm_mode="off")


def test_fit_front_recovers_a_known_fold_and_its_out_of_fold_scores_are_honest() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    z, e = rng.normal(size=n) * 3, rng.normal(size=n) * 2
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.5 * z + 1.5 * e - 0.3)))).astype(int)
    params = fit_front(z, e, y, np.ones(n))
    assert params["a"] == pytest.approx(0.5, abs=0.1)
    assert params["b"] == pytest.approx(1.5, abs=0.2)
    assert front_scores(params, np.array([100.0]), np.array([0.0]))[0] == pytest.approx(40 * params["a"] + params["c"])
    noise = rng.integers(0, 2, size=n)  # labels unrelated to the inputs: out of fold stays at chance
    from detectors.text.evaluation import auroc

    oof = cross_fit_front(z, e, noise, np.ones(n), np.arange(n) // 2)
    assert abs(auroc(noise, oof) - 0.5) < 0.05


def test_torch_module_and_its_onnx_export_agree(tmp_path: Path) -> None:
    """The module the GPU trains is the one exported: a randomly initialised copy gives the same logits in torch
    (fused and explicit attention) and in ONNX Runtime, padding included."""
    torch = pytest.importorskip("torch")
    from detectors.text.encoder.export import export_onnx
    from detectors.text.encoder.torch_bert import WindowClassifier, quantise_rows

    torch.manual_seed(0)
    model = WindowClassifier().eval()
    q, s = quantise_rows(torch.randn(30522, 384) * 0.05)
    model.word_q.copy_(q)
    model.word_scale.copy_(s)
    ids = torch.tensor([[CLS, 2023, 2003, 1037, 3231, SEP, 0, 0], [CLS, 7592, 2088, 2003, 2307, 2000, 2017, SEP]])
    mask = (ids != 0).long()
    with torch.no_grad():
        fused = model(ids, mask).numpy()
        model.set_fused(False)
        explicit = model(ids, mask).numpy()
    np.testing.assert_allclose(fused, explicit, atol=1e-4)
    path = tmp_path / "random.onnx"
    export_onnx(model, path)
    (got,) = onnx_session(path, Device(intra_op_threads=1)).run(["logits"], {"input_ids": ids.numpy(),
                                                                            "attention_mask": mask.numpy()})
    np.testing.assert_allclose(got, explicit, atol=1e-4)
