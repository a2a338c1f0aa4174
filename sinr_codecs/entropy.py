"""Lossless back ends for the stream's sections, and the support (index) coding.

A section is a flat array of integers (or of floats, for fixed quantizer steps) whose item count the
stream's header implies. Back ends (ids as stored):

- id 3 ``"pcodec"`` (what the writer uses by default): the items in pieces of :data:`PCODEC_PIECE`,
  each a standalone `pcodec <https://github.com/pcodec/pcodec>`_ file preceded by its byte length.
  pcodec codes integers within about 0.5% of their order-0 entropy on sections of a million values
  (0.3-0.5% measured; a few percent more on sections of a few thousand, where its header counts), encodes
  tens of millions and decodes hundreds of millions of values per second (docs/entropy-coders.md and
  benchmarks/weights_at_the_bound.py measure it); pieces let a reader decode a section of any length in
  bounded memory.
- id 2 ``"rans"``: integer sections with the static rANS of :mod:`sinr_codecs.rans` (no byte planes);
  float sections as id 1.
- id 1 ``"brotli"``: the items byte-planed (all low bytes, then the next bytes, ...), then Brotli at
  quality :data:`BROTLI_QUALITY`.
- id 0 ``"raw"``: the byte planes as they are.

``"auto"`` (the writer's default, :data:`AUTO`) is not an id: the writer stores a stream of more than
:data:`AUTO_TRIAL_ITEMS` integers with pcodec, and writes a shorter one with each of
:data:`AUTO_CANDIDATES` and keeps the smallest (pcodec's header and tables weigh on sections of a few
thousand values or fewer: 1-3% above rANS at 2,000-8,000, 3-11% at a few hundred, as
``benchmarks/entropy_coders.py`` measures). The stream records the back end it was written with.

Readers (:func:`open_section`) decode a section sequentially, a run of items at a time, so that a stream
decodes in memory proportional to the work chunk, not to the section: for byte planes behind Brotli,
one decompressor per plane skips to its plane (decoding costs up to ``(planes + 1) / 2`` times a
single pass).

Index coding (per vector, on its ``count`` used indices):

- id 0 ``"raw"``: the indices in OMP selection order;
- id 1 ``"delta"``: indices sorted ascending (values permuted alike), stored as the first index and
  then the gaps minus one. Small gaps entropy-code far better than uniform indices.
"""

from __future__ import annotations

from collections.abc import Iterator

import brotli
import numpy as np

from . import rans
from .cursor import Cursor, varint
from .errors import StreamError

__all__ = ["AUTO", "AUTO_CANDIDATES", "AUTO_TRIAL_ITEMS", "BACKENDS", "CHOICES", "INDEX_CODINGS",
           "PCODEC_PIECE", "auto_candidates", "compress", "decompress", "open_section", "Section", "encode_indices",
           "decode_indices"]

