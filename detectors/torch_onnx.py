"""Run an ONNX graph with PyTorch on a CUDA (or CPU) device: the PyTorch/CUDA runtime path.

Caveats first: this evaluates the graph node by node with torch ops, for the operator subset our
shipped and exported models use (listed in ``_OPS``); an unknown operator raises
:class:`UnsupportedOperatorError` at load time, never at inference. It exists because
onnxruntime-gpu is a separate 300 MB install; where it is present, ONNX Runtime's CUDA provider is
used instead. The interface mimics ``onnxruntime.InferenceSession.run``. Needs ``torch`` and ``onnx``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.contract import DetectorError


class UnsupportedOperatorError(DetectorError):
    """The graph uses an operator this evaluator does not implement."""


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _axes(args: Sequence[Any], attrs: Mapping[str, Any]) -> list[int] | None:
    if len(args) > 1 and args[1] is not None:
        return [int(a) for a in args[1].tolist()]
    axes = attrs.get("axes")
    return [int(a) for a in axes] if axes is not None else None


def _reduce(fn: str) -> Callable[..., Any]:
    def op(torch: Any, args: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
        x = args[0]
        axes = _axes(args, attrs)
        keep = bool(attrs.get("keepdims", 1))
        if axes is None:
            return getattr(torch, fn)(x).reshape([1] * x.dim() if keep else [])
        return getattr(torch, fn)(x, dim=axes, keepdim=keep)

    return op


def _conv(torch: Any, args: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[: len(pads) // 2] != pads[len(pads) // 2:]:
        raise UnsupportedOperatorError("asymmetric Conv padding")
    return torch.nn.functional.conv2d(args[0], args[1], args[2] if len(args) > 2 else None,
                                      stride=list(attrs.get("strides", [1, 1])), padding=pads[: len(pads) // 2],
                                      dilation=list(attrs.get("dilations", [1, 1])), groups=int(attrs.get("group", 1)))


def _gemm(torch: Any, args: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    a = args[0].T if attrs.get("transA", 0) else args[0]
    b = args[1].T if attrs.get("transB", 0) else args[1]
    out = float(attrs.get("alpha", 1.0)) * (a @ b)
    return out + float(attrs.get("beta", 1.0)) * args[2] if len(args) > 2 else out


def _cast(torch: Any, args: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    from onnx import helper

    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))
    return args[0].to(getattr(torch, dtype.name))


def _pool(torch: Any, args: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return torch.nn.functional.max_pool2d(args[0], list(attrs["kernel_shape"]), list(attrs.get("strides", [1, 1])),
                                          pads[: len(pads) // 2])


_OPS: dict[str, Callable[[Any, Sequence[Any], Mapping[str, Any]], Any]] = {
    "Add": lambda t, a, _: a[0] + a[1],
    "Sub": lambda t, a, _: a[0] - a[1],
    "Mul": lambda t, a, _: a[0] * a[1],
    "Div": lambda t, a, _: a[0] / a[1],
    "MatMul": lambda t, a, _: a[0] @ a[1],
    "Relu": lambda t, a, _: t.relu(a[0]),
    "Sigmoid": lambda t, a, _: t.sigmoid(a[0]),
    "Tanh": lambda t, a, _: t.tanh(a[0]),
    "Identity": lambda t, a, _: a[0],
    "Gather": lambda t, a, at: t.index_select(a[0], int(at.get("axis", 0)), a[1].reshape(-1).long()).reshape(
        *a[0].shape[: int(at.get("axis", 0))], *a[1].shape, *a[0].shape[int(at.get("axis", 0)) + 1:]),
    "Flatten": lambda t, a, at: t.flatten(a[0], int(at.get("axis", 1))),
    "Reshape": lambda t, a, _: a[0].reshape([int(v) for v in a[1].tolist()]),
    "Transpose": lambda t, a, at: a[0].permute(*[int(p) for p in at["perm"]]),
    "Softmax": lambda t, a, at: t.softmax(a[0], dim=int(at.get("axis", -1))),
    "GlobalAveragePool": lambda t, a, _: a[0].mean(dim=(2, 3), keepdim=True),
    "Unsqueeze": lambda t, a, at: a[0].reshape(
        np.expand_dims(np.empty(tuple(a[0].shape), dtype=np.bool_), tuple(_axes(a, at) or [])).shape),
    "Concat": lambda t, a, at: t.cat(list(a), dim=int(at["axis"])),
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce("sum"),
    "Conv": _conv,
    "Gemm": _gemm,
    "Cast": _cast,
    "MaxPool": _pool,
}


class TorchOnnxSession:
    """An ``InferenceSession``-like object evaluating the graph with torch on ``device``."""

    def __init__(self, model_path: Path, device: Any) -> None:
        import onnx
        import torch
        from onnx import numpy_helper

        self.torch = torch
        self.device = device
        graph = onnx.load(str(model_path)).graph
        unknown = sorted({n.op_type for n in graph.node if n.op_type not in _OPS and n.op_type != "Constant"})
        if unknown:
            raise UnsupportedOperatorError(f"operators not supported by the torch runtime: {unknown}")
        self.constants: dict[str, Any] = {
            init.name: torch.from_numpy(numpy_helper.to_array(init).copy()).to(device) for init in graph.initializer
        }
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in graph.node]
        for op, _inputs, outputs, attrs in self.nodes:
            if op == "Constant":
                self.constants[outputs[0]] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy()).to(device)
        self.output_names = [o.name for o in graph.output]

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        values = dict(self.constants)
        with torch.inference_mode():
            for name, array in feeds.items():
                values[name] = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
            for op, inputs, outputs, attrs in self.nodes:
                if op == "Constant":
                    continue
                args = [values[i] if i else None for i in inputs]
                values[outputs[0]] = _OPS[op](torch, args, attrs)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return [values[n].detach().cpu().numpy() for n in (output_names or self.output_names)]
