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
from detectors.text.lm.sequence import CHANNEL_SCALE, VARIANTS, SequenceModel, sequence_inputs
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


def test_shipped_cnn_is_batch_independent_and_ignores_tokens_past_the_cut() -> None:
    model = _shipped("seq_cnn_logit")
    (a, ids_a), (b, ids_b), (c, ids_c) = _stats(60, 2), _stats(256, 3), _stats(400, 4)
    both = model.logits([a, b], [ids_a, ids_b])
    one = np.concatenate([model.logits([a], [ids_a]), model.logits([b], [ids_b])])
    np.testing.assert_allclose(both, one, rtol=1e-5, atol=1e-5)
    cut = tuple(v[:256] for v in c)
    np.testing.assert_allclose(model.logits([c], [ids_c]), model.logits([cut], [ids_c[:256]]), rtol=1e-6)
    assert model.logits([], []).shape == (0,)
    assert abs(both[0] - both[1]) > 1e-4  # different sequences, different logits


def test_each_variant_reads_only_its_inputs() -> None:
    """The statistics-only CNN ignores token ids; the embedding-only CNN ignores the statistics."""
    (a, ids), (b, other_ids) = _stats(120, 5), _stats(120, 6)
    stats_only, tokens_only, both = _shipped("seq_cnn_stats_logit"), _shipped("seq_cnn_tokens_logit"), _shipped("seq_cnn_logit")
    assert "tokens" not in stats_only.inputs
    np.testing.assert_allclose(stats_only.logits([a], [ids]), stats_only.logits([a], [other_ids]), rtol=1e-6)
    np.testing.assert_allclose(tokens_only.logits([a], [ids]), tokens_only.logits([b], [ids]), rtol=1e-6)
    assert abs(tokens_only.logits([a], [ids])[0] - tokens_only.logits([a], [other_ids])[0]) > 1e-4
    assert abs(stats_only.logits([a], [ids])[0] - stats_only.logits([b], [ids])[0]) > 1e-4
    assert abs(both.logits([a], [ids])[0] - both.logits([a], [other_ids])[0]) > 1e-4


def test_cascade_feeds_the_cnn_logits_to_the_stacker() -> None:
    detector = build_text_detector(WEIGHTS, lm_mode="always")
    detector.load(Device(intra_op_threads=1))
    stacker = detector.stacker
    assert stacker is not None
    assert stacker.features[-len(VARIANTS):] == tuple(VARIANTS)
    prepared = detector.preprocess(TextItem(TEXT))
    assert prepared.lm_features is not None
    assert prepared.lm_features.shape == (len(FEATURE_NAMES) + len(VARIANTS),)
    (out,) = detector.postprocess([prepared], detector.forward([prepared]))
    for j, name in enumerate(VARIANTS):
        assert out.extras["lm_" + name] == pytest.approx(float(prepared.lm_features[len(FEATURE_NAMES) + j]))
    z = out.extras["ngram_logit"]
    names = (*FEATURE_NAMES, *VARIANTS)
    assert out.raw_score == pytest.approx(stacker.logit(z, prepared.lm_features, names))
    moved = prepared.lm_features.copy()
    moved[-1] += 5.0
    coef = stacker.coef[-1] / stacker.std[-1]
    assert stacker.logit(z, moved, names) - out.raw_score == pytest.approx(5.0 * coef, rel=1e-6)


def test_a_stacker_that_reads_the_cnn_needs_its_file(tmp_path: Path) -> None:
    for name in ("model.onnx", "wordfreq.npy", "seq_cnn.onnx", "seq_cnn_tokens.onnx"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]["seq_cnn_stats_logit"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(WeightsCorruptError, match="seq_cnn_stats_logit"):
        build_text_detector(tmp_path)
    assert build_text_detector(tmp_path, lm_mode="off").stacker is None  # the n-gram stage alone still loads
