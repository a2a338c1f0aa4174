"""The SINR stream container: writer and validating reader (format version 1; docs/format.md).

Layout (integers are unsigned LEB128 varints unless a width is given; all fixed-width fields are
little-endian)::

    magic "SINR" | version u8 | header | sections | crc32 u32

    header  = dtype u8 | ndim | shape[ndim] | layout u8 | k1 | mode u8 | value_bits u8
              | granularity u8 | backend u8
              [mode 0 (sparse) only:] k2 | generator u8 | seed | s_max | counts_kind u8 | index_coding u8
    sections, each "byte length, then bytes", in this order:
              counts   (sparse with counts_kind 1 only; n_vectors items, uint16/uint32)
              indices  (sparse only; sum(counts) items, uint16 if k2 <= 65536 else uint32)
              steps    (float64 x 1 for granularity 0, float32 x n_vectors for granularity 1)
              values   (sum(counts) items (sparse) or n_vectors * k1 (dense); int8/int16/int32)

The crc32 (zlib polynomial) covers every byte before it and is checked before anything is parsed.
The reader checks every count against the header's implied sizes and against :data:`MAX_ELEMENTS`
before it allocates, and raises :class:`~sinr_codecs.errors.StreamError` for anything wrong.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from . import entropy, quantize
from .dictionary import GENERATORS
from .cursor import Cursor
from .cursor import varint as _varint
from .errors import StreamError
from .layout import LAYOUTS, Layout

__all__ = ["MAGIC", "VERSION", "MAX_ELEMENTS", "MAX_NDIM", "Content", "write", "read", "DTYPES"]

MAGIC = b"SINR"
VERSION = 1
MAX_NDIM = 32
MAX_ELEMENTS = 1 << 32
"""Largest array (elements) a stream may declare; larger claims are refused before allocating."""
MAX_K2 = 1 << 24

DTYPES: dict[str, int] = {"float16": 1, "float32": 2, "float64": 3}
_BIG_ENDIAN = 0x80
_FORTRAN = 0x40
GRANULARITIES: dict[str, int] = {"tensor": 0, "vector": 1}
MODES: dict[str, int] = {"sparse": 0, "dense": 1}


@dataclass
class Content:
    """Everything a stream holds, as plain numpy arrays (quantized integers, not reconstructions).

    Attributes
    ----------
    dtype : numpy.dtype
        The array's dtype, byte order included.
    order : str
        "C" or "F": the memory order decode returns.
    layout : Layout
        Vector layout (shape and k1).
    mode : str
        "sparse" or "dense" (values are the vectors themselves; no dictionary).
    value_bits, granularity, backend
        Quantizer bits, "tensor"/"vector" step granularity, entropy back-end name.
    k2, generator, seed, index_coding
        Dictionary and support coding (sparse mode).
    counts : (n_vectors,) int64
        Atoms per vector (sparse mode).
    indices : (n_vectors, s_max) int64, -1 where unused (sparse mode).
    q : numpy.ndarray
        Quantized values, (n_vectors, s_max) (sparse, 0 where unused) or (n_vectors, k1) (dense).
    steps : numpy.ndarray
        Quantizer steps, shape (1,) float64 or (n_vectors,) float32.
    """

    dtype: np.dtype
    order: str
    layout: Layout
    mode: str
    value_bits: int
    granularity: str
    backend: str
    q: np.ndarray
    steps: np.ndarray
    k2: int = 0
    generator: int = 0
    seed: int = 0
    index_coding: str = "delta"
    counts: np.ndarray | None = None
    indices: np.ndarray | None = None

    @property
    def s_max(self) -> int:
        return int(self.q.shape[1]) if self.mode == "sparse" else 0


# ---------------------------------------------------------------------------------------------- write


def _index_dtype(limit: int) -> np.dtype:
    return np.dtype("<u2") if limit <= 1 << 16 else np.dtype("<u4")


def write(c: Content) -> bytes:
    """Serialize ``c`` to a version-1 stream."""
    dt = np.dtype(c.dtype)
    code = DTYPES[dt.newbyteorder("=").name]
    if dt.byteorder == ">" or (dt.byteorder == "=" and np.little_endian is False):
        code |= _BIG_ENDIAN
    if c.order == "F":
        code |= _FORTRAN
    backend = entropy.BACKENDS[c.backend]
    head = bytearray(MAGIC)
    head.append(VERSION)
    head.append(code)
    head += _varint(len(c.layout.shape))
    for d in c.layout.shape:
        head += _varint(d)
    head.append(LAYOUTS[c.layout.kind])
    head += _varint(c.layout.k1)
    head.append(MODES[c.mode])
    head.append(c.value_bits)
    head.append(GRANULARITIES[c.granularity])
    head.append(backend)
    sections: list[bytes] = []
    if c.mode == "sparse":
        assert c.counts is not None and c.indices is not None
        s_max = c.s_max
        fixed = bool(np.all(c.counts == s_max))
        coding = entropy.INDEX_CODINGS[c.index_coding]
        head += _varint(c.k2)
        head.append(c.generator)
        head += _varint(c.seed)
        head += _varint(s_max)
        head.append(0 if fixed else 1)
        head.append(coding)
        symbols, order = entropy.encode_indices(c.indices, c.counts, coding)
        q = np.take_along_axis(c.q, order, axis=1)
        used = np.arange(s_max)[None, :] < c.counts[:, None]
        if not fixed:
            sections.append(entropy.compress(c.counts.astype(_index_dtype(c.layout.k1)), backend))
        sections.append(entropy.compress(symbols.astype(_index_dtype(c.k2)), backend))
        values = q[used]
    else:
        values = c.q.reshape(-1)
    steps = c.steps.astype("<f8" if c.granularity == "tensor" else "<f4")
    sections.append(entropy.compress(steps, backend))
    sections.append(entropy.compress(values.astype(quantize.int_dtype(c.value_bits)), backend))
    for s in sections:
        head += _varint(len(s))
        head += s
    head += struct.pack("<I", zlib.crc32(head))
    return bytes(head)


# ----------------------------------------------------------------------------------------------- read


def _lookup(table: dict[str, int], code: int, what: str) -> str:
    for name, c in table.items():
        if c == code:
            return name
    raise StreamError(f"unknown {what} id {code} (this release knows {sorted(table.values())})")


def read(buf: bytes | bytearray | memoryview | np.ndarray) -> Content:
    """Parse and validate a stream.

    Raises
    ------
    StreamError
        On a bad magic, unknown version, checksum mismatch, truncation, inconsistent or
        out-of-limit counts, or invalid indices.
    """
    data = memoryview(np.ascontiguousarray(np.frombuffer(buf, dtype=np.uint8))).cast("B")
    if len(data) < len(MAGIC) + 1 + 4:
        raise StreamError(f"stream of {len(data)} bytes is too short to be a SINR stream")
    if bytes(data[:4]) != MAGIC:
        raise StreamError("not a SINR stream (bad magic bytes)")
    version = data[4]
    if version != VERSION:
        raise StreamError(f"unsupported SINR stream version {version}; this release reads version {VERSION}")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise StreamError("checksum mismatch: the stream is corrupt or truncated")
    cur = Cursor(data[:-4])
    cur.pos = 5
    code = cur.u8("dtype")
    base = _lookup(DTYPES, code & 0x3F, "dtype")
    dtype = np.dtype(base).newbyteorder(">" if code & _BIG_ENDIAN else "<")
    order = "F" if code & _FORTRAN else "C"
    ndim = cur.varint("ndim", MAX_NDIM)
    shape = tuple(cur.varint("shape", MAX_ELEMENTS) for _ in range(ndim))
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise StreamError(f"stream declares {size} elements, more than the limit {MAX_ELEMENTS}")
    kind = _lookup(LAYOUTS, cur.u8("layout"), "layout")
    k1 = cur.varint("k1", MAX_ELEMENTS)
    layout = Layout(kind, shape, k1)
    try:
        layout.check()
    except ValueError as e:
        raise StreamError(f"inconsistent header: {e}") from None
    n = layout.n_vectors
    if n * max(k1, 1) > 2 * MAX_ELEMENTS + k1:
        raise StreamError("inconsistent header: vector count too large")
    mode = _lookup(MODES, cur.u8("mode"), "mode")
    bits = cur.u8("value_bits")
    if not quantize.MIN_BITS <= bits <= quantize.MAX_BITS:
        raise StreamError(f"value_bits {bits} out of range")
    granularity = _lookup(GRANULARITIES, cur.u8("granularity"), "quantizer granularity")
    backend_id = cur.u8("entropy back end")
    backend = _lookup(entropy.BACKENDS, backend_id, "entropy back end")

    def section(what: str, dtype_: np.dtype, count: int) -> np.ndarray:
        length = cur.varint(f"{what} length", len(data))
        return entropy.decompress(cur.take(length, what), backend_id, dtype_, count)

    c = Content(dtype=dtype, order=order, layout=layout, mode=mode, value_bits=bits,
                granularity=granularity, backend=backend, q=np.zeros((0, 0)), steps=np.zeros(1))
    qdt = quantize.int_dtype(bits)
    if mode == "sparse":
        c.k2 = cur.varint("k2", MAX_K2)
        if c.k2 < 1 or k1 * c.k2 > (1 << 31) and n:
            raise StreamError(f"dictionary {k1}x{c.k2} out of range")
        c.generator = cur.u8("generator")
        if c.generator not in GENERATORS:
            raise StreamError(f"unknown dictionary generator id {c.generator}")
        c.seed = cur.varint("seed", (1 << 64) - 1)
        s_max = cur.varint("s_max", max(k1 - 1, 0))
        counts_kind = cur.u8("counts kind")
        if counts_kind not in (0, 1):
            raise StreamError(f"unknown counts kind {counts_kind}")
        coding = cur.u8("index coding")
        c.index_coding = _lookup(entropy.INDEX_CODINGS, coding, "index coding")
        if counts_kind == 1:
            counts = section("counts", _index_dtype(k1), n).astype(np.int64)
            if np.any(counts > s_max):
                raise StreamError("a vector's atom count exceeds s_max")
        else:
            counts = np.full(n, s_max, dtype=np.int64)
        total = int(counts.sum())
        symbols = section("indices", _index_dtype(c.k2), total).astype(np.int64)
        c.counts = counts
        c.indices = entropy.decode_indices(symbols, counts, s_max, c.k2, coding)
        steps = _steps(section, granularity, n)
        vals = section("values", qdt, total)
        q = np.zeros((n, s_max), dtype=qdt)
        q[np.arange(s_max)[None, :] < counts[:, None]] = vals
    else:
        steps = _steps(section, granularity, n)
        q = section("values", qdt, n * k1).reshape(n, k1)
    m = quantize.qmax(bits)
    if q.size and (q.min() < -m or q.max() > m):
        raise StreamError(f"quantized value outside the {bits}-bit range")
    c.q, c.steps = q, steps
    if cur.pos != len(cur.data):
        raise StreamError(f"{len(cur.data) - cur.pos} unexpected bytes after the last section")
    return c


def _steps(section, granularity: str, n: int) -> np.ndarray:
    if granularity == "tensor":
        steps = section("steps", np.dtype("<f8"), 1)
    else:
        steps = section("steps", np.dtype("<f4"), n)
    if not np.all(np.isfinite(steps)) or np.any(steps < 0):
        raise StreamError("quantizer step is negative or not finite")
    return steps
