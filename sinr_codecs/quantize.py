"""Uniform scalar quantizers for the stored values.

Two quantizers write the integers ``q`` that a stream holds (the reconstruction is ``q * step``):

- **Fixed bits** (:func:`quantize`, the fixed-sparsity mode): a symmetric mid-tread quantizer with
  ``bits`` bits, ``|q| <= qmax = 2**(bits-1) - 1`` and ``step = max|v| / qmax``, one step per tensor
  (``granularity="tensor"``, float64) or per vector (``"vector"``, float32).
- **Error-bounded** (:func:`largest_steps`, the error-bounded mode): each vector gets the *largest* step
  whose reconstruction, rounded to the array's dtype, keeps ``||w - w_hat|| <= bound * ||w||``. The bound
  decides the step directly; the integers take whatever range they need (up to 32 bits). Steps lie on a
  grid that float64 represents exactly on every machine, 64 steps per octave (:func:`step_from_code`):
  a stream stores each step as one integer *step code*, and the grid costs at most 1/64 of an octave
  (about 0.011 bits per value) against a free step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["MIN_BITS", "MAX_BITS", "STEP_GRID", "MIN_STEP_CODE", "MAX_STEP_CODE", "qmax", "bits_for",
           "quantize", "dequantize", "int_dtype", "step_from_code", "code_at_most", "largest_steps", "bounded_dense",
           "saturate", "norms", "relative_errors"]

MIN_BITS = 2
MAX_BITS = 32
STEP_GRID = 64
"""Steps per octave of the step grid: ``step(c) = (64 + c % 64) * 2**(c // 64 - 6)``."""
MIN_STEP_CODE = -1074 * STEP_GRID
"""Smallest step code: a step of ``2**-1074``, float64's smallest positive number."""
MAX_STEP_CODE = 1024 * STEP_GRID - 1
"""Largest step code: a step just below ``2**1024``, still finite in float64."""


def qmax(bits: int) -> int:
    """Largest quantized magnitude for ``bits`` (``2**(bits-1) - 1``)."""
    check_bits(bits)
    return (1 << (bits - 1)) - 1


def check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"value_bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def bits_for(max_abs: int) -> int:
    """Fewest bits (at least :data:`MIN_BITS`) whose :func:`qmax` holds ``max_abs``."""
    bits = max(MIN_BITS, int(max_abs).bit_length() + 1)
    if bits > MAX_BITS:
        raise ValueError(f"quantized magnitude {max_abs} needs more than {MAX_BITS} bits")
    return bits


def int_dtype(bits: int) -> np.dtype:
    """Smallest signed little-endian integer dtype that holds ``bits``-bit values."""
    check_bits(bits)
    return np.dtype("<i1") if bits <= 8 else np.dtype("<i2") if bits <= 16 else np.dtype("<i4")


# ------------------------------------------------------------------------------------ the step grid
def step_from_code(codes: np.ndarray) -> np.ndarray:
    """float64 steps of integer step ``codes``: ``(64 + c % 64) * 2**(c // 64 - 6)``, exact (``ldexp``).

    Codes must lie in [:data:`MIN_STEP_CODE`, :data:`MAX_STEP_CODE`] (every step is then positive
    and finite); the stream reader checks that before calling this.
    """
    c = np.asarray(codes, dtype=np.int64)
    return np.ldexp((STEP_GRID + (c & (STEP_GRID - 1))).astype(np.float64), (c >> 6) - 6)


def code_at_most(steps: np.ndarray) -> np.ndarray:
    """int64 code of the largest grid step ``<= steps`` (positive, finite), clipped to the code range."""
    s = np.asarray(steps, dtype=np.float64)
    m, e = np.frexp(s)  # s = m * 2**e, m in [0.5, 1): the grid point (64 + j) * 2**(e - 7), j = floor(128 m) - 64
    codes = (e.astype(np.int64) - 1) * STEP_GRID + (np.floor(m * 2 * STEP_GRID).astype(np.int64) - STEP_GRID)
    codes = np.clip(codes, MIN_STEP_CODE, MAX_STEP_CODE)
    too_big = step_from_code(codes) > s  # only where a subnormal step rounded up
    return codes - too_big


def largest_steps(errors: Callable[[np.ndarray, np.ndarray], np.ndarray], guess: np.ndarray) -> np.ndarray:
    """For each vector, the largest step code whose error is within its bound.

    Parameters
    ----------
    errors : callable(codes, rows) -> float64 array
        The errors of vectors ``rows`` (an int64 index array) with step codes ``codes`` (one per row), each
        as a fraction of its bound: a vector meets its bound where the value is <= 1.
    guess : (n,) float64
        A first step for each vector (positive and finite), e.g. from the noise model ``step**2 / 12`` per
        value. The search starts 8 codes either side of it.

    Returns
    -------
    (n,) int64 step codes. Every vector meets its bound with its code; the next code of the grid did not
    (the error is not strictly monotone in the step for short vectors, so a larger step that meets the
    bound may exist beyond it).

    Raises
    ------
    ValueError
        A vector that no step on the grid brings within its bound (the dtype's own rounding is the floor).
    """
    c0 = code_at_most(np.clip(guess, 2.0**-1074, np.finfo(np.float64).max))
    lo, hi = c0 - 8, c0 + 8
    rows = np.arange(c0.size)
    for _ in range(_WIDENINGS):  # widen lo downwards until every vector meets its bound there
        bad = rows[errors(lo[rows], rows) > 1.0]
        if bad.size == 0:
            break
        if np.any(lo[bad] <= MIN_STEP_CODE):
            raise ValueError("the bound cannot be met even with the smallest step float64 has")
        hi[bad] = lo[bad]
        lo[bad] = np.maximum(lo[bad] - _WIDEN, MIN_STEP_CODE)
        rows = bad
    else:
        raise ValueError("the bound cannot be met with any quantizer step")
    rows = np.arange(c0.size)
    for _ in range(_WIDENINGS):  # widen hi upwards until no vector meets its bound there
        good = rows[errors(hi[rows], rows) <= 1.0]
        if good.size == 0:
            break
        lo[good] = hi[good]
        hi[good] = np.minimum(hi[good] + _WIDEN, MAX_STEP_CODE)
        rows = good[lo[good] < MAX_STEP_CODE]
        if rows.size == 0:
            break
    rows = np.flatnonzero(hi - lo > 1)
    while rows.size:  # bisect: errors(lo) <= 1 < errors(hi)
        mid = (lo[rows] + hi[rows]) // 2
        ok = errors(mid, rows) <= 1.0
        lo[rows[ok]] = mid[ok]
        hi[rows[~ok]] = mid[~ok]
        rows = rows[hi[rows] - lo[rows] > 1]
    return lo


_WIDEN = 4 * STEP_GRID  # codes per widening step: 4 octaves
_WIDENINGS = 16


# ------------------------------------------------------------------------ the fixed-bits quantizer
def quantize(values: torch.Tensor, bits: int, granularity: str = "tensor") -> tuple[np.ndarray, np.ndarray]:
    """Quantize ``values`` of shape (n, s) to integers with ``bits`` bits over each scope's range.

    Returns
    -------
    q : numpy.ndarray
        Shape (n, s), dtype :func:`int_dtype` (bits).
    steps : numpy.ndarray
        float64 of shape (1,) for ``"tensor"`` or float32 of shape (n,) for ``"vector"``; a zero
        step means all values of that scope are zero.
    """
    m = qmax(bits)
    v = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    if granularity == "tensor":
        amax = float(np.max(np.abs(v))) if v.size else 0.0
        steps = np.array([amax / m], dtype=np.float64)
        step_b = steps[0]
        safe = step_b if step_b > 0 else 1.0
        q = np.rint(v / safe)
    elif granularity == "vector":
        amaxes = np.max(np.abs(v), axis=1) if v.shape[1] else np.zeros(v.shape[0])
        with np.errstate(over="ignore"):
            steps = (amaxes / m).astype(np.float32)
        if not np.all(np.isfinite(steps)):
            raise ValueError(f"values of magnitude up to {float(np.max(amaxes)):.3g} overflow float32 per-vector "
                             "quantizer steps; use granularity 'tensor'")
        # the stored (float32) step is what the decoder uses: quantize with it
        safe = np.where(steps > 0, steps, 1).astype(np.float64)[:, None]
        q = np.rint(v / safe)
    else:
        raise ValueError(f"unknown quantizer granularity {granularity!r}; use 'tensor' or 'vector'")
    np.clip(q, -m, m, out=q)
    step = np.asarray(steps, dtype=np.float64).reshape(-1, 1) if granularity == "vector" else float(steps[0])
    with np.errstate(divide="ignore", over="ignore"):  # keep every q * step within float64's range
        room = np.floor(np.finfo(np.float64).max / np.where(np.asarray(step) > 0, step, 1.0))
    np.clip(q, -room, room, out=q)
    return q.astype(int_dtype(bits)), steps


def dequantize(q: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quantize`: float64 array of q's shape (steps of shape (1,) or (n,))."""
    s = np.asarray(steps, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # callers check finiteness where streams are untrusted
        return q.astype(np.float64) * (s if s.shape == (1,) else s[:, None])


def saturate(rec: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Clip float64 ``rec`` in place to ``dtype``'s finite range (NaN becomes 0), as decoders do: a finite
    input never decodes to inf or NaN."""
    fmax = float(np.finfo(dtype).max)
    np.nan_to_num(rec, copy=False, nan=0.0, posinf=fmax, neginf=-fmax)
    return np.clip(rec, -fmax, fmax, out=rec)


def norms(rows: np.ndarray) -> np.ndarray:
    """L2 norms of the rows of a (n, k) float64 array, without overflow or underflow."""
    unit = np.max(np.abs(rows), axis=1, keepdims=True) if rows.shape[1] else np.ones((rows.shape[0], 1))
    unit = np.where(unit > 0, unit, 1.0)
    return np.linalg.norm(rows / unit, axis=1) * unit[:, 0]


def relative_errors(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-row ``||ref - rec|| / ||ref||`` of (n, k) float64 arrays without overflow or underflow (each row
    is scaled by its largest magnitude first); 0 for an exact row, inf for a nonzero error on a zero row."""
    unit = np.max(np.abs(ref), axis=1, keepdims=True) if ref.shape[1] else np.ones((ref.shape[0], 1))
    unit = np.where(unit > 0, unit, 1.0)
    scaled = ref / unit
    err = np.linalg.norm(rec / unit - scaled, axis=1)
    norm = np.linalg.norm(scaled, axis=1)
    return np.where(norm > 0, err / np.where(norm > 0, norm, 1), np.where(err > 0, np.inf, 0.0))


def bounded_dense(vectors: np.ndarray, bound: float, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's largest grid step within ``bound`` and its integers (the dense error-bounded quantizer).

    Parameters
    ----------
    vectors : (n, k) float64
        The values, finite.
    bound : float
        Relative L2 error allowed per vector, in (0, 1): ``||v - q * step|| <= bound * ||v||`` with the
        reconstruction rounded to ``dtype`` (saturated to its range) as a decoder returns it.
    dtype : numpy.dtype
        The array's float dtype.

    Returns
    -------
    codes : (n,) int64 step codes (:func:`step_from_code`); 0 for zero vectors.
    q : (n, k) int64 integers.

    Raises
    ------
    ValueError
        A vector that no step brings within the bound (only where ``dtype``'s own rounding is coarser).
    """
    v = np.asarray(vectors, dtype=np.float64)
    n, k = v.shape
    dt = np.dtype(dtype).newbyteorder("=")
    unit = np.max(np.abs(v), axis=1) if k else np.zeros(n)
    live = np.flatnonzero(unit > 0)
    codes = np.zeros(n, dtype=np.int64)
    q = np.zeros((n, k), dtype=np.int64)
    if live.size == 0:
        return codes, q
    u = unit[live][:, None]
    scaled = v[live] / u  # rows scaled to max 1: norms neither overflow nor underflow
    norm = np.linalg.norm(scaled, axis=1)

    def errors(c: np.ndarray, rows: np.ndarray) -> np.ndarray:
        step = step_from_code(c)[:, None]
        x = v[live[rows]]
        with np.errstate(over="ignore", invalid="ignore"):
            rec = np.rint(x / step) * step
        overflow = ~np.isfinite(rec).all(axis=1)  # a decoder refuses products beyond float64's range
        if dt != np.float64:
            rec = saturate(rec, dt).astype(dt).astype(np.float64)
        else:
            saturate(rec, dt)
        err = np.linalg.norm(rec / u[rows] - scaled[rows], axis=1) / (bound * norm[rows])
        return np.where(overflow, np.inf, err)

    guess = bound * norm * unit[live] * np.sqrt(12.0 / k)  # uniform rounding noise: step**2 / 12 per value
    codes[live] = largest_steps(errors, guess)
    # a vector whose nonzero values share one magnitude on the grid (a chunk of fill values, +-1 weights)
    # is exact with that magnitude as its step, at no cost: every integer is then -1, 0 or 1
    flat = np.all((np.abs(v[live]) == unit[live][:, None]) | (v[live] == 0), axis=1)
    exact = code_at_most(unit[live])
    flat &= step_from_code(exact) == unit[live]
    codes[live] = np.where(flat, exact, codes[live])
    with np.errstate(over="ignore", invalid="ignore"):
        ql = np.rint(v[live] / step_from_code(codes[live])[:, None])
    top = float(np.abs(ql).max())
    if top > qmax(MAX_BITS):
        raise ValueError(f"max_rel_error={bound:g} needs quantized values of magnitude {top:.3g}, beyond "
                         f"{MAX_BITS}-bit integers, for vectors of {k} values: loosen max_rel_error or use shorter "
                         "vectors (layout='blocks' with a smaller block_size)")
    q[live] = ql
    return codes, q
