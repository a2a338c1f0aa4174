"""Lossless back ends for the stream's sections, and the support (index) coding.

A section is a flat integer array. It is byte-planed (all low bytes, then the next bytes, ...),
which groups the near-constant high bytes of small integers, then compressed by the back end:

- id 0 ``"raw"``: stored as is;
- id 1 ``"brotli"``: Brotli at quality :data:`BROTLI_QUALITY` (9; the paper used 11, which writes
  many times slower for 0-2.4% smaller sections, measured by ``benchmarks/model_throughput.py``);
- id 2 ``"rans"``: integer sections with the static rANS of :mod:`sinr_codecs.rans` (an empirical
  histogram stored in the section, no byte planes); float sections (quantizer steps) with Brotli as
  in id 1. Smaller than Brotli on short sections (INR-sized layers), about equal on long ones.

Index coding (per vector, on its ``count`` used indices):

- id 0 ``"raw"``: the indices in OMP selection order;
- id 1 ``"delta"``: indices sorted ascending (values permuted alike), stored as the first index and
  then the gaps minus one. Small gaps entropy-code far better than uniform indices.
"""

from __future__ import annotations

import brotli
import numpy as np

from . import rans
from .errors import StreamError

__all__ = ["BACKENDS", "INDEX_CODINGS", "compress", "decompress", "encode_indices", "decode_indices"]

BACKENDS: dict[str, int] = {"raw": 0, "brotli": 1, "rans": 2}
INDEX_CODINGS: dict[str, int] = {"raw": 0, "delta": 1}
BROTLI_QUALITY = 9
"""Brotli quality the writer uses (any quality decodes the same way)."""


def _planes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    w = a.dtype.itemsize
    return a.view(np.uint8).reshape(-1, w).T.tobytes() if w > 1 else a.tobytes()


def _unplanes(raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    dtype = np.dtype(dtype).newbyteorder("<")
    w = dtype.itemsize
    b = np.frombuffer(raw, dtype=np.uint8)
    if w > 1:
        b = np.ascontiguousarray(b.reshape(w, count).T)
    return b.view(dtype).reshape(count)


def compress(a: np.ndarray, backend: int) -> bytes:
    """Byte-plane then compress a 1-D integer (or float) array with back end id ``backend``."""
    if backend == 2 and a.dtype.kind in "iu":
        return rans.encode(np.asarray(a, dtype=np.int64))
    raw = _planes(a)
    if backend == 0:
        return raw
    if backend in (1, 2):
        return brotli.compress(raw, quality=BROTLI_QUALITY)
    raise ValueError(f"unknown entropy back end id {backend}")


def decompress(data: bytes, backend: int, dtype: np.dtype, count: int) -> np.ndarray:
    """Inverse of :func:`compress`; refuses output of any size but ``count`` items.

    Raises
    ------
    StreamError
        If the data does not decompress to exactly ``count * itemsize`` bytes.
    """
    expected = count * np.dtype(dtype).itemsize
    if backend == 2 and np.dtype(dtype).kind in "iu":
        return _from_rans(data, dtype, count)
    if backend == 0:
        raw = bytes(data)
    elif backend in (1, 2):
        d = brotli.Decompressor()
        try:
            # never let a corrupt stream expand beyond what the header promised
            raw = d.process(bytes(data), output_buffer_limit=expected + 1)
            finished = d.is_finished()
        except brotli.error as e:
            raise StreamError(f"corrupt Brotli section: {e}") from None
        if not finished and len(raw) <= expected:
            raise StreamError("truncated Brotli section")
    else:
        raise StreamError(f"unknown entropy back end id {backend}")
    if len(raw) != expected:
        raise StreamError(f"section decodes to {len(raw)} bytes, header promises {expected}")
    return _unplanes(raw, dtype, count)


def _from_rans(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    dt = np.dtype(dtype).newbyteorder("<")
    info = np.iinfo(dt)
    out = rans.decode(bytes(data), count, max_alphabet=min(int(info.max) - int(info.min) + 1, rans.MAX_ALPHABET))
    if out.size and (int(out.min()) < info.min or int(out.max()) > info.max):
        raise StreamError(f"rANS section holds values outside {dt.name}")
    return out.astype(dt)


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


def decode_indices(symbols: np.ndarray, counts: np.ndarray, k2: int, coding: int) -> tuple[np.ndarray, np.ndarray | None]:
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
