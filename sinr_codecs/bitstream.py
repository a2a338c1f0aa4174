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
The reader checks every count against the header's implied sizes, against :data:`MAX_ELEMENTS` and
against the limits of :mod:`sinr_codecs.limits` (declared output bytes, dictionary entries) before it
allocates, keeps the sections compact (:class:`Stream`), and raises
:class:`~sinr_codecs.errors.StreamError` for anything wrong.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, fields

import numpy as np

from . import entropy, quantize
from .dictionary import GENERATORS
from .cursor import Cursor
from .cursor import varint as _varint
from .errors import StreamError
from .layout import LAYOUTS, Layout
from .limits import get_limits

__all__ = ["MAGIC", "VERSION", "MAX_ELEMENTS", "MAX_NDIM", "Content", "Stream", "write", "read", "DTYPES"]

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


@dataclass(kw_only=True)
class Header:
    """What the header of a stream says, plus its quantizer steps.

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
    steps : numpy.ndarray
        Quantizer steps, shape (1,) float64 or (n_vectors,) float32.
    k2, generator, seed, index_coding
        Dictionary and support coding (sparse mode).
    """

    dtype: np.dtype
    order: str
    layout: Layout
    mode: str
    value_bits: int
    granularity: str
    backend: str
    steps: np.ndarray
    k2: int = 0
    generator: int = 0
    seed: int = 0
    index_coding: str = "delta"


@dataclass(kw_only=True)
class Content(Header):
    """Everything a stream holds, as plain numpy arrays (quantized integers, not reconstructions).

    Attributes (besides :class:`Header`'s)
    --------------------------------------
    q : numpy.ndarray
        Quantized values, (n_vectors, s_max) (sparse, 0 where unused) or (n_vectors, k1) (dense).
    counts : (n_vectors,) int64
        Atoms per vector (sparse mode).
    indices : (n_vectors, s_max) int64, -1 where unused (sparse mode).
    """

    q: np.ndarray
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


