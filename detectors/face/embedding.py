"""dlib's 128-d face descriptor (``dlib_face_recognition_resnet_model_v1``) evaluated with ONNX Runtime.

Caveats first: the same network and weights as ``dlib.face_recognition_model_v1``, read from dlib's own
``.dat`` file at load and rebuilt as an ONNX graph in memory (the ``.dat`` is the only copy of the weights; the
``onnx`` package is needed at run time to build the graph). It is evaluated by ONNX Runtime on one thread
(~9-10 ms per chip on one core) instead of dlib's built-in matrix code (the ``dlib-bin`` wheel has no BLAS:
~100 ms). The descriptors agree with dlib's to 5e-7 (largest difference over 147 real faces), so
descriptors stored by earlier versions stay comparable; :func:`load_face_net` checks that at load against
:class:`NumpyFaceNet`, a plain numpy evaluation of the same weights (~25 ms, also the reference in
``tests/test_face_embedding.py``), and falls back to it if ONNX Runtime disagrees. The face chip (150 x 150,
padding 0.25) is still cut by dlib (``dlib.get_face_chip``), from whatever image the landmarks belong to.

The network (dlib's ``dnn_face_recognition_ex.cpp``): 7x7/2 convolution, 3x3/2 max pool, then residual
blocks of two 3x3 convolutions with per-channel affine (folded batch norm) at 32, 64, 128, 256 and 256
channels (the first block of each stage strides by 2 and adds a 2x2/2 average pool of its input), global
average pool, and a 256 x 128 linear layer. Strided layers have no padding; where a residual sum's operands
differ in size (channels or rows), dlib zero-pads the smaller one at the end, and so do we.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25
_INPUT_MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)
# residual stages in forward order: (channels, blocks); the first block of every stage but the first strides
_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
STAGE_CHANNELS = sum(channels for channels, _, _ in _STAGES)  # stage statistics per map (onnx_model)
GRID_CELLS = 4  # 2 x 2 cells of each stage map: rows [0, h // 2) and [h // 2, h), the same for columns
STAGES_DIM = 2 * STAGE_CHANNELS  # stage_features: per-channel mean and standard deviation of each whole map
GRID_DIM = 2 * GRID_CELLS * STAGE_CHANNELS  # grid_features: the same in each cell (face 2.6.0 on)
SUMMARY_DIM = STAGES_DIM + GRID_DIM  # what FaceNet.describe returns beside the descriptor: stage features, then grid
_TAG = re.compile(rb"\x01\x05con_4|\x01\x07affine_|\x01\x04fc_2")
# largest |difference| to the numpy evaluation accepted at load (measured: < 5e-7; the reuse threshold is 0.35 euclidean)
CHECK_TOLERANCE = 1e-4

logger = logging.getLogger(__name__)


class FaceNetFormatError(ValueError):
    """The ``.dat`` file does not hold the layers this evaluator expects."""


class FaceNetMismatchError(RuntimeError):
    """Two evaluations of the descriptor network disagree by more than the tolerance."""


class FaceNet(Protocol):
    def descriptor(self, chip: np.ndarray) -> np.ndarray: ...

    def describe(self, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _spread(means: np.ndarray, squares: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(np.maximum(squares - means * means, 0.0)))


def stage_features(means: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """The network's stage statistics as one vector (float32, ``2 * STAGE_CHANNELS``): each residual stage's
    per-channel spatial mean, then per-channel spatial standard deviation, from the means of the maps and of their
    squares. They summarise the face's texture at five depths of a network trained on millions of real faces; the
    descriptor is a linear function of the last stage's means."""
    means = np.asarray(means, dtype=np.float64).reshape(-1)
    spread = _spread(means, np.asarray(squares, dtype=np.float64).reshape(-1))
    return np.concatenate([means, spread]).astype(np.float32)


