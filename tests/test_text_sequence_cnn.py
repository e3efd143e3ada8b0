"""The text stacker's token-sequence CNN: its inputs, the shipped ONNX file, and its place in the cascade."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device, TextItem, WeightsCorruptError
from detectors.runtime import onnx_session
from detectors.text.detector import build_text_detector
from detectors.text.lm.sequence import ALL_VARIANTS, CHANNEL_SCALE, VARIANTS, SequenceModel, sequence_inputs
from detectors.text.lm.stats import FEATURE_NAMES, TAIL_START

WEIGHTS = Path(__file__).parents[1] / "weights" / "text"
TEXT = (
    "The council met on Tuesday to discuss the new budget for the town. Members said that the plan would pay "
    "for two new schools and a library. Some residents were not happy with the cost of the project, and they "
    "asked the council to wait until next year. The mayor said the vote will take place in the spring. "
)


def _stats(n: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    ll = -rng.gamma(1.5, 2.0, n)
    return (ll, rng.uniform(0.0, 6.0, n), np.log(rng.integers(1, 500, n).astype(np.float64))), rng.integers(1, 49152, n)


def test_inputs_are_scaled_flagged_padded_and_cut() -> None:
    (a, ids_a), (b, ids_b) = _stats(40, 0), _stats(300, 1)
    channels, mask, tokens = sequence_inputs([a, b], [ids_a, ids_b], 256)
    assert channels.shape == (2, 4, 256)
    assert channels.dtype == np.float32
    np.testing.assert_allclose(channels[0, 0, :40], a[0] / CHANNEL_SCALE, rtol=1e-6)
    np.testing.assert_allclose(channels[0, 2, :40], a[2] / CHANNEL_SCALE, rtol=1e-6)
    assert channels[0, :, 40:].sum() == 0.0
    assert mask[0].sum() == 40
    assert tokens[0, 40:].sum() == 0
    assert channels[0, 3].sum() == TAIL_START  # the first-32-tokens flag
    assert mask[1].sum() == 256  # cut at max_tokens
    assert tokens[1, 255] == ids_b[255]
    with pytest.raises(ValueError, match="length"):
        sequence_inputs([a], [ids_a[:10]], 256)


def _shipped(name: str) -> SequenceModel:
    path = build_text_detector(WEIGHTS).manifest.files[name]
    return SequenceModel(path, onnx_session(path, Device(intra_op_threads=1)), 256)


def test_shipped_cnn_is_batch_independent_reads_no_token_ids_and_ignores_tokens_past_the_cut() -> None:
    model = _shipped("seq_cnn_stats_logit")
    assert "tokens" not in model.inputs  # statistics only: the token embedding variants failed leave-news-out
    (a, ids_a), (b, ids_b), (c, ids_c) = _stats(60, 2), _stats(256, 3), _stats(400, 4)
    both = model.logits([a, b], [ids_a, ids_b])
    one = np.concatenate([model.logits([a], [ids_a]), model.logits([b], [ids_b])])
    np.testing.assert_allclose(both, one, rtol=1e-5, atol=1e-5)
    cut = tuple(v[:256] for v in c)
    np.testing.assert_allclose(model.logits([c], [ids_c]), model.logits([cut], [ids_c[:256]]), rtol=1e-6)
    np.testing.assert_allclose(model.logits([a], [ids_a]), model.logits([a], [ids_b[:60]]), rtol=1e-6)
    assert model.logits([], []).shape == (0,)
    assert abs(both[0] - both[1]) > 1e-4  # different sequences, different logits


def test_cascade_feeds_the_cnn_logits_to_the_stacker() -> None:
    detector = build_text_detector(WEIGHTS, lm_mode="always")
    detector.load(Device(intra_op_threads=1))
    stacker = detector.stacker
    assert stacker is not None
    assert stacker.features[-len(VARIANTS) - 1:] == (*VARIANTS, "encoder")  # 0.6.0: the encoder logit comes last
    prepared = detector.preprocess(TextItem(TEXT))
    assert prepared.lm_features is not None
    assert prepared.lm_features.shape == (len(FEATURE_NAMES) + len(VARIANTS) + 1,)
    assert prepared.lm_features[-1] == pytest.approx(prepared.encoder_logit)
    (out,) = detector.postprocess([prepared], detector.forward([prepared]))
    for j, name in enumerate(VARIANTS):
        assert out.extras["lm_" + name] == pytest.approx(float(prepared.lm_features[len(FEATURE_NAMES) + j]))
    z = detector._first_score(out.extras["ngram_logit"], out.extras["encoder_logit"])  # the front score
    names = (*FEATURE_NAMES, *VARIANTS, "encoder")
    assert out.raw_score == pytest.approx(stacker.logit(z, prepared.lm_features, names))
    moved = prepared.lm_features.copy()
    moved[-1] += 5.0
    coef = stacker.coef[-1] / stacker.std[-1]
    assert stacker.logit(z, moved, names) - out.raw_score == pytest.approx(5.0 * coef, rel=1e-6)


def test_a_stacker_that_reads_the_cnn_needs_its_file(tmp_path: Path) -> None:
    for name in ("model.onnx", "wordfreq.npy", "encoder.onnx", "encoder_tokenizer.json"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]["seq_cnn_stats_logit"]
    (tmp_path / "seq_cnn_stats.onnx").unlink(missing_ok=True)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(WeightsCorruptError, match="seq_cnn_stats_logit"):
        build_text_detector(tmp_path)
    assert build_text_detector(tmp_path, lm_mode="off").stacker is None  # the n-gram stage alone still loads


def test_training_exports_each_variant_to_an_onnx_file_that_matches_torch(tmp_path: Path) -> None:
    """A tiny fit of every variant (shipped or explored) on synthetic sequences (AI texts: higher log p),
    exported and re-read with ONNX Runtime through the service's ``SequenceModel``."""
    pytest.importorskip("torch")
    from detectors.text.lm import sequence_training as st

    rng = np.random.default_rng(0)
    stats, ids, y = [], [], []
    for i in range(96):
        (ll, ent, rank), tok = _stats(int(rng.integers(20, 200)), 100 + i)
        label = i % 2
        stats.append((ll * (0.5 if label else 1.0), ent, rank))
        ids.append(tok)
        y.append(label)
    feed = dict(zip(("channels", "mask", "tokens"), sequence_inputs(stats, ids, 256), strict=True))
    fit_rows, stop_rows = np.arange(0, 80), np.arange(80, 96)
    w = np.ones(96)
    for name, variant in ALL_VARIANTS.items():
        model, log = st.fit(feed, np.array(y), w, fit_rows, stop_rows, variant, epochs=2)
        assert len(log) == 2
        path = tmp_path / variant.file
        st.export(model, path, 256)
        onnx_model = SequenceModel(path, onnx_session(path, Device(intra_op_threads=1)), 256)
        assert ("tokens" in onnx_model.inputs) == (variant.embed_dim > 0), name
        torch_logits = st.predict_torch(model, feed, np.arange(96))
        np.testing.assert_allclose(onnx_model.run(feed), torch_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(onnx_model.logits(stats[:3], ids[:3]), torch_logits[:3], rtol=1e-4, atol=1e-4)
