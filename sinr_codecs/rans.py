"""Static order-0 rANS for integer sections, vectorised over interleaved lanes in pure numpy.

:func:`encode` makes two passes over a 1-D integer array: it counts the symbols, quantises the
histogram to frequencies summing to ``M = 2**scale`` (every present symbol gets at least 1; ``scale``
is chosen per stream to minimise table bytes + coded bits), stores that table, and codes the symbols
with ``n_lanes`` independent rANS coders whose 32-bit renormalisation words are interleaved into one
stream. Symbol ``i`` belongs to lane ``i % n_lanes`` at step ``i // n_lanes``, so each step is a
handful of numpy operations over all lanes. ``n_lanes`` is picked so the lanes' final states cost
about 0.5 % of the output (1 to 4096 lanes, and at least ``ceil(n / MAX_STEPS)``). :func:`decode` validates
every field before it allocates and raises :class:`~sinr_codecs.errors.StreamError` on any corrupt or truncated input.

Two models; :func:`encode` computes the cost of both from the histogram and keeps the cheaper:

- *direct*: one rANS symbol per distinct value. Best for narrow or sparse alphabets (a few small
  values, {0, 70000}, very skewed histograms).
- *binned*: each value ``v`` is mapped to ``u >= 0`` (``u = v - lo`` or ``u = zigzag(v)``) and split
  into a token, coded with the table, and ``b`` raw bits pushed through the same rANS state. With
  parameters ``k`` and ``m <= k``: ``u < 2**k`` is its own token (``b = 0``); otherwise, with
  ``e = bit_length(u) - 1``, the token is ``2**k + (e - k) * 2**m + (the m bits of u below its
  leading one)`` and ``b = e - m`` (the low bits of ``u``). Best for wide, smooth histograms
  (12-16-bit quantized values), where a table entry per value would cost as much as the data and
  the empirical histogram overfits. SINR's value and index-gap sections mostly end up here.

Coder
-----
Each lane's state ``x`` is a uint64 in ``[2**31, 2**63)``; it starts (encoder) and must end
(decoder) at ``2**31``. Per symbol the decoder does::

    slot = x % M; s = the symbol with slot in [c_s, c_s + f_s)     # table lookup
    x = f_s * (x // M) + slot - c_s
    if x < 2**31: x = x * 2**32 + next_word                         # renormalisation 1
    [binned:] bits = x % 2**b; x = x // 2**b                        # b = b(s) <= 32 raw bits
    [binned:] if x < 2**31: x = x * 2**32 + next_word               # renormalisation 2

and the encoder the exact inverse, symbols in reverse order (push the raw bits, emitting the low 32
bits of ``x`` first if ``x >= 2**(63 - b)``; then emit if ``x >= f_s * 2**(63 - scale)`` and set
``x = (x // f_s) * M + x % f_s + c_s``). Each renormalisation moves at most one word. Streams of at
most 8 lanes run a per-symbol Python loop instead of the numpy loop over steps (same bytes).

Byte layout
-----------
Integers are unsigned LEB128 varints (minimal encodings only) unless a width is given; fixed-width
fields are little-endian; ``zigzag(v) = 2v`` for ``v >= 0`` and ``-2v - 1`` for ``v < 0``. The symbol
count ``n`` is *not* stored: the caller passes it to :func:`decode` (the SINR header knows it).

- ``n == 0``: the empty byte string.
- otherwise ``u8 tag``, then by tag:

  - ``0``, a single distinct value ``v`` repeated n times: ``varint zigzag(v) | varint n - 1``
    (the one layout that stores n: it has no lanes whose final states would catch a wrong count).
  - ``1..MAX_SCALE``, direct (``scale = tag``): ``varint zigzag(lo)``, then ``table`` over the
    values ``lo + j`` (at least 2 present), ``lanes``.
  - ``0x40`` (binned, ``u = v - lo``) or ``0x41`` (binned, ``u = zigzag(v)``)::

        [0x40 only:] varint zigzag(lo)
        u8 k, u8 m               k <= 32, m <= min(k, 8); u < 2**33, so b <= 32
        u8 scale                 1..MAX_SCALE
        varint t0                smallest token
        table                    over the tokens t0 + j (at least 1 present)
        lanes

  ``table`` (frequencies sum to ``M = 2**scale``)::

        varint size - 1          alphabet width; its first and last entries occur
        u8 kind                  0 dense, 1 sparse
          dense:  size varints     frequency of each entry (0: absent)
          sparse: varint p - 1     p = number of present entries
                  p - 1 varints    gap - 1 between consecutive present entries (last = size - 1)
                  p varints        frequency - 1 of each present entry, ascending

  ``lanes``::

        varint n_lanes - 1       ceil(n / MAX_STEPS) <= n_lanes <= min(n, MAX_LANES)
        n_lanes varints          final encoder state of each lane, each in [2**31, 2**63)
        W x u32                  the words, to the end of the data (W <= n direct, <= 2n binned)

  The words are in decoding order: for step ``t = 0, 1, ...`` (symbols ``t * n_lanes + lane``), the
  words of renormalisation 1 of the lanes that need one, in increasing lane order, then those of
  renormalisation 2 (binned). The encoder runs the steps backwards, emits each group in lane order
  and fills its buffer back to front.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload

import numpy as np

from .cursor import Cursor
from .cursor import varint as _varint
from .errors import StreamError

__all__ = ["encode", "decode", "iter_decode", "encode_with_model", "decode_with_model", "cost_bits", "zigzag",
           "unzigzag", "MAX_SCALE", "MAX_ALPHABET", "MAX_LANES", "MAX_STEPS", "MAX_COUNT"]

MAX_SCALE = 22
"""Largest frequency precision (bits); the decoder's slot tables hold ``2**scale`` entries."""
MAX_ALPHABET = 1 << 32
"""Widest alphabet (``max - min + 1``) :func:`encode` accepts and :func:`decode` allows by default."""
MAX_LANES = 1 << 16
"""Most interleaved lanes a stream may declare."""
MAX_STEPS = 1 << 15
"""Most symbols per lane: streams use at least ``ceil(n / MAX_STEPS)`` lanes, bounding decode time."""
MAX_COUNT = MAX_LANES * MAX_STEPS
"""Most symbols one stream may hold (2**31)."""