def grid_features(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """The same statistics in each cell of a 2 x 2 grid over every stage map (float32, ``GRID_DIM``), from the cells'
    per-channel means and variances (``GRID_CELLS * STAGE_CHANNELS`` each: stage by stage, the cells top-left,
    top-right, bottom-left, bottom-right, each cell's channels). Out: stage by stage, cell by cell, the cell's
    per-channel means then standard deviations. They say where on the face (eyes and brow, mouth and chin, each side)
    the texture sits (``detectors/face/explore_stages_results.md``, follow-ups). The variances are taken about the
    cell's mean (two passes), not as mean square minus squared mean: in small cells of near-constant channels that
    difference cancels to rounding noise, which the square root then magnifies (numpy and ONNX Runtime differed by up
    to 7e-4 that way)."""
    means = np.asarray(means, dtype=np.float64).reshape(-1)
    spread = np.sqrt(np.maximum(np.asarray(variances, dtype=np.float64).reshape(-1), 0.0))
    parts, at = [], 0
    for channels, _, _ in _STAGES:
        for _cell in range(GRID_CELLS):
            parts += [means[at : at + channels], spread[at : at + channels]]
            at += channels
    return np.concatenate(parts).astype(np.float32)


def _cells(side: int) -> list[tuple[slice, slice]]:
    """The 2 x 2 grid's (rows, columns) slices of a ``side`` x ``side`` map, in ``grid_features``' order."""
    halves = (slice(0, side // 2), slice(side // 2, side))
    return [(rows, cols) for rows in halves for cols in halves]


@dataclass(frozen=True)
class _Conv:
    """One convolution: ``taps`` (kh * kw, k, filters), one k x filters matrix per kernel position."""

    taps: np.ndarray
    bias: np.ndarray
    size: int
    stride: int
    padding: int


def _read_int(data: bytes, pos: int) -> tuple[int, int]:
    """dlib's integer encoding: a control byte (bit 7 = negative, low 4 bits = byte count), little-endian bytes."""
    control = data[pos]
    count = control & 0x0F
    value = int.from_bytes(data[pos + 1 : pos + 1 + count], "little")
    return (-value if control & 0x80 else value), pos + 1 + count


def _read_tensor(data: bytes, pos: int) -> tuple[np.ndarray, int]:
    """A dlib tensor (version 2: four sizes, then little-endian float32 values), flattened."""
    version, pos = _read_int(data, pos)
    if version != 2:
        raise FaceNetFormatError(f"tensor serialisation version {version} is not supported")
    dims = []
    for _ in range(4):
        dim, pos = _read_int(data, pos)
        dims.append(dim)
    count = int(np.prod(dims))
    values = np.frombuffer(data, dtype="<f4", count=count, offset=pos).astype(np.float32)
    return values, pos + 4 * count


def _parse(data: bytes) -> tuple[list[_Conv], list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    convs: list[_Conv] = []
    affines: list[tuple[np.ndarray, np.ndarray]] = []
    fc: np.ndarray | None = None
    for match in _TAG.finditer(data):
        tag, pos = match.group(), match.end()
        if tag.endswith(b"con_4"):
            params, pos = _read_tensor(data, pos)
            fields = []
            for _ in range(7):
                value, pos = _read_int(data, pos)
                fields.append(value)
            filters, size, _, stride, _, padding, _ = fields
            channels = (params.size - filters) // (filters * size * size)
            kernel = params[: filters * channels * size * size].reshape(filters, channels, size, size)
            taps = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0).reshape(size * size, channels, filters))
            convs.append(_Conv(taps, params[filters * channels * size * size :].copy(), size, stride, padding))
        elif tag.endswith(b"affine_"):
            params, pos = _read_tensor(data, pos)
            half = params.size // 2
            affines.append((params[:half].copy(), params[half:].copy()))
        else:
            for _ in range(2):
                _, pos = _read_int(data, pos)
            params, pos = _read_tensor(data, pos)
            fc = params.reshape(256, 128)
    if fc is None or len(convs) != 29 or len(affines) != 29:
        raise FaceNetFormatError(f"expected 29 convolutions, 29 affine layers and 1 fc, found {len(convs)}/{len(affines)}")
    return convs, affines, fc


def _conv(x: np.ndarray, layer: _Conv) -> np.ndarray:
    """Correlation of an (H, W, C) float32 map with ``layer``'s filters (zero padding, dlib's output size)."""
    if layer.stride == 1:
        return _conv_shifted(x, layer)
    windows = np.lib.stride_tricks.sliding_window_view(x, (layer.size, layer.size), axis=(0, 1))
    windows = windows[:: layer.stride, :: layer.stride].transpose(0, 1, 3, 4, 2)  # (rows, cols, kh, kw, k)
    rows, cols = windows.shape[:2]
    out = windows.reshape(rows * cols, -1) @ layer.taps.reshape(-1, layer.taps.shape[2])
    out += layer.bias
    return np.asarray(out.reshape(rows, cols, -1))


def _conv_shifted(x: np.ndarray, layer: _Conv) -> np.ndarray:
    """Stride-1 convolution as one matrix product per kernel position over contiguous row-shifted slices.

    The padded map is flattened row-major; the output is computed on the padded width (the extra columns are
    discarded), so every slice is contiguous and nothing is copied into a patch matrix.
    """
    pad, size = layer.padding, layer.size
    height, width, channels = x.shape
    rows, cols = height + 2 * pad - size + 1, width + 2 * pad - size + 1
    padded = np.zeros((height + 2 * pad + 1, width + 2 * pad, channels), dtype=np.float32)
    padded[pad : pad + height, pad : pad + width] = x
    flat = padded.reshape(-1, channels)
    stride_row = width + 2 * pad
    length = rows * stride_row
    out = np.empty((length, layer.taps.shape[2]), dtype=np.float32)
    out[:] = layer.bias
    for tap in range(size * size):
        start = (tap // size) * stride_row + tap % size
        out += flat[start : start + length] @ layer.taps[tap]
    return out.reshape(rows, stride_row, -1)[:, :cols]


def _pool(x: np.ndarray, size: int, stride: int, reduce: str) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))[::stride, ::stride]
    return np.asarray(windows.max(axis=(3, 4)) if reduce == "max" else windows.mean(axis=(3, 4), dtype=np.float32))


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` where the smaller operand is zero-padded at the end of each axis (dlib's ``add_prev``)."""
    if a.shape == b.shape:
        return np.asarray(a + b)
    out = np.zeros(tuple(max(m, n) for m, n in zip(a.shape, b.shape, strict=True)), dtype=np.float32)
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


class NumpyFaceNet:
    """The descriptor network in numpy: the reference for :class:`OnnxFaceNet`, and its fallback.

    Caveats first: about 20-30 ms per chip on one core with one BLAS thread (set by :func:`load_face_net`);
    more threads are not faster on these small maps, and hide the work from ``time.thread_time``.
    Thread-safe (read-only weights).
    """

    def __init__(self, convs: list[_Conv], affines: list[tuple[np.ndarray, np.ndarray]], fc: np.ndarray) -> None:
        self._convs, self._affines, self._fc = convs, affines, fc

    @classmethod
    def load(cls, path: Path) -> NumpyFaceNet:
        """Read dlib's ``.dat`` file; raises FaceNetFormatError (or OSError) when it is not the expected net."""
        return cls(*_parse(path.read_bytes()))

    def onnx_bytes(self) -> bytes:
        """These weights as a serialised ONNX graph with the stage statistics (what :class:`OnnxFaceNet` runs; needs
        the ``onnx`` package)."""
        return bytes(onnx_model(self._convs, self._affines, self._fc, stage_statistics=True).SerializeToString())

    def _conv_affine(self, x: np.ndarray, index: int) -> np.ndarray:
        out = _conv(x, self._convs[index])
        gamma, beta = self._affines[index]
        out *= gamma
        out += beta
        return out

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        """128-d descriptor (float32) of a 150 x 150 RGB uint8 face chip cut by ``dlib.get_face_chip``."""
        return self.describe(chip)[0]

    def describe(self, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The descriptor and the network summary of one chip, from one pass: :func:`stage_features` then
        :func:`grid_features` (``SUMMARY_DIM`` values)."""
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected a {CHIP_SIZE}x{CHIP_SIZE} RGB chip, got {chip.shape}")
        x = (chip.astype(np.float32) - _INPUT_MEAN) / np.float32(256.0)
        x = np.maximum(self._conv_affine(x, 0), 0.0)
        x = _pool(x, 3, 2, "max")
        index = 1
        means, squares, cell_means, cell_variances = [], [], [], []
        for _channels, blocks, strided in _STAGES:
            for block in range(blocks):
                inner = np.maximum(self._conv_affine(x, index), 0.0)
                inner = self._conv_affine(inner, index + 1)
                skip = _pool(x, 2, 2, "mean") if strided and block == 0 else x
                x = np.maximum(_add_padded(inner, skip), 0.0)
                index += 2
            means.append(x.mean(axis=(0, 1), dtype=np.float32))
            squares.append((x * x).mean(axis=(0, 1), dtype=np.float32))
            for rows, cols in _cells(x.shape[0]):
                cell = x[rows, cols]
                cell_means.append(cell.mean(axis=(0, 1), dtype=np.float32))
                deviation = cell - cell_means[-1]
                cell_variances.append((deviation * deviation).mean(axis=(0, 1), dtype=np.float32))
        descriptor = np.asarray(means[-1] @ self._fc, dtype=np.float32)
        return descriptor, np.concatenate([stage_features(np.concatenate(means), np.concatenate(squares)),
                                           grid_features(np.concatenate(cell_means), np.concatenate(cell_variances))])


def _check_chip() -> np.ndarray:
    """A fixed 150 x 150 RGB chip for the load-time check: shading in each channel plus grain."""
    ramp = np.linspace(40.0, 220.0, CHIP_SIZE)
    base = np.stack([ramp[None, :].repeat(CHIP_SIZE, 0), ramp[:, None].repeat(CHIP_SIZE, 1),
                     np.full((CHIP_SIZE, CHIP_SIZE), 110.0)], -1)
    grain = np.random.default_rng(150).normal(0.0, 30.0, base.shape)
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def onnx_model(convs: list[_Conv], affines: list[tuple[np.ndarray, np.ndarray]], fc: np.ndarray,
               stage_statistics: bool = False) -> Any:
    """The network as an ONNX ModelProto: input ``chip`` (1, 150, 150, 3) uint8 RGB, output ``descriptor`` (1, 128);
    with ``stage_statistics``, also ``stage_mean`` and ``stage_square`` (1, 736): the spatial means of each residual
    stage's output map and of its square (32 + 64 + 128 + 256 + 256 channels, in stage order); and ``grid_mean`` and
    ``grid_variance`` (1, 4 x 736): each channel's mean and variance in each cell of a 2 x 2 grid of each map
    (``grid_features``' order; the variance about the cell's mean).

    Each affine layer is folded into its convolution (``W * gamma``, ``b * gamma + beta``). The input scaling
    ``(x - mean) / 256`` is done in the graph, so the caller passes dlib's chip as it is: the chip is transposed
    to NCHW while still uint8, the mean subtracted per channel plane (ONNX Runtime's broadcast over the last
    axis of an NHWC map cost ~1.3 ms, on planes 0.05 ms), and the 1/256 folded into the first convolution's
    weights (a power of two: exact). Residual operands of different sizes are zero-padded at the end of each
    axis (``Pad``), as dlib's ``add_prev`` does.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    weights: list[Any] = []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attributes: Any) -> str:
        output = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def conv(x: str, index: int, side: int, relu: bool, scale: float = 1.0) -> tuple[str, tuple[int, int]]:
        layer, (gamma, beta) = convs[index], affines[index]
        channels, filters = layer.taps.shape[1:]
        kernel = layer.taps.reshape(layer.size, layer.size, channels, filters).transpose(3, 2, 0, 1)
        w = constant(f"conv{index}_w", (kernel * gamma[:, None, None, None] * np.float32(scale)).astype(np.float32))
        b = constant(f"conv{index}_b", (layer.bias * gamma + beta).astype(np.float32))
        out = node("Conv", [x, w, b], kernel_shape=[layer.size] * 2, strides=[layer.stride] * 2, pads=[layer.padding] * 4)
        return (node("Relu", [out]) if relu else out), (filters, (side + 2 * layer.padding - layer.size) // layer.stride + 1)

    def pool(op: str, x: str, size: int, stride: int, side: int) -> tuple[str, int]:
        return node(op, [x], kernel_shape=[size] * 2, strides=[stride] * 2), (side - size) // stride + 1

    def pad_to(x: str, shape: tuple[int, int], target: tuple[int, int]) -> str:
        if shape == target:
            return x
        ends = [0, target[0] - shape[0], target[1] - shape[1], target[1] - shape[1]]  # N, C, H, W
        return node("Pad", [x, constant(f"pads_{len(nodes)}", np.array([0, 0, 0, 0, *ends], np.int64))])

    planes = node("Cast", [node("Transpose", ["chip"], perm=[0, 3, 1, 2])], to=TensorProto.FLOAT)
    centred = node("Sub", [planes, constant("mean", _INPUT_MEAN.reshape(1, 3, 1, 1))])
    x, (channels, side) = conv(centred, 0, CHIP_SIZE, relu=True, scale=1 / 256)
    x, side = pool("MaxPool", x, 3, 2, side)
    index = 1
    stage_ends = []
    for _channels, blocks, strided in _STAGES:
        for block in range(blocks):
            inner, inner_shape = conv(x, index, side, relu=True)
            inner, inner_shape = conv(inner, index + 1, inner_shape[1], relu=False)
            skip, skip_side = pool("AveragePool", x, 2, 2, side) if strided and block == 0 else (x, side)
            target = (max(inner_shape[0], channels), max(inner_shape[1], skip_side))
            x = node("Relu", [node("Add", [pad_to(inner, inner_shape, target), pad_to(skip, (channels, skip_side), target)])])
            (channels, side), index = target, index + 2
        stage_ends.append((x, side))
    flat = constant("flat", np.array([1, -1], np.int64))
    pooled = node("Reshape", [node("GlobalAveragePool", [x]), flat])
    nodes.append(helper.make_node("MatMul", [pooled, constant("fc", fc.astype(np.float32))], ["descriptor"]))
    outputs = [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, [1, 128])]
    if stage_statistics:  # the last stage's means are the descriptor's pooled input, computed once
        means = [node("Reshape", [node("GlobalAveragePool", [m]), flat]) for m, _ in stage_ends[:-1]] + [pooled]
        squares = [node("Reshape", [node("GlobalAveragePool", [node("Mul", [m, m])]), flat]) for m, _ in stage_ends]

        cell_means, cell_variances = [], []
        for m, side in stage_ends:
            for rows, cols in _cells(side):
                starts = constant(f"starts_{len(nodes)}", np.array([rows.start, cols.start], np.int64))
                ends = constant(f"ends_{len(nodes)}", np.array([rows.stop, cols.stop], np.int64))
                cut = node("Slice", [m, starts, ends, constant(f"axes_{len(nodes)}", np.array([2, 3], np.int64))])
                mean = node("ReduceMean", [cut], axes=[2, 3], keepdims=1)
                deviation = node("Sub", [cut, mean])
                cell_variances.append(node("ReduceMean", [node("Mul", [deviation, deviation])], axes=[2, 3], keepdims=0))
                cell_means.append(node("Reshape", [mean, flat]))
        for name, parts, width in (("stage_mean", means, STAGE_CHANNELS), ("stage_square", squares, STAGE_CHANNELS),
                                   ("grid_mean", cell_means, GRID_CELLS * STAGE_CHANNELS),
                                   ("grid_variance", cell_variances, GRID_CELLS * STAGE_CHANNELS)):
            nodes.append(helper.make_node("Concat", parts, [name], axis=1))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, width]))
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chip", TensorProto.UINT8, [1, CHIP_SIZE, CHIP_SIZE, 3])], outputs, weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class OnnxFaceNet:
    """The descriptor network in ONNX Runtime: about 9-10 ms per chip on one core (numpy: ~25 ms).

    Caveats first: one intra-op and one inter-op thread, sequential execution, so the work runs on the
    calling thread and ``time.thread_time`` sees it. All graph optimisations: on x86 they include ONNX
    Runtime's blocked (NCHWc) convolutions, without which it takes ~14 ms. Thread-safe
    (``InferenceSession.run`` is).
    """

    def __init__(self, model: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    @classmethod
    def build(cls, reference: NumpyFaceNet) -> OnnxFaceNet:
        """The session for ``reference``'s weights (about 0.3 s: graph, serialisation, ONNX Runtime's optimisations)."""
        return cls(reference.onnx_bytes())

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        """128-d descriptor (float32) of a 150 x 150 RGB uint8 face chip cut by ``dlib.get_face_chip``."""
        (out,) = self._session.run(["descriptor"], {"chip": self._checked(chip)[None]})
        return np.asarray(out[0], dtype=np.float32)

    def describe(self, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The descriptor and the network summary (:func:`stage_features` then :func:`grid_features`) of one chip,
        from one pass."""
        descriptor, means, squares, cell_means, cell_variances = self._session.run(
            ["descriptor", "stage_mean", "stage_square", "grid_mean", "grid_variance"], {"chip": self._checked(chip)[None]})
        return np.asarray(descriptor[0], dtype=np.float32), np.concatenate(
            [stage_features(means, squares), grid_features(cell_means, cell_variances)])

    @staticmethod
    def _checked(chip: np.ndarray) -> np.ndarray:
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError(f"expected a {CHIP_SIZE}x{CHIP_SIZE} RGB uint8 chip, got {chip.shape} {chip.dtype}")
        return chip

    def check_against(self, reference: FaceNet, tolerance: float = CHECK_TOLERANCE) -> float:
        """Largest |difference| to ``reference``'s descriptor and stage statistics of a fixed chip (the statistics
        relative to their scale, at least 1); raises FaceNetMismatchError above ``tolerance``."""
        chip = _check_chip()
        (mine, my_stages), (theirs, their_stages) = self.describe(chip), reference.describe(chip)
        difference = max(float(np.abs(mine - theirs).max()),
                         float((np.abs(my_stages - their_stages) / np.maximum(np.abs(their_stages), 1.0)).max()))
        if not difference <= tolerance:
            raise FaceNetMismatchError(f"ONNX Runtime descriptor differs from numpy's by {difference:.2e} (> {tolerance:.0e})")
        return difference


def load_face_net(path: Path) -> FaceNet:
    """The ONNX Runtime evaluator of dlib's ``.dat``, checked at load against the numpy one (~0.5 s in all).

    Caveats first: limits the process's BLAS (numpy's OpenBLAS) to one thread, as the numpy-only version did:
    the numpy check, and the fallback, would otherwise spread over every core and, on a busy machine, spin
    (1.5-2.4 s per descriptor measured on 2 shared cores, against 25 ms on one thread). Falls back to
    :class:`NumpyFaceNet`, with a warning, when ONNX Runtime's descriptor of a fixed chip differs by more than
    ``CHECK_TOLERANCE``. Raises FaceNetFormatError (or OSError) when the file is not the expected net.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    reference = NumpyFaceNet.load(path)
    net = OnnxFaceNet.build(reference)
    try:
        net.check_against(reference)
    except FaceNetMismatchError as exc:
        logger.warning("face descriptor: %s; using the numpy evaluation instead (slower)", exc)
        return reference
    return net