@dataclass(kw_only=True)
class Stream(Header):
    """A parsed, validated stream, kept compact: nothing is expanded to ``(n_vectors, s_max)``.

    :func:`read` returns it; :meth:`block` expands (and validates) any range of vectors, so a decoder
    can reconstruct block by block with memory proportional to the output.

    Attributes (besides :class:`Header`'s)
    --------------------------------------
    values : numpy.ndarray
        Quantized values: (sum(counts),) in sparse mode, (n_vectors * k1,) in dense mode.
    s_max : int
        Largest atom count of a vector (sparse mode).
    counts : numpy.ndarray or None
        (n_vectors,) unsigned atom counts as stored; None when every vector has ``s_max`` atoms.
    symbols : numpy.ndarray
        (sum(counts),) coded index symbols as stored (sparse mode; see :mod:`sinr_codecs.entropy`).
    """

    values: np.ndarray
    s_max: int = 0
    counts: np.ndarray | None = None
    symbols: np.ndarray | None = None
    _offsets: np.ndarray | None = None

    def _counts(self, i0: int, i1: int) -> tuple[np.ndarray, int, int]:
        """int64 counts of vectors [i0, i1) and the range of items they occupy."""
        if self.counts is None:
            return np.full(i1 - i0, self.s_max, dtype=np.int64), i0 * self.s_max, i1 * self.s_max
        if self._offsets is None:
            self._offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        return self.counts[i0:i1].astype(np.int64), int(self._offsets[i0]), int(self._offsets[i1])

    def block(self, i0: int, i1: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Vectors ``[i0, i1)`` as a CSR matrix over the dictionary's atoms, values dequantized.

        Returns
        -------
        crow : (i1 - i0 + 1,) int64 row pointers (None in dense mode).
        cols : (nnz,) int64 atom indices, ascending within each vector (None in dense mode).
        values : (nnz,) float64 in sparse mode; ((i1 - i0), k1) float64 vectors in dense mode.

        Raises
        ------
        StreamError
            If an index lies outside ``[0, k2)`` or repeats within a vector.
        """
        if self.mode == "dense":
            k1 = self.layout.k1
            vals = self.values[i0 * k1 : i1 * k1].reshape(i1 - i0, k1).astype(np.float64)
            vals *= self._steps(i0, i1)[:, None]
            return None, None, vals
        assert self.symbols is not None
        counts, a, b = self._counts(i0, i1)
        cols, order = entropy.decode_indices(self.symbols[a:b], counts, self.k2,
                                             entropy.INDEX_CODINGS[self.index_coding])
        q = self.values[a:b] if order is None else self.values[a:b][order]
        vals = q.astype(np.float64)
        steps = self._steps(i0, i1)
        vals *= steps[0] if self.granularity == "tensor" else np.repeat(steps, counts)
        crow = np.zeros(i1 - i0 + 1, dtype=np.int64)
        np.cumsum(counts, out=crow[1:])
        return crow, cols, vals

    def _steps(self, i0: int, i1: int) -> np.ndarray:
        if self.granularity == "tensor":
            return np.full(i1 - i0, float(self.steps[0]))
        return self.steps[i0:i1].astype(np.float64)

    def content(self) -> Content:
        """Every vector expanded into a :class:`Content` (the quantized integers and indices, as written)."""
        n, s = self.layout.n_vectors, self.s_max
        base = {f.name: getattr(self, f.name) for f in fields(Header)}
        if self.mode == "dense":
            return Content(q=self.values.reshape(n, self.layout.k1), **base)
        assert self.symbols is not None
        counts, _, _ = self._counts(0, n)
        cols, order = entropy.decode_indices(self.symbols, counts, self.k2, entropy.INDEX_CODINGS[self.index_coding])
        if order is not None:  # back to the stored (selection) order
            stored = np.empty_like(cols)
            stored[order] = cols
            cols = stored
        used = np.arange(s)[None, :] < counts[:, None]
        indices = np.full((n, s), -1, dtype=np.int64)
        indices[used] = cols
        q = np.zeros((n, s), dtype=self.values.dtype)
        q[used] = self.values
        return Content(q=q, counts=counts, indices=indices, **base)


def read(buf: bytes | bytearray | memoryview | np.ndarray) -> Stream:
    """Parse and validate a stream, checking every declared size against the limits before allocating.

    Raises
    ------
    StreamError
        On a bad magic, unknown version, checksum mismatch, truncation, inconsistent or out-of-limit
        counts (:mod:`sinr_codecs.limits`: declared output size, dictionary size), or invalid values.
        Indices are validated by :meth:`Stream.block` and :meth:`Stream.content`.
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
    lim = get_limits()
    cur = Cursor(data[:-4])
    cur.pos = 5
    code = cur.u8("dtype")
    if code & ~(0x3F | _BIG_ENDIAN | _FORTRAN):
        raise StreamError(f"unknown dtype flags in byte {code:#04x}")
    base = _lookup(DTYPES, code & 0x3F, "dtype")
    dtype = np.dtype(base).newbyteorder(">" if code & _BIG_ENDIAN else "<")
    if dtype.isnative:
        dtype = dtype.newbyteorder("=")  # spelled as numpy spells native dtypes: dtype('float32')
    order = "F" if code & _FORTRAN else "C"
    ndim = cur.varint("ndim", MAX_NDIM)
    shape = tuple(cur.varint("shape", MAX_ELEMENTS) for _ in range(ndim))
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise StreamError(f"stream declares {size} elements, more than the limit {MAX_ELEMENTS}")
    if size * dtype.itemsize > lim.max_output_bytes:
        raise StreamError(
            f"stream declares a {'x'.join(map(str, shape))} {dtype.name} array of {size * dtype.itemsize} bytes, "
            f"more than max_output_bytes = {lim.max_output_bytes}; if the source is trusted, raise the limit "
            "(sinr_codecs.limits.set_limits or SINR_MAX_OUTPUT_BYTES)")
    kind = _lookup(LAYOUTS, cur.u8("layout"), "layout")
    k1 = cur.varint("k1", MAX_ELEMENTS)
    layout = Layout(kind, shape, k1)
    try:
        layout.check()
    except ValueError as e:
        raise StreamError(f"inconsistent header: {e}") from None
    n = layout.n_vectors
    if n * max(k1, 1) > size + k1:
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

    qdt = quantize.int_dtype(bits)
    st = Stream(dtype=dtype, order=order, layout=layout, mode=mode, value_bits=bits, granularity=granularity,
                backend=backend, steps=np.zeros(1), values=np.zeros(0, dtype=qdt))
    if mode == "sparse":
        st.k2 = cur.varint("k2", MAX_K2)
        if st.k2 < 1:
            raise StreamError(f"dictionary size k2 = {st.k2} out of range")
        if n and k1 * st.k2 > lim.max_dictionary_entries:
            raise StreamError(
                f"stream needs a {k1}x{st.k2} dictionary ({k1 * st.k2} entries), more than "
                f"max_dictionary_entries = {lim.max_dictionary_entries}; if the source is trusted, raise the "
                "limit (sinr_codecs.limits.set_limits or SINR_MAX_DICTIONARY_ENTRIES)")
        st.generator = cur.u8("generator")
        if st.generator not in GENERATORS:
            raise StreamError(f"unknown dictionary generator id {st.generator}")
        st.seed = cur.varint("seed", (1 << 64) - 1)
        st.s_max = s_max = cur.varint("s_max", max(k1 - 1, 0))
        counts_kind = cur.u8("counts kind")
        if counts_kind not in (0, 1):
            raise StreamError(f"unknown counts kind {counts_kind}")
        st.index_coding = _lookup(entropy.INDEX_CODINGS, cur.u8("index coding"), "index coding")
        if counts_kind == 1:
            st.counts = section("counts", _index_dtype(k1), n)
            if st.counts.size and int(st.counts.max()) > s_max:
                raise StreamError("a vector's atom count exceeds s_max")
            total = int(st.counts.sum(dtype=np.int64))
        else:
            total = n * s_max
        st.symbols = section("indices", _index_dtype(st.k2), total)
        st.steps = _steps(section, granularity, n)
        st.values = section("values", qdt, total)
    else:
        st.steps = _steps(section, granularity, n)
        st.values = section("values", qdt, n * k1)
    m = quantize.qmax(bits)
    if st.values.size and (int(st.values.min()) < -m or int(st.values.max()) > m):
        raise StreamError(f"quantized value outside the {bits}-bit range")
    if cur.pos != len(cur.data):
        raise StreamError(f"{len(cur.data) - cur.pos} unexpected bytes after the last section")
    return st


def _steps(section, granularity: str, n: int) -> np.ndarray:
    if granularity == "tensor":
        steps = section("steps", np.dtype("<f8"), 1)
    else:
        steps = section("steps", np.dtype("<f4"), n)
    if not np.all(np.isfinite(steps)) or np.any(steps < 0):
        raise StreamError("quantizer step is negative or not finite")
    return steps