_STATE_LOW = 1 << 31  # lane state interval [_STATE_LOW, _STATE_LOW << 32)
_WORD_BITS = 32
_LANE_OVERHEAD = 0.005  # target for (lane overhead, ~6 bytes each) / (output bytes)
_LANE_BYTES = 6
_PREFERRED_MAX_LANES = 4096
_ENC_BLOCK = 1 << 16  # symbols whose tables the encoder gathers at once
_I64_MAX = (1 << 63) - 1
_TAG_OFFSET = 0x40
_TAG_ZIGZAG = 0x41
_U_BITS = 33  # binned mode: u < 2**33
_MAX_M = 8
_SEARCH_M = 4  # the encoder tries m = 0 .. _SEARCH_M - 1
_SEARCH_K = 16  # ... and k <= _SEARCH_K
_SCALAR_LANES = 8  # up to this many lanes, a Python loop per symbol beats numpy calls per step
_EXACT_CANDIDATES = 6  # binned candidates whose exact cost the encoder computes


# ------------------------------------------------------------------------------------------ varints


@overload
def zigzag(v: int | np.integer) -> int: ...
@overload
def zigzag(v: np.ndarray) -> np.ndarray: ...
def zigzag(v: int | np.integer | np.ndarray) -> int | np.ndarray:
    """Map signed integers to unsigned ones, small magnitudes first: ``2v`` for ``v >= 0``, ``-2v - 1`` below.

    Parameters
    ----------
    v : int or numpy integer array
        A Python int (any size; the result is a Python int) or an array (read as int64; the result is
        an int64 array of the same shape, exact for ``|v| < 2**62``).

    Returns
    -------
    int or numpy.ndarray
        ``0, -1, 1, -2, 2, ...`` -> ``0, 1, 2, 3, 4, ...``.

    Examples
    --------
    >>> zigzag(-3), zigzag(3)
    (5, 6)
    >>> zigzag(np.array([0, -1, 1, -2])).tolist()
    [0, 1, 2, 3]
    """
    if isinstance(v, (int, np.integer)):
        v = int(v)
        return 2 * v if v >= 0 else -2 * v - 1
    a = np.asarray(v, dtype=np.int64)
    return np.where(a >= 0, 2 * a, -2 * a - 1)


@overload
def unzigzag(u: int | np.integer) -> int: ...
@overload
def unzigzag(u: np.ndarray) -> np.ndarray: ...
def unzigzag(u: int | np.integer | np.ndarray) -> int | np.ndarray:
    """Inverse of :func:`zigzag`: even ``u`` -> ``u / 2``, odd ``u`` -> ``-(u + 1) / 2``.

    Parameters
    ----------
    u : int or numpy integer array
        Non-negative: a Python int (any size) or an array of unsigned or signed integers below ``2**63``
        (read as int64; unsigned 8- and 16-bit arrays are widened first, so nothing wraps).

    Returns
    -------
    int or numpy.ndarray
        A Python int, or an int64 array of the same shape.

    Examples
    --------
    >>> unzigzag(5), unzigzag(6)
    (-3, 3)
    >>> unzigzag(np.array([0, 1, 2, 3], dtype=np.uint16)).tolist()
    [0, -1, 1, -2]
    """
    if isinstance(u, (int, np.integer)):
        u = int(u)
        return (u >> 1) ^ -(u & 1)
    a = np.asarray(u).astype(np.int64, copy=False)
    return (a >> 1) ^ -(a & 1)


def _varint_lengths(v: np.ndarray) -> np.ndarray:
    """Bytes of each value's LEB128 encoding; ``v`` is uint64."""
    n = np.ones(v.shape, dtype=np.int64)
    top = int(v.max()) if v.size else 0
    for j in range(1, 10):
        if top < 1 << (7 * j):
            break
        n += v >= np.uint64(1 << (7 * j))
    return n