BACKENDS: dict[str, int] = {"raw": 0, "brotli": 1, "rans": 2, "pcodec": 3}
INDEX_CODINGS: dict[str, int] = {"raw": 0, "delta": 1}
AUTO = "auto"
"""The ``entropy`` choice that lets the writer pick the back end (not stored: streams record a real id)."""
AUTO_CANDIDATES = ("pcodec", "rans", "brotli")
"""Back ends ``"auto"`` tries on short streams, in order of preference on a tie."""
AUTO_TRIAL_ITEMS = 1 << 13
"""Integers up to which ``"auto"`` writes a stream with every candidate (counted as the writer holds them: the
quantized values and the indices, a vector's unused slots included, the counts not); above it,
pcodec (within about 1% of rANS from there up, measured; trying the others on longer streams would cost more
time than the bytes it could save)."""
CHOICES: tuple[str, ...] = (AUTO, *BACKENDS)
"""What the ``entropy`` option accepts."""
BROTLI_QUALITY = 9
"""Brotli quality the writer uses (any quality decodes the same way)."""
PCODEC_PIECE = 1 << 18
"""Items per pcodec piece (the last piece of a section holds the rest)."""
_BROTLI_OUT = 1 << 18  # bytes a Brotli plane decoder asks for per call (it may give up to about twice)
_PCODEC_TYPES: dict[str, dict[int, np.dtype]] = {
    "i": {1: np.dtype("<i2"), 2: np.dtype("<i2"), 4: np.dtype("<i4"), 8: np.dtype("<i8")},
    "u": {1: np.dtype("<u2"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")},
    "f": {4: np.dtype("<f4"), 8: np.dtype("<f8")}}


def _pcodec_type(dtype: np.dtype) -> np.dtype:
    """The number type pcodec codes items of ``dtype`` as (8-bit integers widen to 16 bits)."""
    try:
        return _PCODEC_TYPES[dtype.kind][dtype.itemsize]
    except KeyError:
        raise ValueError(f"pcodec sections hold integers or float32/float64, not {dtype}") from None


def auto_candidates(items: int) -> tuple[str, ...]:
    """The back ends ``"auto"`` writes a stream of ``items`` integers with (the smallest result is kept)."""
    return AUTO_CANDIDATES if items <= AUTO_TRIAL_ITEMS else AUTO_CANDIDATES[:1]


def _planes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    w = a.dtype.itemsize
    return a.view(np.uint8).reshape(-1, w).T.tobytes() if w > 1 else a.tobytes()


def compress(a: np.ndarray, backend: int) -> bytes:
    """Code a 1-D integer (or float) array with back end id ``backend``."""
    a = np.asarray(a).reshape(-1)
    if backend == 3:
        from pcodec import ChunkConfig, standalone

        kind = _pcodec_type(a.dtype)
        out = bytearray()
        for i in range(0, a.size, PCODEC_PIECE):
            piece = standalone.simple_compress(np.ascontiguousarray(a[i:i + PCODEC_PIECE], dtype=kind), ChunkConfig())
            out += varint(len(piece))
            out += piece
        return bytes(out)
    if backend == 2 and a.dtype.kind in "iu":
        return rans.encode(np.asarray(a, dtype=np.int64))
    raw = _planes(a)
    if backend == 0:
        return raw
    if backend in (1, 2):
        return brotli.compress(raw, quality=BROTLI_QUALITY)
    raise ValueError(f"unknown entropy back end id {backend}")


def decompress(data: bytes | memoryview, backend: int, dtype: np.dtype, count: int) -> np.ndarray:
    """Inverse of :func:`compress` for a whole section of ``count`` items of ``dtype``.

    Raises
    ------
    StreamError
        If the data does not hold exactly ``count`` valid items.
    """
    sec = open_section(data, backend, dtype, count)
    out = sec.read(count)
    sec.close()
    return out


# --------------------------------------------------------------------------------------------- readers
class Section:
    """Sequential reader of one section's items: :meth:`read` the next ``n``, then :meth:`close` (which
    checks that the section held exactly ``count`` items and nothing more)."""

    def __init__(self, dtype: np.dtype, count: int) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.count = int(count)
        self.pos = 0

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` items (little-endian ``dtype``, a new array)."""
        if n < 0 or self.pos + n > self.count:
            raise StreamError(f"section read past its {self.count} items")
        out = self._read(n) if n else np.zeros(0, dtype=self.dtype)
        self.pos += n
        return out

    def close(self) -> None:
        """Check that every item was read and the coded data ended with the last one."""
        if self.pos != self.count:
            raise StreamError(f"section has {self.count} items, {self.pos} were read")
        self._close()

    def _read(self, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass


def open_section(data: bytes | memoryview, backend: int, dtype: np.dtype, count: int) -> Section:
    """A :class:`Section` reader over one section's bytes.

    Raises
    ------
    StreamError
        An unknown back end, or data whose size cannot hold ``count`` items (raw), checked here; any other
        corruption when the items are read.
    """
    dtype = np.dtype(dtype)
    if backend == 3:
        return _PcodecSection(data, dtype, count)
    if backend == 2 and dtype.kind in "iu":
        return _RansSection(data, dtype, count)
    if backend == 0:
        return _RawSection(data, dtype, count)
    if backend in (1, 2):
        return _BrotliSection(data, dtype, count)
    raise StreamError(f"unknown entropy back end id {backend}")


class _RawSection(Section):
    def __init__(self, data: bytes | memoryview, dtype: np.dtype, count: int) -> None:
        super().__init__(dtype, count)
        self.raw = np.frombuffer(data, dtype=np.uint8)
        if self.raw.size != count * self.dtype.itemsize:
            raise StreamError(f"section decodes to {self.raw.size} bytes, header promises "
                              f"{count * self.dtype.itemsize}")

    def _read(self, n: int) -> np.ndarray:
        w, c, p = self.dtype.itemsize, self.count, self.pos
        planes = np.empty((n, w), dtype=np.uint8)
        for b in range(w):
            planes[:, b] = self.raw[b * c + p : b * c + p + n]
        return planes.view(self.dtype).reshape(n)


class _BrotliPlane:
    """The bytes of one byte plane of a Brotli section: a decompressor that skips to the plane's start."""

    def __init__(self, data: bytes | memoryview, skip: int) -> None:
        self.dec = brotli.Decompressor()
        self.data: bytes | None = bytes(data)
        self.buf = b""
        self.skip = skip

    def _more(self) -> bytes:
        try:
            if self.data is not None:
                out = self.dec.process(self.data, output_buffer_limit=_BROTLI_OUT)
                self.data = None
            elif self.dec.is_finished():
                return b""
            else:
                out = self.dec.process(b"", output_buffer_limit=_BROTLI_OUT)
        except brotli.error as e:
            raise StreamError(f"corrupt Brotli section: {e}") from None
        return out

    def take(self, n: int) -> bytes:
        while self.skip:
            out = self._more()
            if not out:
                raise StreamError("truncated Brotli section")
            drop = min(self.skip, len(out))
            self.skip -= drop
            self.buf = out[drop:]
        parts, have = [self.buf], len(self.buf)
        while have < n:
            out = self._more()
            if not out:
                raise StreamError("truncated Brotli section")
            parts.append(out)
            have += len(out)
        joined = b"".join(parts)
        self.buf = joined[n:]
        return joined[:n]

    def finish(self) -> None:
        if self.buf or self._more():
            raise StreamError("Brotli section decodes to more bytes than the header promises")
        if not self.dec.is_finished():
            raise StreamError("truncated Brotli section")


class _BrotliSection(Section):
    def __init__(self, data: bytes | memoryview, dtype: np.dtype, count: int) -> None:
        super().__init__(dtype, count)
        w = self.dtype.itemsize
        self.planes = [_BrotliPlane(data, b * count) for b in range(w)]

    def _read(self, n: int) -> np.ndarray:
        w = self.dtype.itemsize
        planes = np.empty((n, w), dtype=np.uint8)
        for b, plane in enumerate(self.planes):
            planes[:, b] = np.frombuffer(plane.take(n), dtype=np.uint8)
        return planes.view(self.dtype).reshape(n)

    def _close(self) -> None:
        self.planes[-1].finish()


class _RansSection(Section):
    def __init__(self, data: bytes | memoryview, dtype: np.dtype, count: int) -> None:
        super().__init__(dtype, count)
        info = np.iinfo(self.dtype)
        self.lo, self.hi = int(info.min), int(info.max)
        alphabet = min(self.hi - self.lo + 1, rans.MAX_ALPHABET)
        self.pieces: Iterator[np.ndarray] = rans.iter_decode(bytes(data), count, max_alphabet=alphabet)
        self.buf = np.zeros(0, dtype=np.int64)

    def _read(self, n: int) -> np.ndarray:
        parts, have = [self.buf], self.buf.size
        while have < n:
            piece = next(self.pieces, None)
            if piece is None:  # pragma: no cover - rans yields exactly count symbols or raises
                raise StreamError("rANS section holds too few symbols")
            if piece.size and (int(piece.min()) < self.lo or int(piece.max()) > self.hi):
                raise StreamError(f"rANS section holds values outside {self.dtype.name}")
            parts.append(piece)
            have += piece.size
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.buf = joined[n:]
        return joined[:n].astype(self.dtype)

    def _close(self) -> None:
        for _ in self.pieces:  # runs the final checks of the rANS stream
            raise StreamError("rANS section holds more symbols than the header promises")


class _PcodecSection(Section):
    def __init__(self, data: bytes | memoryview, dtype: np.dtype, count: int) -> None:
        super().__init__(dtype, count)
        self.kind = _pcodec_type(self.dtype) if self.dtype.kind in "iuf" else None
        if self.kind is None:
            raise StreamError(f"pcodec sections cannot hold {self.dtype}")
        self.cur = Cursor(data)
        self.buf = np.zeros(0, dtype=self.dtype)
        self.decoded = 0  # items decoded so far (whole pieces)

    def _piece(self, into: np.ndarray | None = None) -> np.ndarray:
        """Decode the next piece (into ``into``, a 1-D array of the piece's length and type, when given)."""
        from pcodec import standalone

        n = min(PCODEC_PIECE, self.count - self.decoded)
        length = self.cur.varint("pcodec piece length", self.cur.left)
        blob = bytes(self.cur.take(length, "pcodec piece"))
        out = into if into is not None else np.empty(max(n, 1), dtype=self.kind)
        try:
            progress = standalone.simple_decompress_into(blob, out)
        except (RuntimeError, TypeError, ValueError) as e:
            raise StreamError(f"corrupt pcodec section: {e}") from None
        if progress.n_processed != n or not progress.finished:
            raise StreamError(f"pcodec piece holds {'more than ' if not progress.finished else ''}"
                              f"{progress.n_processed} items, the header promises {n}")
        self.decoded += n
        out = out[:n]
        if self.kind != self.dtype:
            info = np.iinfo(self.dtype)
            if n and (int(out.min()) < info.min or int(out.max()) > info.max):
                raise StreamError(f"pcodec section holds values outside {self.dtype.name}")
            return out.astype(self.dtype)
        return out

    def _read(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=self.dtype)
        have = min(n, self.buf.size)
        out[:have] = self.buf[:have]
        self.buf = self.buf[have:]
        while have < n:
            piece_n = min(PCODEC_PIECE, self.count - self.decoded)
            if self.kind == self.dtype and have + piece_n <= n:  # straight into the output
                self._piece(out[have:have + piece_n])
                have += piece_n
                continue
            piece = self._piece()
            take = min(n - have, piece.size)
            out[have:have + take] = piece[:take]
            self.buf = piece[take:]
            have += take
        return out

    def _close(self) -> None:
        if self.cur.left:
            raise StreamError(f"{self.cur.left} unexpected bytes after a pcodec section's last piece")


# ---------------------------------------------------------------------------------------- index coding
def encode_indices(indices: np.ndarray, counts: np.ndarray, coding: int) -> tuple[np.ndarray, np.ndarray]:
    """Order each vector's support for coding id ``coding``.

    Parameters
    ----------
    indices : (n, s) int64, -1 beyond each vector's count.
    counts : (n,) int64.

    Returns
    -------
    symbols : (sum(counts),) int64, the coded index symbols (row by row).
    order : (n, s) int64, the permutation applied to each row (apply it to the values too).
    """
    n, s = indices.shape
    if coding == 0:
        order = np.broadcast_to(np.arange(s), (n, s)).copy()
        srt = indices
    elif coding == 1:
        key = np.where(indices < 0, np.iinfo(np.int64).max, indices)
        order = np.argsort(key, axis=1, kind="stable")
        srt = np.take_along_axis(indices, order, axis=1)
        gaps = np.diff(srt, axis=1) - 1
        srt = np.concatenate([srt[:, :1], gaps], axis=1) if s else srt
    else:
        raise ValueError(f"unknown index coding id {coding}")
    used = np.arange(s)[None, :] < counts[:, None]
    return srt[used], order


def decode_indices(symbols: np.ndarray, counts: np.ndarray, k2: int,
                   coding: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of :func:`encode_indices` for a run of vectors, without padding them to a common length.

    Parameters
    ----------
    symbols : (sum(counts),) unsigned integers, the coded symbols of consecutive vectors.
    counts : (n,) int64 atoms per vector.
    k2 : int
        Dictionary size: every index must lie in ``[0, k2)``.
    coding : int
        Index coding id (:data:`INDEX_CODINGS`).

    Returns
    -------
    indices : (sum(counts),) int64, ascending within each vector (the order a CSR matrix wants).
    order : (sum(counts),) int64 or None
        The permutation that sorted them (apply it to the values too); None when they were stored
        sorted ("delta").

    Raises
    ------
    StreamError
        If any decoded index is outside [0, k2) or repeats within a vector.
    """
    t = symbols.shape[0]
    out = symbols.astype(np.int64)
    order = None
    if t == 0:
        return out, order
    if coding == 1:
        starts = (np.cumsum(counts) - counts)[counts > 0]
        out += 1
        out[starts] -= 1
        np.cumsum(out, out=out)
        before = np.zeros(starts.shape[0], dtype=np.int64)
        before[1:] = out[starts[1:] - 1]
        out -= np.repeat(before, counts[counts > 0])
    elif coding == 0:
        rows = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
        order = np.lexsort((out, rows))
        out = out[order]
        if np.any((out[1:] == out[:-1]) & (rows[1:] == rows[:-1])):
            raise StreamError("stream repeats an atom index within a vector")
    else:
        raise StreamError(f"unknown index coding id {coding}")
    if int(out.max()) >= k2:
        raise StreamError(f"stream holds an atom index outside [0, {k2})")
    return out, order
