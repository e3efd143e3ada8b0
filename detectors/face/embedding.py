"""dlib's 128-d face descriptor (``dlib_face_recognition_resnet_model_v1``) evaluated with numpy.

Caveats first: the same network and weights as ``dlib.face_recognition_model_v1`` (read from dlib's own
``.dat`` file), evaluated with numpy's BLAS instead of dlib's built-in matrix code, because the ``dlib-bin``
wheel is built without BLAS and spends about 100 ms per face there. The descriptors agree with dlib's to about
1e-5 (checked by :meth:`NumpyFaceNet.check_against` at load, tested in ``tests/test_face_embedding.py``), so
descriptors stored by earlier versions stay comparable. The face chip (150 x 150, padding 0.25) is still cut
by dlib (``dlib.get_face_chip``), from whatever image the landmarks belong to.

The network (dlib's ``dnn_face_recognition_ex.cpp``): 7x7/2 convolution, 3x3/2 max pool, then residual
blocks of two 3x3 convolutions with per-channel affine (folded batch norm) at 32, 64, 128, 256 and 256
channels (the first block of each stage strides by 2 and adds a 2x2/2 average pool of its input), global
average pool, and a 256 x 128 linear layer. Strided layers have no padding; where a residual sum's operands
differ in size (channels or rows), dlib zero-pads the smaller one at the end, and so do we.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25
_INPUT_MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)
# residual stages in forward order: (channels, blocks); the first block of every stage but the first strides
_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_TAG = re.compile(rb"\x01\x05con_4|\x01\x07affine_|\x01\x04fc_2")


class FaceNetFormatError(ValueError):
    """The ``.dat`` file does not hold the layers this evaluator expects."""


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
    """The descriptor network. Thread-safe (read-only weights); ``descriptor`` takes about 20-30 ms on one core."""

    def __init__(self, convs: list[_Conv], affines: list[tuple[np.ndarray, np.ndarray]], fc: np.ndarray) -> None:
        self._convs, self._affines, self._fc = convs, affines, fc

    @classmethod
    def load(cls, path: Path) -> NumpyFaceNet:
        """Read dlib's ``.dat`` file; raises FaceNetFormatError (or OSError) when it is not the expected net."""
        return cls(*_parse(path.read_bytes()))

    def _conv_affine(self, x: np.ndarray, index: int) -> np.ndarray:
        out = _conv(x, self._convs[index])
        gamma, beta = self._affines[index]
        out *= gamma
        out += beta
        return out

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        """128-d descriptor (float32) of a 150 x 150 RGB uint8 face chip cut by ``dlib.get_face_chip``."""
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected a {CHIP_SIZE}x{CHIP_SIZE} RGB chip, got {chip.shape}")
        x = (chip.astype(np.float32) - _INPUT_MEAN) / np.float32(256.0)
        x = np.maximum(self._conv_affine(x, 0), 0.0)
        x = _pool(x, 3, 2, "max")
        index = 1
        for _channels, blocks, strided in _STAGES:
            for block in range(blocks):
                inner = np.maximum(self._conv_affine(x, index), 0.0)
                inner = self._conv_affine(inner, index + 1)
                skip = _pool(x, 2, 2, "mean") if strided and block == 0 else x
                x = np.maximum(_add_padded(inner, skip), 0.0)
                index += 2
        pooled = x.mean(axis=(0, 1), dtype=np.float32)
        return np.asarray(pooled @ self._fc, dtype=np.float32)
