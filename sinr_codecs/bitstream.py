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
              steps    (float64 x 1 for granularity 0, float32 x n_vectors for granularity 1,
                        int32 step codes x n_vectors for granularity 2)
              values   (sum(counts) items (sparse) or n_vectors * k1 (dense); int8/int16/int32)

The crc32 (zlib polynomial) covers every byte before it and is checked before anything is parsed.
:func:`read` checks every count against the header's implied sizes, against :data:`MAX_ELEMENTS` and
against the limits of :mod:`sinr_codecs.limits` (declared output bytes, dictionary entries) and locates
the sections without decoding them; :meth:`Stream.blocks` then decodes them vector block by vector
block, validating as it goes, so that decoding needs memory for the output and one block of work, not
for the sections. Anything wrong is a :class:`~sinr_codecs.errors.StreamError`.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace

import numpy as np

from . import entropy, quantize
from .cursor import Cursor
from .cursor import varint as _varint
from .dictionary import GENERATORS
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
GRANULARITIES: dict[str, int] = {"tensor": 0, "vector": 1, "codes": 2}
MODES: dict[str, int] = {"sparse": 0, "dense": 1}


@dataclass(kw_only=True)
class Header:
    """What the header of a stream says.

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
    value_bits : int
        Width of the quantized integers, 2..32: every ``|q| <= 2**(value_bits - 1) - 1``.
    granularity : str
        Quantizer steps: "tensor" (one float64), "vector" (one float32 per vector) or "codes" (one int32
        step code per vector, :func:`sinr_codecs.quantize.step_from_code`).
    backend : str
        Entropy back-end name (:data:`sinr_codecs.entropy.BACKENDS`).
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
    steps : numpy.ndarray
        (1,) float64 ("tensor"), (n_vectors,) float32 ("vector") or (n_vectors,) int step codes ("codes").
    counts : (n_vectors,) int64
        Atoms per vector (sparse mode).
    indices : (n_vectors, s_max) int64, -1 where unused (sparse mode).
    """

    q: np.ndarray
    steps: np.ndarray
    counts: np.ndarray | None = None
    indices: np.ndarray | None = None

    @property
    def s_max(self) -> int:
        return int(self.q.shape[1]) if self.mode == "sparse" else 0

    def step_values(self) -> np.ndarray:
        """The float64 steps: (1,) or (n_vectors,)."""
        if self.granularity == "codes":
            return quantize.step_from_code(self.steps)
        return np.asarray(self.steps, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- write


def _index_dtype(limit: int) -> np.dtype:
    return np.dtype("<u2") if limit <= 1 << 16 else np.dtype("<u4")


_STEP_DTYPES: dict[str, np.dtype] = {"tensor": np.dtype("<f8"), "vector": np.dtype("<f4"), "codes": np.dtype("<i4")}


def _present(data: memoryview | None) -> memoryview:
    """A section the header says the stream holds (the reader has set it)."""
    assert data is not None
    return data


def write(c: Content) -> bytes:
    """Serialize ``c`` to a version-1 stream (``c.backend == "auto"``: the smallest of the streams written with
    :func:`sinr_codecs.entropy.auto_candidates`, the first on a tie)."""
    if c.backend == entropy.AUTO:
        items = c.q.size + (c.indices.size if c.indices is not None else 0)
        return min((write(replace(c, backend=name)) for name in entropy.auto_candidates(items)), key=len)
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
    sections.append(entropy.compress(np.asarray(c.steps).astype(_STEP_DTYPES[c.granularity]), backend))
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


Block = tuple[int, int, "np.ndarray | None", "np.ndarray | None", np.ndarray]
"""``(i0, i1, crow, cols, values)``: vectors ``[i0, i1)`` as CSR pieces (sparse) or ``(None, None, the
(i1 - i0, k1) vectors)`` (dense); values float64."""


@dataclass(kw_only=True)
class Stream(Header):
    """A parsed, validated stream whose sections stay coded until :meth:`blocks` decodes them.

    Attributes (besides :class:`Header`'s)
    --------------------------------------
    s_max : int
        Largest atom count of a vector (sparse mode).
    total : int
        Number of stored values: ``sum(counts)`` (sparse) or ``n_vectors * k1`` (dense).
    tensor_step : float
        The one step of granularity "tensor" (0 otherwise).
    """

    s_max: int = 0
    total: int = 0
    tensor_step: float = 0.0
    _backend_id: int = 0
    _counts: memoryview | None = None
    _indices: memoryview | None = None
    _steps: memoryview | None = None
    _values: memoryview | None = None

    def _section(self, data: memoryview | None, dtype: np.dtype, count: int) -> entropy.Section:
        return entropy.open_section(_present(data), self._backend_id, dtype, count)

    def _step_reader(self) -> tuple[Callable[[int], np.ndarray], Callable[[], None]]:
        """``(take, close)``: ``take(n)`` gives the float64 steps of the next ``n`` vectors, validated."""
        n = self.layout.n_vectors
        if self.granularity == "tensor":
            return (lambda c: np.full(c, self.tensor_step)), (lambda: None)
        sec = self._section(self._steps, _STEP_DTYPES[self.granularity], n)
        codes = self.granularity == "codes"

        def take(c: int) -> np.ndarray:
            raw = sec.read(c)
            if codes:
                if c and (int(raw.min()) < quantize.MIN_STEP_CODE or int(raw.max()) > quantize.MAX_STEP_CODE):
                    raise StreamError("quantizer step code out of range")
                return quantize.step_from_code(raw)
            steps = raw.astype(np.float64)
            if not np.all(np.isfinite(steps)) or np.any(steps < 0):
                raise StreamError("quantizer step is negative or not finite")
            return steps

        return take, sec.close

    def blocks(self, vectors: int) -> Iterator[Block]:
        """Decode the stream in order, ``vectors`` vectors at a time (the last block may be shorter).

        Each block is validated as it is decoded: values within the ``value_bits`` range, steps valid,
        every ``value * step`` finite, indices inside ``[0, k2)`` and not repeated within a vector.

        Raises
        ------
        StreamError
            On any of the above, or a section that holds more or fewer items than the header implies.
        """
        n, k1 = self.layout.n_vectors, self.layout.k1
        m = quantize.qmax(self.value_bits)
        qdt = quantize.int_dtype(self.value_bits)
        steps, steps_done = self._step_reader()
        values = self._section(self._values, qdt, self.total)
        if self.mode == "sparse":
            coding = entropy.INDEX_CODINGS[self.index_coding]
            symbols = self._section(self._indices, _index_dtype(self.k2), self.total)
            counts = (self._section(self._counts, _index_dtype(k1), n) if self._counts is not None else None)
        for i0 in range(0, n, max(1, vectors)):
            i1 = min(n, i0 + max(1, vectors))
            c = i1 - i0
            step = steps(c)
            if self.mode == "dense":
                q = values.read(c * k1)
                _check_range(q, m, self.value_bits)
                vals = _times(q.reshape(c, k1), step[:, None])
                yield i0, i1, None, None, vals
                continue
            cnt = (counts.read(c).astype(np.int64) if counts is not None
                   else np.full(c, self.s_max, dtype=np.int64))
            if cnt.size and int(cnt.max()) > self.s_max:
                raise StreamError("a vector's atom count exceeds s_max")
            t = int(cnt.sum())
            cols, order = entropy.decode_indices(symbols.read(t), cnt, self.k2, coding)
            q = values.read(t)
            _check_range(q, m, self.value_bits)
            if order is not None:
                q = q[order]
            vals = _times(q, np.repeat(step, cnt))
            crow = np.zeros(c + 1, dtype=np.int64)
            np.cumsum(cnt, out=crow[1:])
            yield i0, i1, crow, cols, vals
        steps_done()
        values.close()
        if self.mode == "sparse":
            symbols.close()
            if counts is not None:
                counts.close()

    def content(self) -> Content:
        """Every vector expanded into a :class:`Content` (the quantized integers and indices, as written).

        Memory is that of the expanded arrays ((n_vectors, s_max) for sparse streams): meant for the
        small tensors of the adapters and for tests; decoders use :meth:`blocks`.
        """
        n, s, k1 = self.layout.n_vectors, self.s_max, self.layout.k1
        base = {f.name: getattr(self, f.name) for f in fields(Header)}
        qdt = quantize.int_dtype(self.value_bits)
        m = quantize.qmax(self.value_bits)
        if self.granularity == "tensor":
            steps = np.array([self.tensor_step])
        else:
            steps = entropy.decompress(_present(self._steps), self._backend_id, _STEP_DTYPES[self.granularity], n)
            take, done = self._step_reader()
            take(n)  # validates them
            done()
        values = entropy.decompress(_present(self._values), self._backend_id, qdt, self.total)
        _check_range(values, m, self.value_bits)
        if self.mode == "dense":
            return Content(q=values.reshape(n, k1), steps=steps, **base)
        counts = (entropy.decompress(self._counts, self._backend_id, _index_dtype(k1), n).astype(np.int64)
                  if self._counts is not None else np.full(n, s, dtype=np.int64))
        symbols = entropy.decompress(_present(self._indices), self._backend_id, _index_dtype(self.k2), self.total)
        cols, order = entropy.decode_indices(symbols, counts, self.k2, entropy.INDEX_CODINGS[self.index_coding])
        if order is not None:  # back to the stored (selection) order
            stored = np.empty_like(cols)
            stored[order] = cols
            cols = stored
        used = np.arange(s)[None, :] < counts[:, None]
        indices = np.full((n, s), -1, dtype=np.int64)
        indices[used] = cols
        q = np.zeros((n, s), dtype=values.dtype)
        q[used] = values
        return Content(q=q, steps=steps, counts=counts, indices=indices, **base)


def _check_range(q: np.ndarray, m: int, bits: int) -> None:
    if q.size and (int(q.min()) < -m or int(q.max()) > m):
        raise StreamError(f"quantized value outside the {bits}-bit range")


def _times(q: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """float64 ``q * steps``, refusing a product beyond float64's range (no encoder writes one)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = q.astype(np.float64)
        out *= steps
    if not np.all(np.isfinite(out)):
        raise StreamError("a quantized value times its step overflows float64: the stream is corrupt")
    return out


def read(buf: bytes | bytearray | memoryview | np.ndarray) -> Stream:
    """Parse and validate a stream's header and section sizes, checking every declared size against the
    limits; the sections are decoded later, block by block (:meth:`Stream.blocks`).

    Raises
    ------
    StreamError
        On a bad magic, unknown version, checksum mismatch, truncation, inconsistent or out-of-limit
        counts (:mod:`sinr_codecs.limits`: declared output size, dictionary size), a corrupt counts
        section, or invalid values in the header. Sections are validated as they are decoded.
    """
    data = np.ascontiguousarray(np.frombuffer(buf, dtype=np.uint8)).data.cast("B")
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

    def section(what: str) -> memoryview:
        length = cur.varint(f"{what} length", len(data))
        return cur.take(length, what)

    st = Stream(dtype=dtype, order=order, layout=layout, mode=mode, value_bits=bits, granularity=granularity,
                backend=backend, _backend_id=backend_id)
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
            st._counts = section("counts")
            st.total = _count_total(st._counts, backend_id, _index_dtype(k1), n, s_max)
        else:
            st.total = n * s_max
        st._indices = section("indices")
    else:
        st.total = n * k1
    st._steps = section("steps")
    if granularity == "tensor":
        step = entropy.decompress(st._steps, backend_id, np.dtype("<f8"), 1)
        if not np.isfinite(step[0]) or step[0] < 0:
            raise StreamError("quantizer step is negative or not finite")
        st.tensor_step = float(step[0])
    st._values = section("values")
    if cur.pos != len(cur.data):
        raise StreamError(f"{len(cur.data) - cur.pos} unexpected bytes after the last section")
    return st


def _count_total(data: memoryview, backend: int, dtype: np.dtype, n: int, s_max: int) -> int:
    """Sum of a counts section (read in pieces), after checking every count against ``s_max``."""
    sec = entropy.open_section(data, backend, dtype, n)
    total = 0
    for i in range(0, n, _COUNTS_PIECE):
        c = sec.read(min(_COUNTS_PIECE, n - i))
        if c.size and int(c.max()) > s_max:
            raise StreamError("a vector's atom count exceeds s_max")
        total += int(c.sum(dtype=np.int64))
    sec.close()
    return total


_COUNTS_PIECE = 1 << 20
