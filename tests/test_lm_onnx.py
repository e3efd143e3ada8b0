"""The ONNX Runtime build of the Llama forward pass against the numpy one, on a tiny GGUF made on the fly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from detectors.text.lm import onnx_model
from detectors.text.lm.numpy_model import NumpyLlama
from detectors.text.lm.onnx_model import OnnxLlama, half_split_columns
from detectors.text.lm.weights import load_llama
from tests.test_lm_features import tiny_llama


@pytest.mark.parametrize("external_bytes", [1 << 30, 0], ids=["weights-in-model", "weights-by-reference"])
@pytest.mark.parametrize("tied", [True, False])
def test_onnx_forward_matches_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, external_bytes: int,
                                    tied: bool) -> None:
    monkeypatch.setattr(onnx_model, "EXTERNAL_BYTES", external_bytes)
    tiny_llama(tmp_path / "t.gguf", seed=3)
    weights = load_llama(tmp_path / "t.gguf")
    if not tied:
        other = np.random.default_rng(4).normal(0, 0.3, weights.output.shape).astype(np.float32)
        weights = dataclasses.replace(weights, output=other)
    ids = np.random.default_rng(5).integers(0, weights.config.vocab_size, size=37)
    expected = NumpyLlama(weights).logits(ids)
    got = OnnxLlama(weights, positions=64).logits(ids)
    assert got.shape == expected.shape == (37, weights.config.vocab_size)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
    # causal: the logits of a prefix do not depend on the tokens after it
    np.testing.assert_allclose(OnnxLlama(weights, positions=64).logits(ids[:9]), got[:9], atol=2e-4, rtol=1e-4)


def test_onnx_forward_refuses_what_numpy_refuses(tmp_path: Path) -> None:
    tiny_llama(tmp_path / "t.gguf")
    model = OnnxLlama(load_llama(tmp_path / "t.gguf"), positions=16)
    vocab = model.config.vocab_size
    for bad in (np.array([], dtype=np.int64), np.array([[1, 2]]), np.array([0, vocab]), np.array([-1, 2])):
        with pytest.raises(ValueError, match="non-empty 1-D|out of range"):
            model.logits(bad)
    with pytest.raises(ValueError, match="positions"):
        model.logits(np.zeros(17, dtype=np.int64))
    assert model.logits(np.zeros(16, dtype=np.int64)).shape == (16, vocab)


def test_half_split_columns_take_pairs_to_halves() -> None:
    order = half_split_columns(2, 4)
    assert order.tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_scorer_onnx_runtime_gives_the_numpy_features(tmp_path: Path) -> None:
    from detectors.text.lm.scorer import LMScorer

    tiny_llama(tmp_path / "m.gguf", seed=6)
    ids = np.random.default_rng(7).integers(1, 40, size=23)
    numpy_features = LMScorer(tmp_path / "m.gguf", max_tokens=16).features_from_ids(ids)
    scorer = LMScorer(tmp_path / "m.gguf", max_tokens=16, runtime="onnx")
    assert isinstance(scorer.model, OnnxLlama)
    got = scorer.features_from_ids(ids)
    np.testing.assert_allclose(got, numpy_features, rtol=1e-4, atol=1e-4)
    assert np.array_equal(np.isnan(got), np.isnan(numpy_features))
    with pytest.raises(ValueError, match="runtime"):
        LMScorer(tmp_path / "m.gguf", runtime="llama.cpp")
