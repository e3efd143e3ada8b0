"""Builds the ONNX graph of the linear text model (training side: imports ``onnx``).

Graph: ``logit[N] = sum_k dequant(W[indices[N, k]]) * values[N, k] + style[N, F] @ w_style + bias``.
``W`` is stored as int8 with one float scale when ``quantise`` is true (4x smaller), else float32.
Padding entries use index 0 with value 0, so they add nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17


def build_linear_model(weights: np.ndarray, style_weights: np.ndarray, bias: float, quantise: bool = True) -> bytes:
    """Serialised ONNX model for the given hashed weights [D], style weights [F] and bias."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.asarray(style_weights, dtype=np.float32).reshape(-1), "w_style"),
        numpy_helper.from_array(np.array(bias, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = []
    if quantise:
        scale = float(np.abs(weights).max() / 127.0) or 1.0
        q = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
        inits += [numpy_helper.from_array(q, "w_hash_q"), numpy_helper.from_array(np.array(scale, np.float32), "scale")]
        nodes += [
            helper.make_node("Gather", ["w_hash_q", "indices"], ["gq"]),
            helper.make_node("Cast", ["gq"], ["gf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["gf", "scale"], ["g"]),
        ]
    else:
        inits.append(numpy_helper.from_array(np.asarray(weights, dtype=np.float32), "w_hash"))
        nodes.append(helper.make_node("Gather", ["w_hash", "indices"], ["g"]))
    nodes += [
        helper.make_node("Mul", ["g", "values"], ["gv"]),
        helper.make_node("ReduceSum", ["gv", "axis1"], ["hashed"], keepdims=0),
        helper.make_node("MatMul", ["style", "w_style"], ["styled"]),
        helper.make_node("Add", ["hashed", "styled"], ["sum"]),
        helper.make_node("Add", ["sum", "bias"], ["logit"]),
    ]
    n_style = int(np.asarray(style_weights).size)
    graph = helper.make_graph(
        nodes,
        "bylinecheck_text_linear",
        [
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["N", "K"]),
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", "K"]),
            helper.make_tensor_value_info("style", TensorProto.FLOAT, ["N", n_style]),
        ],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bylinecheck")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def write_linear_model(path: Path, weights: np.ndarray, style_weights: np.ndarray, bias: float, quantise: bool) -> None:
    path.write_bytes(build_linear_model(weights, style_weights, bias, quantise))