def _varints(v: np.ndarray) -> bytes:
    """LEB128 encodings of a uint64 array, concatenated (vectorised)."""
    v = np.asarray(v, dtype=np.uint64)
    if v.size == 0:
        return b""
    lens = _varint_lengths(v)
    ends = np.cumsum(lens)
    starts = ends - lens
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for j in range(int(lens.max())):
        sel = lens > j
        byte = (v[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)
        byte |= np.where(lens[sel] > j + 1, np.uint64(0x80), np.uint64(0))
        out[starts[sel] + j] = byte.astype(np.uint8)
    return out.tobytes()


class _Reader(Cursor):
    """The bounds-checked cursor, with minimal varints, vectorised varints and numpy slices."""

    def __init__(self, data: bytes | bytearray | memoryview):
        super().__init__(data, name="rANS stream", minimal=True)
        self.buf = np.frombuffer(self.data, dtype=np.uint8)

    def varints(self, k: int, what: str, limit: int) -> np.ndarray:
        """``k`` varints, each <= ``limit`` (< 2**63), as int64 (vectorised)."""
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        if k > self.left:
            raise StreamError(f"rANS stream truncated: {what} needs {k} integers, {self.left} bytes remain")
        maxlen = max(1, (int(limit).bit_length() + 6) // 7)
        window = self.buf[self.pos : self.pos + min(self.left, k * maxlen)]
        ends = np.flatnonzero(window < 0x80)[:k]
        if ends.size < k:
            raise StreamError(f"rANS stream truncated or malformed while reading {what}")
        starts = np.empty(k, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lens = ends - starts + 1
        if int(lens.max()) > maxlen:
            raise StreamError(f"rANS stream: {what} holds a value above the limit {limit}")
        if np.any((lens > 1) & (window[ends] == 0)):
            raise StreamError(f"rANS stream: non-minimal integer encoding in {what}")
        seg = window[: int(ends[-1]) + 1].astype(np.uint64) & np.uint64(0x7F)
        offs = (np.arange(seg.size, dtype=np.int64) - np.repeat(starts, lens)).astype(np.uint64)
        vals = np.add.reduceat(seg << (np.uint64(7) * offs), starts)  # < 2**63: at most 9 bytes
        if int(vals.max()) > limit:
            raise StreamError(f"rANS stream: {what} holds a value above the limit {limit}")
        self.pos += int(ends[-1]) + 1
        return vals.astype(np.int64)

    def take_array(self, n: int, what: str) -> np.ndarray:
        """:meth:`take` as a uint8 array (a view, not a copy)."""
        return np.frombuffer(self.take(n, what), dtype=np.uint8)


# ------------------------------------------------------------------------------------ histograms


def _as_symbols(symbols: np.ndarray) -> np.ndarray:
    a = np.asarray(symbols)
    if a.ndim != 1:
        raise ValueError(f"rANS codes 1-D arrays, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"rANS codes integer arrays, got dtype {a.dtype}")
    if a.dtype == np.uint64 and int(a.max()) > _I64_MAX:
        raise ValueError("rANS codes int64 values; this uint64 array holds larger ones")
    return a.astype(np.int64, copy=False)


def _histogram(a: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """(lo, size, present offsets (p,) int64, counts (p,) int64, per-symbol index into present (n,))."""
    lo, hi = int(a.min()), int(a.max())
    size = hi - lo + 1
    if size > MAX_ALPHABET:
        raise ValueError(f"rANS alphabet {lo}..{hi} is wider than MAX_ALPHABET = {MAX_ALPHABET}")
    if size <= max(a.size, 1 << 16):
        off = a - lo
        counts_all = np.bincount(off, minlength=size)
        present = np.flatnonzero(counts_all)
        rank = np.zeros(size, dtype=np.int64)
        rank[present] = np.arange(present.size)
        return lo, size, present.astype(np.int64), counts_all[present].astype(np.int64), rank[off]
    vals, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
    return lo, size, (vals - lo).astype(np.int64), counts.astype(np.int64), inv.reshape(-1).astype(np.int64)


def _entropy_bits(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    return float(np.sum(c * np.log2(c.sum() / c))) if c.size else 0.0


def _normalize(counts: np.ndarray, scale: int) -> np.ndarray:
    """Frequencies (int64) summing to exactly ``2**scale``, each >= 1, near-proportional to ``counts``.

    Symbols whose share would round to 0 are forced to 1 and the rest of the budget is shared in
    proportion (a fixed point, found in a few passes); the leftover (fewer than ``p`` units) goes one
    unit each to the symbols that gain the most bits from it.
    """
    m = 1 << scale
    p = counts.size
    if p > m:
        raise ValueError(f"{p} distinct symbols do not fit frequencies summing to 2**{scale}")
    forced = np.zeros(p, dtype=bool)
    while True:
        mf = m - int(forced.sum())
        nf = int(counts[~forced].sum())
        f = np.where(forced, 1, (counts * mf) // nf)
        new = forced | (f == 0)
        if np.array_equal(new, forced):
            break
        forced = new
    f = np.maximum(f, 1)
    short = m - int(f.sum())
    if short > 0:
        gain = counts * np.log2((f + 1) / f)
        f[np.argsort(-gain, kind="stable")[:short]] += 1
    return f


def _table_layout(present: np.ndarray, freqs: np.ndarray, size: int, gap_len: int) -> tuple[bool, int]:
    """(dense?, bytes) of the cheaper ``table`` encoding; ``gap_len`` = bytes of the sparse gap varints."""
    p = present.size
    u = freqs.astype(np.uint64)
    dense_len = int(_varint_lengths(u).sum()) + size - p  # absent entries: one 0 byte each
    sparse_len = len(_varint(p - 1)) + gap_len + int(_varint_lengths(u - np.uint64(1)).sum())
    dense = dense_len <= sparse_len
    return dense, len(_varint(size - 1)) + 1 + (dense_len if dense else sparse_len)


def _build_table(present: np.ndarray, freqs: np.ndarray, size: int) -> bytes:
    """``table`` (module docstring) for entries ``present`` (ascending from 0) of a ``size``-wide alphabet."""
    gaps = (np.diff(present) - 1).astype(np.uint64)
    dense, _ = _table_layout(present, freqs, size, int(_varint_lengths(gaps).sum()))
    head = _varint(size - 1)
    if dense:
        d = np.zeros(size, dtype=np.uint64)
        d[present] = freqs
        return head + b"\x00" + _varints(d)
    freqs_m1 = freqs.astype(np.uint64) - np.uint64(1)
    return head + b"\x01" + _varint(present.size - 1) + _varints(gaps) + _varints(freqs_m1)


def _choose_scale(counts: np.ndarray, present: np.ndarray, size: int) -> tuple[int, np.ndarray, bytes, float]:
    """Scale minimising table bytes + coded bits: (scale, freqs, table bytes, coded bits)."""
    n = int(counts.sum())
    p = counts.size
    smin = max(1, (p - 1).bit_length())
    if smin > MAX_SCALE:
        raise ValueError(f"{p} distinct symbols exceed what rANS frequencies of 2**{MAX_SCALE} can hold")
    smax = min(MAX_SCALE, max(smin, n.bit_length() + 1))
    gap_len = int(_varint_lengths((np.diff(present) - 1).astype(np.uint64)).sum())
    best: tuple[float, int, np.ndarray, float] | None = None
    for scale in range(smin, smax + 1):
        f = _normalize(counts, scale)
        coded = float(np.sum(counts * (scale - np.log2(f))))
        total = coded + 8 * _table_layout(present, f, size, gap_len)[1]
        if best is None or total < best[0]:
            best = (total, scale, f, coded)
        elif total > best[0] + 8:  # coded bits fall and table bytes grow with the scale: past the minimum
            break
    assert best is not None  # smin <= smax: the loop ran
    _, scale, f, coded = best
    return scale, f, _build_table(present, f, size), coded


def _lanes_for(n: int, out_bits: float) -> int:
    lanes = int(_LANE_OVERHEAD * out_bits / 8 / _LANE_BYTES)
    lanes = min(max(lanes, 1), _PREFERRED_MAX_LANES)
    lanes = max(lanes, -(-n // MAX_STEPS))
    return max(1, min(lanes, n, MAX_LANES))


# ----------------------------------------------------------------------------------- binned model


def _bit_length(u: np.ndarray) -> np.ndarray:
    """bit_length of each element of a non-negative int64 array below 2**53."""
    return np.frexp(u.astype(np.float64))[1].astype(np.int64)


def _max_token(k: int, m: int) -> int:
    return (1 << k) + ((_U_BITS - 1 - k) << m) + (1 << m) - 1


def _tokens(u: np.ndarray, k: int, m: int, bl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(token, raw-bit count) of each u (non-negative int64 array)."""
    if bl is None:
        bl = _bit_length(u)
    esc = u >= (1 << k)
    e = np.maximum(bl - 1, k)  # = bl - 1 where esc
    nb = np.where(esc, e - m, 0)
    tok = np.where(esc, (1 << k) + ((e - k) << m) + ((u >> nb) & ((1 << m) - 1)), u)
    return tok, nb


def _untokens(tok: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(u with its raw bits zeroed, raw-bit count) of each token (int64 arrays)."""
    esc = tok >= (1 << k)
    j = np.where(esc, tok - (1 << k), 0)
    nb = np.where(esc, k + (j >> m) - m, 0)
    head = np.where(esc, ((1 << m) + (j & ((1 << m) - 1))) << nb, tok)
    return head, nb


def _mappings(lo: int, present: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Candidate (tag, u of each present value)."""
    out = [(_TAG_OFFSET, present)]
    vals = present + lo
    if lo < 0 and max(-lo, int(vals[-1])) < (1 << (_U_BITS - 1)):
        out.append((_TAG_ZIGZAG, zigzag(vals)))
    return out


def _binned_candidates(lo: int, present: np.ndarray, counts: np.ndarray) -> list[tuple[float, int, int, int]]:
    """Estimated bits of the binned models [(bits, tag, k, m)], best first (table cost guessed)."""
    cands: list[tuple[float, int, int, int]] = []
    for tag, u in _mappings(lo, present):
        bl = _bit_length(u)
        top = int(bl.max())
        for m in range(_SEARCH_M):
            for k in range(m, min(top, _SEARCH_K + 1)):  # k < bit_length(max u): some u escape
                tok, nb = _tokens(u, k, m, bl)
                tc = np.bincount(tok, weights=counts)
                est = _entropy_bits(tc) + float(np.sum(counts * nb)) + 8 * (1.5 * np.count_nonzero(tc) + 8)
                cands.append((est, tag, k, m))
    cands.sort()
    return cands


def _binned_model(tag: int, k: int, m: int, lo: int, present: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """Everything the binned encoder needs, and its exact cost in bits (lanes aside)."""
    u = dict(_mappings(lo, present))[tag]
    tok, nb = _tokens(u, k, m)
    tc = np.bincount(tok, weights=counts).astype(np.int64)
    tp = np.flatnonzero(tc)
    t0 = int(tp[0])
    scale, freqs, table, coded = _choose_scale(tc[tp], tp - t0, int(tp[-1]) - t0 + 1)
    head = (bytes([tag]) + (_varint(zigzag(lo)) if tag == _TAG_OFFSET else b"") + bytes([k, m, scale])
            + _varint(t0) + table)
    raw = float(np.sum(counts * nb))
    return dict(tag=tag, head=head, freqs=freqs, scale=scale, bits=coded + raw + 8 * len(head),
                tix=np.searchsorted(tp, tok), nb=nb)


# ------------------------------------------------------------------------------------------ API


def cost_bits(symbols: np.ndarray) -> float:
    """Empirical order-0 entropy of ``symbols`` times their number, in bits.

    Parameters
    ----------
    symbols : (n,) integer array

    Returns
    -------
    float
        ``sum_s c_s * log2(n / c_s)`` over the distinct values' counts ``c_s`` (0.0 when n <= 1):
        the size of an ideal static order-0 code of these exact counts, without its table. (For a
        short stream over a wide alphabet this undercuts what any code can reach: the empirical
        histogram overfits.)
    """
    a = _as_symbols(symbols)
    if a.size == 0:
        return 0.0
    return _entropy_bits(_histogram(a)[3])


def encode(symbols: np.ndarray) -> bytes:
    """Code a 1-D integer array with static order-0 interleaved rANS (layout: module docstring).

    Parameters
    ----------
    symbols : (n,) integer array
        Any sign; ``n <= MAX_COUNT`` and ``max - min < MAX_ALPHABET``.

    Returns
    -------
    bytes
        Self-contained except for ``n``, which :func:`decode` must be given.

    Raises
    ------
    TypeError
        Non-integer input.
    ValueError
        Not 1-D, or beyond the limits above.
    """
    a = _countable(symbols)
    n = a.size
    if n == 0:
        return b""
    lo, size, present, counts, idx = _histogram(a)
    if present.size == 1:
        return b"\x00" + _varint(zigzag(lo)) + _varint(n - 1)
    direct: dict[str, Any] | None = None
    if present.size <= (1 << MAX_SCALE):
        scale, freqs, table, coded = _choose_scale(counts, present, size)
        head = bytes([scale]) + _varint(zigzag(lo)) + table
        direct = dict(head=head, freqs=freqs, scale=scale, bits=coded + 8 * len(head))
    best: dict[str, Any] | None = None
    for est, tag, k, m in _binned_candidates(lo, present, counts)[:_EXACT_CANDIDATES]:
        if direct is not None and est > 1.5 * direct["bits"] + 256:
            break
        model = _binned_model(tag, k, m, lo, present, counts)
        if best is None or model["bits"] < best["bits"]:
            best = model
    if direct is not None and (best is None or direct["bits"] <= best["bits"]):
        words, states = _encode_lanes(idx, direct["freqs"], direct["scale"], _lanes_for(n, direct["bits"]))
        head = direct["head"]
    else:
        assert best is not None  # more than one symbol: some binned model fits
        # the raw bits are the low nb bits of each u (the encoder masks them)
        u = a - lo if best["tag"] == _TAG_OFFSET else zigzag(a)
        words, states = _encode_lanes(best["tix"][idx], best["freqs"], best["scale"],
                                      _lanes_for(n, best["bits"]), best["nb"][idx].astype(np.uint8), u)
        head = best["head"]
    return head + _varint(states.size - 1) + _varints(states) + words.astype("<u4").tobytes()


def _encode_lanes(idx: np.ndarray, freqs: np.ndarray, scale: int, lanes: int, nb: np.ndarray | None = None,
                  u: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``lanes`` interleaved encoders over ``idx`` (indices into ``freqs``), with ``nb`` raw bits of
    ``u`` after each symbol (binned); returns (words in decoding order (uint32), final states (uint64))."""
    if lanes <= _SCALAR_LANES:
        return _encode_scalar(idx, freqs, scale, lanes, nb, u)
    n = idx.size
    f_tab = freqs.astype(np.uint64)
    c_tab = np.zeros_like(f_tab)
    np.cumsum(f_tab[:-1], out=c_tab[1:])
    xmax_tab = f_tab << np.uint64(63 - scale)
    sh = np.uint64(scale)
    w_sh = np.uint64(_WORD_BITS)
    low = np.uint64(0xFFFFFFFF)
    one = np.uint64(1)
    out = np.empty(n if nb is None else 2 * n, dtype=np.uint32)
    pos = out.size
    x = np.full(lanes, _STATE_LOW, dtype=np.uint64)
    steps = -(-n // lanes)
    block = max(1, _ENC_BLOCK // lanes)
    t_hi = steps
    while t_hi > 0:
        t_lo = max(0, t_hi - block)
        seg = slice(t_lo * lanes, min(n, t_hi * lanes))
        sb = idx[seg]
        fb, cb, mb = f_tab[sb], c_tab[sb], xmax_tab[sb]
        if nb is not None:
            assert u is not None  # raw bits come with their values
            bb = nb[seg].astype(np.uint64)
            lb = np.left_shift(one, np.uint64(63) - bb)  # push b bits only below 2**(63 - b)
            vb = u[seg].astype(np.uint64) & ((one << bb) - one)
        for t in range(t_hi - 1, t_lo - 1, -1):
            i0 = (t - t_lo) * lanes
            a = min(lanes, n - t * lanes)
            xs = x[:a]
            if nb is not None:
                pos = _flush(xs, lb[i0 : i0 + a], out, pos, low, w_sh)
                np.left_shift(xs, bb[i0 : i0 + a], out=xs)
                xs |= vb[i0 : i0 + a]
            pos = _flush(xs, mb[i0 : i0 + a], out, pos, low, w_sh)
            q, r = np.divmod(xs, fb[i0 : i0 + a])
            np.left_shift(q, sh, out=q)
            q += r
            q += cb[i0 : i0 + a]
            xs[:] = q
        t_hi = t_lo
    return out[pos:], x


def _encode_scalar(idx: np.ndarray, freqs: np.ndarray, scale: int, lanes: int, nb: np.ndarray | None,
                   u: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_encode_lanes` for few lanes, one symbol at a time (same output)."""
    n = idx.size
    f_tab = freqs.tolist()
    c_tab = np.concatenate([[0], np.cumsum(freqs)[:-1]]).tolist()
    sym = idx.tolist()
    if nb is not None:
        assert u is not None  # raw bits come with their values
        nbl = nb.tolist()
        vl = (u.astype(np.uint64) & ((np.uint64(1) << nb.astype(np.uint64)) - np.uint64(1))).tolist()
    x = [_STATE_LOW] * lanes
    out: list[int] = []  # words in reverse decoding order: groups reversed, lanes descending
    shift = 63 - scale
    for t in range(-(-n // lanes) - 1, -1, -1):
        i0 = t * lanes
        a = min(lanes, n - i0)
        if nb is not None:
            for j in range(a - 1, -1, -1):
                b = nbl[i0 + j]
                xs = x[j]
                if xs >> (63 - b):
                    out.append(xs & 0xFFFFFFFF)
                    xs >>= 32
                x[j] = (xs << b) | vl[i0 + j]
        for j in range(a - 1, -1, -1):
            sj = sym[i0 + j]
            f = f_tab[sj]
            xs = x[j]
            if xs >= f << shift:
                out.append(xs & 0xFFFFFFFF)
                xs >>= 32
            q, r = divmod(xs, f)
            x[j] = (q << scale) + r + c_tab[sj]
    out.reverse()
    return np.array(out, dtype=np.uint32), np.array(x, dtype=np.uint64)


def decode(data: bytes | bytearray | memoryview, count: int, *, max_alphabet: int = MAX_ALPHABET) -> np.ndarray:
    """Inverse of :func:`encode`.

    Parameters
    ----------
    data : bytes-like
        Exactly one stream written by :func:`encode` (no trailing bytes).
    count : int
        The number of symbols it holds (n), 0 <= count <= :data:`MAX_COUNT`.
    max_alphabet : int, default MAX_ALPHABET
        Refuse tables wider than this many entries (direct: ``max - min + 1``).

    Returns
    -------
    (count,) int64 array

    Raises
    ------
    ValueError
        ``count`` is not an integer >= 0.
    StreamError
        If the data is corrupt, truncated, has trailing bytes, does not hold ``count`` symbols, or
        exceeds a limit. Memory use is O(count + len(data)) and time O(count + len(data)) whatever
        the input.
    """
    parts = list(iter_decode(data, count, max_alphabet=max_alphabet))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def iter_decode(data: bytes | bytearray | memoryview, count: int, *, max_alphabet: int = MAX_ALPHABET,
                batch: int = 1 << 16) -> Iterator[np.ndarray]:
    """:func:`decode` in pieces: yields the symbols in order as int64 arrays of about ``batch`` symbols.

    The stream's header and tables are validated before the first piece; the lanes' final states and
    the word count (the checks that catch a corrupt or mis-counted stream) after the last. Memory is
    O(len(data) + batch + the table) whatever ``count`` is.

    Raises
    ------
    ValueError, StreamError
        As :func:`decode`; a StreamError may come after some pieces were yielded.
    """
    r = _start(data, count)
    if r is None:
        return
    count = int(count)
    tag = r.u8("tag")
    max_alphabet = min(int(max_alphabet), MAX_ALPHABET)
    if tag == 0:
        v = unzigzag(r.varint("value", (1 << 64) - 1))
        stored = r.varint("symbol count", MAX_COUNT) + 1
        if stored != count:
            raise StreamError(f"rANS stream holds {stored} symbols, {count} were asked for")
        if r.left:
            raise StreamError(f"rANS stream has {r.left} trailing bytes")
        if v > _I64_MAX or v < -_I64_MAX - 1:
            raise StreamError("rANS stream: the value exceeds the int64 range")
        for i in range(0, count, batch):
            yield np.full(min(batch, count - i), v, dtype=np.int64)
        return
    if 1 <= tag <= MAX_SCALE:
        lo = unzigzag(r.varint("minimum value", (1 << 64) - 1))
        scale = _check_scale(tag, count)
        present, freqs = _read_table(r, scale, count, 2, max_alphabet)
        if lo + int(present[-1]) > _I64_MAX:
            raise StreamError("rANS stream: the alphabet exceeds the int64 range")
        lookup = np.repeat(np.arange(freqs.size, dtype=np.int32), freqs)
        values = present + lo
        for slots, _ in _decode_lanes(r, freqs, lookup, scale, count, None, batch):
            yield values[lookup[slots]]
        return
    if tag not in (_TAG_OFFSET, _TAG_ZIGZAG):
        raise StreamError(f"rANS stream: unknown tag {tag}")
    lo = unzigzag(r.varint("minimum value", (1 << 64) - 1)) if tag == _TAG_OFFSET else 0
    k = r.u8("bin parameter k")
    m = r.u8("bin parameter m")
    if k > _U_BITS - 1 or m > min(k, _MAX_M):
        raise StreamError(f"rANS stream: bin parameters k={k}, m={m} out of range")
    scale = _check_scale(r.u8("scale"), count)
    top = _max_token(k, m)
    t0 = r.varint("first token", top)
    present, freqs = _read_table(r, scale, count, 1, min(max_alphabet, top - t0 + 1))
    head, nb = _untokens(present + t0, k, m)
    lookup = np.repeat(np.arange(freqs.size, dtype=np.int32), freqs)
    for slots, raw in _decode_lanes(r, freqs, lookup, scale, count, nb[lookup], batch):
        assert raw is not None
        u = head[lookup[slots]] | raw.view(np.int64)
        if tag == _TAG_ZIGZAG:
            yield unzigzag(u)
            continue
        if lo + int(u.max()) > _I64_MAX:
            raise StreamError("rANS stream: a value exceeds the int64 range")
        yield u + lo


def _countable(symbols: np.ndarray) -> np.ndarray:
    """``symbols`` as a 1-D integer array (:func:`_as_symbols`) of at most :data:`MAX_COUNT` entries."""
    a = _as_symbols(symbols)
    if a.size > MAX_COUNT:
        raise ValueError(f"rANS codes at most {MAX_COUNT} symbols per stream, got {a.size}")
    return a


def _start(data: bytes | bytearray | memoryview, count: int) -> _Reader | None:
    """A reader over ``data`` after checking ``count`` (ValueError, or StreamError above the limit);
    ``None`` for ``count == 0``, whose stream must be empty."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    if count > MAX_COUNT:
        raise StreamError(f"rANS stream: count {count} exceeds the limit {MAX_COUNT}")
    r = _Reader(data)
    if count == 0:
        if r.left:
            raise StreamError(f"rANS stream for 0 symbols must be empty, got {r.left} bytes")
        return None
    return r


def _check_model(freqs: np.ndarray, scale: int) -> np.ndarray:
    """``freqs`` as int64 after checking it is a valid model: 1-D, every entry >= 1, sum ``2**scale``."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be an integer in [1, {MAX_SCALE}], got {scale!r}")
    f = np.asarray(freqs)
    if f.ndim != 1 or f.size == 0 or f.dtype.kind not in "iu":
        raise ValueError("freqs must be a non-empty 1-D integer array")
    f = f.astype(np.int64)
    if int(f.min()) < 1 or int(f.sum()) != 1 << int(scale):
        raise ValueError(f"freqs must be >= 1 and sum to 2**scale = {1 << int(scale)}")
    return f


def encode_with_model(symbols: np.ndarray, freqs: np.ndarray, scale: int) -> bytes:
    """Code ``symbols`` (indices into ``freqs``) with a frequency table both sides know, e.g. from a
    parametric model whose few parameters the caller stores: no table is written.

    Parameters
    ----------
    symbols : (n,) integer array
        Values in ``[0, len(freqs))``; ``n <= MAX_COUNT``.
    freqs : (size,) integer array
        Every entry >= 1, summing to ``2**scale``.
    scale : int
        1 .. :data:`MAX_SCALE`.

    Returns
    -------
    bytes
        The interleaved lanes (``varint lanes - 1 | lanes x varint final state | 32-bit words``), the same
        as the tail of an :func:`encode` stream; :func:`decode_with_model` reads it given ``n``, ``freqs``
        and ``scale``.
    """
    f = _check_model(freqs, scale)
    a = _countable(symbols)
    n = a.size
    if n == 0:
        return b""
    if int(a.min()) < 0 or int(a.max()) >= f.size:
        raise ValueError(f"symbols must lie in [0, {f.size}), got [{int(a.min())}, {int(a.max())}]")
    bits = float(n * int(scale) - np.log2(f[a]).sum())
    words, states = _encode_lanes(a.astype(np.int64), f, int(scale), _lanes_for(n, bits))
    return _varint(states.size - 1) + _varints(states) + words.astype("<u4").tobytes()


def decode_with_model(data: bytes | bytearray | memoryview, count: int, freqs: np.ndarray, scale: int) -> np.ndarray:
    """Inverse of :func:`encode_with_model`: the (count,) int64 symbols.

    Raises
    ------
    ValueError
        A bad ``count`` or model (the caller's own checks come first).
    StreamError
        Corrupt, truncated or trailing data, as for :func:`decode`.
    """
    f = _check_model(freqs, scale)
    r = _start(data, count)
    if r is None:
        return np.zeros(0, dtype=np.int64)
    lookup = np.repeat(np.arange(f.size, dtype=np.int32), f)
    lanes = _decode_lanes(r, f, lookup, int(scale), count, None, 1 << 20)
    parts = [lookup[slots].astype(np.int64) for slots, _ in lanes]
    return np.concatenate(parts)


def _check_scale(scale: int, count: int) -> int:
    limit = min(MAX_SCALE, count.bit_length() + 1)
    if not 1 <= scale <= limit:
        raise StreamError(f"rANS stream: scale {scale} outside [1, {limit}] (for {count} symbols)")
    return scale


def _read_table(r: _Reader, scale: int, count: int, min_present: int, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``table``: (present entries (p,) int64 ascending from 0, frequencies (p,) int64)."""
    m = 1 << scale
    size = r.varint("table size", max(max_size, 1) - 1) + 1
    if size < min_present:
        raise StreamError(f"rANS stream: a table of {size} entries for >= {min_present} symbols")
    kind = r.u8("table kind")
    if kind == 0:
        if size > r.left:
            raise StreamError(f"rANS stream truncated: dense table of {size} entries, {r.left} bytes remain")
        dense = r.varints(size, "frequency table", m)
        if dense[0] == 0 or dense[-1] == 0:
            raise StreamError("rANS stream: the table's end entries have zero frequency")
        present = np.flatnonzero(dense)
        freqs = dense[present]
    elif kind == 1:
        p = r.varint("present entries", min(size, m, count) - 1) + 1
        gaps = r.varints(p - 1, "table gaps", size)
        if int(np.sum(gaps + 1)) != size - 1:
            raise StreamError("rANS stream: table gaps do not span the table")
        present = np.zeros(p, dtype=np.int64)
        np.cumsum(gaps + 1, out=present[1:])
        freqs = r.varints(p, "frequency table", m - 1) + 1
    else:
        raise StreamError(f"rANS stream: unknown table kind {kind}")
    if present.size < min_present or present.size > count:
        raise StreamError(f"rANS stream: {present.size} distinct symbols for {count} symbols")
    if int(freqs.sum()) != m:
        raise StreamError(f"rANS stream: frequencies sum to {int(freqs.sum())}, not 2**{scale}")
    return present, freqs


def _decode_lanes(r: _Reader, freqs: np.ndarray, lookup: np.ndarray, scale: int, n: int,
                  nb_slot: np.ndarray | None, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Read ``lanes`` from ``r`` (to its end) and run the lanes from their final states.

    Yields, in symbol order and about ``batch`` symbols at a time, the slot (int64) of every symbol and,
    if ``nb_slot`` (raw-bit count per slot) is given, its raw bits (uint64). The last piece comes only
    after the final checks (every word used, every lane back in its initial state).
    """
    lanes = r.varint("lane count", min(n, MAX_LANES) - 1) + 1
    if lanes * MAX_STEPS < n:
        raise StreamError(f"rANS stream: {lanes} lanes are too few for {n} symbols")
    x = r.varints(lanes, "lane states", (1 << 63) - 1).astype(np.uint64)
    if np.any(x < np.uint64(_STATE_LOW)):
        raise StreamError("rANS stream: a lane's final state is out of range")
    rest = r.left
    per = 1 if nb_slot is None else 2
    if rest % 4:
        raise StreamError(f"rANS stream: {rest} word bytes is not a whole number of 32-bit words")
    if rest // 4 > per * n:
        raise StreamError(f"rANS stream: {rest // 4} words for {n} symbols (at most {per} each)")
    words = r.take_array(rest, "words").view("<u4")  # a view: words are widened a few at a time
    m = 1 << scale
    f64 = freqs.astype(np.uint64)
    cum = np.zeros_like(f64)
    np.cumsum(f64[:-1], out=cum[1:])
    f_slot = f64[lookup]
    r_slot = np.arange(m, dtype=np.uint64) - cum[lookup]
    if nb_slot is not None:
        nb_slot = nb_slot.astype(np.uint64)
        mask_slot = (np.uint64(1) << nb_slot) - np.uint64(1)
    if lanes <= _SCALAR_LANES:  # at most _SCALAR_LANES * MAX_STEPS symbols: one piece
        yield _decode_scalar(x, words.astype(np.uint64), f_slot, r_slot, scale, n, nb_slot)
        return
    mask = np.uint64(m - 1)
    sh = np.uint64(scale)
    w_sh = np.uint64(_WORD_BITS)
    low = np.uint64(_STATE_LOW)
    nw = words.size
    steps = -(-n // lanes)
    per_piece = max(1, batch // lanes)
    pos = 0
    pending: tuple[np.ndarray, np.ndarray | None] | None = None
    for t0 in range(0, steps, per_piece):
        t1 = min(steps, t0 + per_piece)
        i_start = t0 * lanes
        size = min(n, t1 * lanes) - i_start
        slots = np.empty(size, dtype=np.int64)  # gathers with intp indices are much faster than with uint64
        slots_u = slots.view(np.uint64)
        raw = np.empty(size, dtype=np.uint64) if nb_slot is not None else None
        for t in range(t0, t1):
            i0 = t * lanes - i_start
            a = min(lanes, n - t * lanes)
            xs = x[:a]
            s = slots[i0 : i0 + a]
            np.bitwise_and(xs, mask, out=slots_u[i0 : i0 + a])
            np.right_shift(xs, sh, out=xs)
            xs *= f_slot[s]
            xs += r_slot[s]
            pos = _refill(xs, words, pos, low, w_sh)
            if raw is not None:
                assert nb_slot is not None
                np.bitwise_and(xs, mask_slot[s], out=raw[i0 : i0 + a])
                np.right_shift(xs, nb_slot[s], out=xs)
                pos = _refill(xs, words, pos, low, w_sh)
        if pending is not None:
            yield pending
        pending = (slots, raw)
    if pos != nw:
        raise StreamError(f"rANS stream: {nw - pos} words left over after decoding {n} symbols")
    if np.any(x != low):
        raise StreamError("rANS stream corrupt: a lane did not end in its initial state")
    if pending is not None:
        yield pending


def _flush(xs: np.ndarray, limit: np.ndarray, out: np.ndarray, pos: int, low: np.uint64, w_sh: np.uint64) -> int:
    """Emit the low word of the lanes whose state reached ``limit`` (filling ``out`` back to front, in
    lane order) and shift them down; returns the new fill position."""
    m = xs >= limit
    k = int(np.count_nonzero(m))
    if k:
        out[pos - k : pos] = xs[m] & low
        pos -= k
        np.right_shift(xs, w_sh, out=xs, where=m)
    return pos


def _refill(xs: np.ndarray, words: np.ndarray, pos: int, low: np.uint64, w_sh: np.uint64) -> int:
    """Renormalise the lanes whose state fell below ``low`` with the next words, in lane order; returns
    the new word position."""
    need = xs < low
    k = int(np.count_nonzero(need))
    if k:
        if pos + k > words.size:
            raise StreamError("rANS stream truncated: the lanes need more words than it holds")
        xs[need] = (xs[need] << w_sh) | words[pos : pos + k].astype(np.uint64)
        pos += k
    return pos


def _decode_scalar(x: np.ndarray, words: np.ndarray, f_slot: np.ndarray, r_slot: np.ndarray, scale: int, n: int,
                   nb_slot: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The lane loop of :func:`_decode_lanes` for few lanes, one symbol at a time (same result)."""
    lanes = x.size
    xl = x.tolist()
    wl = words.tolist()
    fl = f_slot.tolist()
    rl = r_slot.tolist()
    nw = len(wl)
    mask = (1 << scale) - 1
    low = _STATE_LOW
    slots = [0] * n
    if nb_slot is not None:
        nbl = nb_slot.tolist()
        raw = [0] * n
    pos = 0
    for t in range(-(-n // lanes)):
        i0 = t * lanes
        a = min(lanes, n - i0)
        for j in range(a):
            xs = xl[j]
            slot = xs & mask
            slots[i0 + j] = slot
            xs = fl[slot] * (xs >> scale) + rl[slot]
            if xs < low:
                if pos >= nw:
                    raise StreamError("rANS stream truncated: the lanes need more words than it holds")
                xs = (xs << 32) | wl[pos]
                pos += 1
            xl[j] = xs
        if nb_slot is not None:
            for j in range(a):
                xs = xl[j]
                b = nbl[slots[i0 + j]]
                raw[i0 + j] = xs & ((1 << b) - 1)
                xs >>= b
                if xs < low:
                    if pos >= nw:
                        raise StreamError("rANS stream truncated: the lanes need more words than it holds")
                    xs = (xs << 32) | wl[pos]
                    pos += 1
                xl[j] = xs
    if pos != nw:
        raise StreamError(f"rANS stream: {nw - pos} words left over after decoding {n} symbols")
    if any(v != low for v in xl):
        raise StreamError("rANS stream corrupt: a lane did not end in its initial state")
    return (np.array(slots, dtype=np.int64),
            np.array(raw, dtype=np.uint64) if nb_slot is not None else None)
