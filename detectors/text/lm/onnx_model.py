"""SmolLM2 (Llama) forward pass as an ONNX graph for ONNX Runtime, built in memory from the GGUF's weights.

Caveats first: the graph is made at load time (a few seconds) from the same dequantised float32 weights
as :class:`~detectors.text.lm.numpy_model.NumpyLlama`, so the GGUF stays the one shipped,
sha256-checked artifact and nothing is written to disk. It is float32 throughout and matches the numpy
pass to float rounding (max |logit difference| ~1e-4 on 256 tokens), so the stacker reads the features
it was fitted on. int8 was measured and left out (benchmarks/NOTES.md, round 11): ONNX Runtime's dynamic
quantisation (one activation scale per tensor) is ~4x faster per matrix product but moved per-token
log-probabilities by 0.05-0.8 nats on average, depending on which products it quantised; its block-wise
8-bit and 4-bit kernels (``MatMulNBits``) were no faster than float32 on this machine. At most
``positions`` tokens per call (the RoPE tables are in the graph).

Layout: the query/key columns are permuted within each head from llama.cpp's adjacent-pair order to
the half-split order, so that RoPE is ``x * cos + rotate_half(x) * sin`` on contiguous halves; the
same permutation on both sides leaves every attention score unchanged. A tied input embedding is read
from the output matrix (one copy of the 49,152 x 576 table, not two).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from detectors.text.lm.weights import LayerWeights, LlamaWeights, rope_tables

MIN_POSITIONS = 512
EXTERNAL_BYTES = 1 << 16  # weight matrices this large stay numpy arrays that ONNX Runtime reads in place


def half_split_columns(n_heads: int, head_dim: int) -> np.ndarray:
    """Column order that takes each head's adjacent pairs (0,1), (2,3)... to (first half, second half)."""
    within = np.concatenate([np.arange(0, head_dim, 2), np.arange(1, head_dim, 2)])
    return np.concatenate([h * head_dim + within for h in range(n_heads)])


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        import onnx
        from onnx import helper, numpy_helper

        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.nodes: list[object] = []
        self.inits: list[object] = []
        self.external: dict[str, np.ndarray] = {}  # large weights: graph inputs, handed to ONNX Runtime by reference
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value: np.ndarray | np.generic, stem: str = "c") -> str:
        name = self.name(stem)
        array = np.asarray(value)  # np.ascontiguousarray would make a scalar 1-D
        array = array if array.flags.c_contiguous else array.copy()
        if array.ndim >= 2 and array.nbytes >= EXTERNAL_BYTES:  # the session is handed its bytes
            self.external[name] = array
            tensor = self.onnx.TensorProto(name=name, dims=list(array.shape),
                                           data_type=self.helper.np_dtype_to_tensor_dtype(array.dtype),
                                           data_location=self.onnx.TensorProto.EXTERNAL)
            for key, entry in (("location", "supplied-by-session"), ("offset", "0"), ("length", str(array.nbytes))):
                tensor.external_data.add(key=key, value=entry)
            self.inits.append(tensor)
        else:
            self.inits.append(self.numpy_helper.from_array(array, name))
        return name



    def op(self, op_type: str, inputs: Iterable[str], n_out: int = 1, **attrs: Any) -> list[str]:
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs

    def one(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        return self.op(op_type, inputs, **attrs)[0]


class _LlamaBuilder:
    def __init__(self, weights: LlamaWeights, positions: int) -> None:
        self.w, self.cfg = weights, weights.config
        self.g = _Graph()
        self.positions = positions
        self.i64 = {v: self.g.const(np.array(v, dtype=np.int64), "i") for v in (0, 1)}  # scalars
        self.axis = {v: self.g.const(np.array([v], dtype=np.int64), "axis") for v in (0, 1)}  # 1-D axes

    def shape(self, *dims: int) -> str:
        return self.g.const(np.array(dims, dtype=np.int64), "shape")

    def matmul(self, x: str, w: np.ndarray) -> str:
        return self.g.one("MatMul", x, self.g.const(np.asarray(w, dtype=np.float32), "w"))

    def rms_norm(self, x: str, weight: np.ndarray) -> str:
        g = self.g
        mean_sq = g.one("ReduceMean", g.one("Mul", x, x), axes=[-1], keepdims=1)
        inv = g.one("Reciprocal", g.one("Sqrt", g.one("Add", mean_sq, g.const(np.float32(self.cfg.rms_eps), "eps"))))
        return g.one("Mul", g.one("Mul", x, inv), g.const(weight.astype(np.float32), "norm"))

    def rope(self, x: str, cos: str, sin: str) -> str:
        """``x`` (T, heads, head_dim) in half-split layout; cos/sin (T, 1, head_dim)."""
        g = self.g
        half = self.cfg.head_dim // 2
        first, second = g.op("Split", [x, g.const(np.array([half, half], dtype=np.int64), "split")], n_out=2, axis=-1)
        rotated = g.one("Concat", g.one("Neg", second), first, axis=-1)
        return g.one("Add", g.one("Mul", x, cos), g.one("Mul", rotated, sin))

    def attention(self, h: str, layer: LayerWeights, cos: str, sin: str, mask: str) -> str:
        g, cfg = self.g, self.cfg
        hd, n_kv = cfg.head_dim, cfg.n_kv_heads
        group = cfg.n_heads // n_kv
        q_cols = half_split_columns(cfg.n_heads, hd)
        k_cols = half_split_columns(n_kv, hd)
        q = g.one("Reshape", self.matmul(h, layer.wq[:, q_cols]), self.shape(-1, cfg.n_heads, hd))
        k = g.one("Reshape", self.matmul(h, layer.wk[:, k_cols]), self.shape(-1, n_kv, hd))
        v = g.one("Reshape", self.matmul(h, layer.wv), self.shape(-1, n_kv, hd))
        q = g.one("Transpose", self.rope(q, cos, sin), perm=[1, 0, 2])  # (heads, T, hd)
        q = g.one("Reshape", q, self.shape(n_kv, -1, hd))  # the q heads of one kv head stacked: (n_kv, group*T, hd)
        k = g.one("Transpose", self.rope(k, cos, sin), perm=[1, 2, 0])  # (n_kv, hd, T)
        v = g.one("Transpose", v, perm=[1, 0, 2])  # (n_kv, T, hd)
        scores = g.one("Mul", g.one("MatMul", q, k), g.const(np.float32(1.0 / np.sqrt(hd)), "scale"))
        t = g.one("Gather", g.one("Shape", h), self.i64[0], axis=0)
        four_d = g.one("Concat", self.g.const(np.array([n_kv, group], dtype=np.int64), "s"),
                       g.one("Unsqueeze", t, self.axis[0]), g.one("Unsqueeze", t, self.axis[0]), axis=0)
        scores = g.one("Add", g.one("Reshape", scores, four_d), mask)
        probs = g.one("Reshape", g.one("Softmax", scores, axis=-1), self.shape(n_kv, -1, 0))
        out = g.one("Reshape", g.one("MatMul", probs, v), self.shape(cfg.n_heads, -1, hd))
        out = g.one("Reshape", g.one("Transpose", out, perm=[1, 0, 2]), self.shape(-1, cfg.d_model))
        return self.matmul(out, layer.wo)

    def build(self) -> tuple[bytes, dict[str, np.ndarray]]:
        import onnx

        g, cfg = self.g, self.cfg
        helper = g.helper
        ids = "ids"
        t = g.one("Shape", ids)  # (1,) = [T]
        output = g.const(np.asarray(self.w.output, dtype=np.float32), "output")  # (d_model, vocab)
        if np.array_equal(self.w.embedding, self.w.output.T):  # tied: gather the columns of the output matrix
            x = g.one("Transpose", g.one("Gather", output, ids, axis=1), perm=[1, 0])
        else:
            x = g.one("Gather", g.const(np.asarray(self.w.embedding, dtype=np.float32), "embedding"), ids, axis=0)
        cos_table, sin_table = rope_tables(cfg, self.positions)
        window = [g.const(np.array([0], dtype=np.int64), "start"), t, g.const(np.array([0], dtype=np.int64), "axis")]
        cos = g.one("Slice", g.const(np.concatenate([cos_table, cos_table], axis=1), "cos"), *window)
        sin = g.one("Slice", g.const(np.concatenate([sin_table, sin_table], axis=1), "sin"), *window)
        cos = g.one("Unsqueeze", cos, self.axis[1])
        sin = g.one("Unsqueeze", sin, self.axis[1])
        steps = g.one("Range", self.i64[0], g.one("Squeeze", t, self.axis[0]), self.i64[1])
        later = g.one("Greater", g.one("Unsqueeze", steps, self.axis[0]), g.one("Unsqueeze", steps, self.axis[1]))
        mask = g.one("Where", later, g.const(np.float32(-np.inf), "ninf"), g.const(np.float32(0.0), "zero"))
        for layer in self.w.layers:
            x = g.one("Add", x, self.attention(self.rms_norm(x, layer.attn_norm), layer, cos, sin, mask))
            h = self.rms_norm(x, layer.ffn_norm)
            gate = self.matmul(h, layer.w_gate)
            act = g.one("Mul", g.one("Mul", gate, g.one("Sigmoid", gate)), self.matmul(h, layer.w_up))
            x = g.one("Add", x, self.matmul(act, layer.w_down))
        logits = g.one("MatMul", self.rms_norm(x, self.w.output_norm), output)
        g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
        graph = helper.make_graph(
            g.nodes, "smollm2", [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["T"])],
            [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["T", cfg.vocab_size])], g.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bylinecheck")
        model.ir_version = 8
        return bytes(model.SerializeToString()), g.external


