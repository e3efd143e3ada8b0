"""A minimal GGUF (v2/v3) reader: header, metadata, tensor infos, dequantisation (numpy only).

Caveats first: only the tensor types SmolLM2's file uses (Q4_1, Q8_0, F32) plus F16 and BF16 are
dequantised; others raise :class:`GGUFError`. Tensors are returned in numpy order, i.e. GGUF's
``ne`` dimensions reversed (a linear layer's weight is ``(out_features, in_features)``). The file is
memory-mapped; dequantised arrays are fresh float32 copies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_SCALAR_DTYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
                  12: "<f8"}
TYPE_STRING = 8
TYPE_ARRAY = 9

# ggml tensor types: (name, elements per block, bytes per block)
GGML_F32, GGML_F16, GGML_Q4_1, GGML_Q8_0, GGML_BF16 = 0, 1, 3, 8, 30
GGML_TYPES = {
    GGML_F32: ("F32", 1, 4),
    GGML_F16: ("F16", 1, 2),
    GGML_Q4_1: ("Q4_1", 32, 20),
    GGML_Q8_0: ("Q8_0", 32, 34),
    GGML_BF16: ("BF16", 1, 2),
}


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: ``shape`` in numpy order, ``offset`` in bytes from the start of the file."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def n_bytes(self) -> int:
        _, block, size = GGML_TYPES[self.ggml_type]
        return self.n_elements // block * size


class _Cursor:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        text = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", errors="surrogateescape")
        self.pos += n
        return text

    def value(self, vtype: int) -> Any:
        if vtype == TYPE_STRING:
            return self.string()
        if vtype == TYPE_ARRAY:
            etype, count = self.scalar("<I"), self.scalar("<Q")
            if etype in _SCALAR_DTYPES:  # numeric arrays in one read
                arr = np.frombuffer(self.buf, dtype=_SCALAR_DTYPES[etype], count=count, offset=self.pos)
                self.pos += arr.nbytes
                return arr.astype(bool).tolist() if etype == 7 else arr.tolist()
            return [self.value(etype) for _ in range(count)]
        if vtype not in _SCALAR_FORMATS:
            raise GGUFError(f"unknown metadata value type {vtype}")
        return self.scalar(_SCALAR_FORMATS[vtype])


class GGUFFile:
    """An opened GGUF file: ``metadata`` (key -> value) and ``tensors`` (name -> TensorInfo).

    Raises :class:`GGUFError` for a bad magic number, an unsupported version or a truncated file.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        buf = memoryview(self._map)  # type: ignore[arg-type]
        if bytes(buf[:4]) != MAGIC:
            raise GGUFError(f"{self.path} is not a GGUF file")
        cur = _Cursor(buf)
        cur.pos = 4
        self.version = int(cur.scalar("<I"))
        if self.version not in (2, 3):
            raise GGUFError(f"GGUF version {self.version} is not supported (2 or 3)")
        n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
        self.metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            self.metadata[key] = cur.value(cur.scalar("<I"))
        infos = [self._tensor_info(cur) for _ in range(n_tensors)]
        align = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        start = -(-cur.pos // align) * align
        self.tensors = {t.name: TensorInfo(t.name, t.shape, t.ggml_type, start + t.offset) for t in infos}
        for t in self.tensors.values():
            if t.offset + t.n_bytes > self._map.size:
                raise GGUFError(f"tensor {t.name} runs past the end of {self.path} (truncated file?)")

    @staticmethod
    def _tensor_info(cur: _Cursor) -> TensorInfo:
        name = cur.string()
        n_dims = cur.scalar("<I")
        ne = [int(cur.scalar("<Q")) for _ in range(n_dims)]
        ggml_type, offset = int(cur.scalar("<I")), int(cur.scalar("<Q"))
        if ggml_type not in GGML_TYPES:
            raise GGUFError(f"tensor {name}: ggml type {ggml_type} is not supported")
        if ne[0] % GGML_TYPES[ggml_type][1]:
            raise GGUFError(f"tensor {name}: row length {ne[0]} is not a whole number of blocks")
        return TensorInfo(name, tuple(reversed(ne)), ggml_type, offset)

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as stored (uint8, no copy)."""
        t = self.tensors[name]
        return self._map[t.offset : t.offset + t.n_bytes]

    def tensor(self, name: str) -> np.ndarray:
        """The tensor dequantised to float32, in numpy order. Raises KeyError for an unknown name."""
        t = self.tensors[name]
        return dequantise(self.raw(name), t.ggml_type, t.n_elements).reshape(t.shape)


def dequantise(raw: np.ndarray, ggml_type: int, n_elements: int) -> np.ndarray:
    """Flat float32 values of ``n_elements`` elements stored as ``ggml_type`` in ``raw`` (uint8)."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if ggml_type == GGML_F32:
        return raw.view("<f4").astype(np.float32)
    if ggml_type == GGML_F16:
        return raw.view("<f2").astype(np.float32)
    if ggml_type == GGML_BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if ggml_type == GGML_Q8_0:
        blocks = raw.reshape(-1, 34)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)
        q = blocks[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(n_elements)
    if ggml_type == GGML_Q4_1:
        blocks = raw.reshape(-1, 20)
        d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
        m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
        qs = blocks[:, 4:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # low nibbles = first 16
        return (q * d + m).reshape(n_elements)
    raise GGUFError(f"ggml type {ggml_type} is not supported")
