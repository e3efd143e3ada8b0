"""The PyTorch runtime (used on CUDA without onnxruntime-gpu) matches ONNX Runtime on the shipped graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device, DeviceKind
from detectors.runtime import onnx_session, torch_onnx_session

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def _feeds(session: object, model: Path) -> dict[str, np.ndarray]:
    import onnx

    rng = np.random.default_rng(0)
    feeds = {}
    for inp in onnx.load(str(model)).graph.input:
        shape = [d.dim_value or 3 for d in inp.type.tensor_type.shape.dim]
        elem = inp.type.tensor_type.elem_type
        if elem == onnx.TensorProto.INT64:
            feeds[inp.name] = rng.integers(0, 1000, shape).astype(np.int64)
        else:
            feeds[inp.name] = rng.normal(size=shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("name", ["text/model.onnx", "face/model_v2.onnx"])
def test_torch_evaluator_matches_onnxruntime(name: str) -> None:
    pytest.importorskip("torch")
    model = WEIGHTS / name
    if not model.is_file():
        pytest.fail(f"shipped weights missing: {model}")
    ort_session = onnx_session(model, Device())
    torch_session = torch_onnx_session(model, Device(kind=DeviceKind.CPU))
    feeds = _feeds(ort_session, model)
    expected = ort_session.run(None, feeds)
    got = torch_session.run(None, feeds)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_unknown_operator_is_refused_at_load(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from onnx import TensorProto, helper, save

    node = helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->i")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "m.onnx"
    save(helper.make_model(graph), str(path))
    from detectors.torch_onnx import UnsupportedOperatorError

    with pytest.raises(UnsupportedOperatorError):
        torch_onnx_session(path, Device())