def build_llama_onnx(weights: LlamaWeights, positions: int = MIN_POSITIONS) -> tuple[bytes, dict[str, np.ndarray]]:
    """Serialized ONNX model (``ids`` (T,) int64 -> ``logits`` (T, vocab) float32, at most ``positions`` tokens) and
    its large weights by name: external-data initializers whose bytes a session is handed in memory
    (``SessionOptions.add_external_initializers``) instead of reading them from the model or a file."""
    return _LlamaBuilder(weights, max(positions, 1)).build()


class OnnxLlama:
    """The forward pass in ONNX Runtime, with :class:`~detectors.text.lm.numpy_model.NumpyLlama`'s interface
    (``config``, ``logits(ids)``, ``_rope(n)``). Thread-safe (ONNX Runtime sessions are).

    The service's CPU path with ``BYLINECHECK_TEXT_LM_RUNTIME=onnx`` (numpy is the default): measured against numpy on
    this project's 2-core machine (``benchmarks/lm_onnx.py``, benchmarks/NOTES.md round 11) it is ~23% faster per
    256-token pass with ONNX Runtime's pre-packed weights, which add ~0.95 GB of resident memory per process (0.68 ->
    1.64 GB); without pre-packing (``prepack=False``) 0-11% faster for +0.6 GB.
    ``weights`` must stay alive as long as this object (the session reads its arrays in place)."""

    def __init__(self, weights: LlamaWeights, threads: int = 1, positions: int = MIN_POSITIONS,
                 prepack: bool = True) -> None:
        import onnxruntime as ort

        self.config = weights.config
        self.positions = max(positions, 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        if not prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        model, external = self._graph(weights)
        self._weights = [ort.OrtValue.ortvalue_from_numpy(array) for array in external.values()]  # kept alive here
        options.add_external_initializers(list(external), self._weights)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _graph(self, weights: LlamaWeights) -> tuple[bytes, dict[str, np.ndarray]]:
        """The model bytes and external weights to open (a subclass may build another graph)."""
        return build_llama_onnx(weights, self.positions)

    def _rope(self, n: int) -> None:
        """Nothing to build (the tables are in the graph); fails early past the graph's positions."""
        if n > self.positions:
            raise ValueError(f"{n} tokens exceed the graph's {self.positions} positions")

    def logits(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("ids must be a non-empty 1-D array")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError("token id out of range")
        self._rope(ids.size)
        return np.asarray(self.session.run(None, {"ids": ids})[0], dtype=np.float32)
