"""The seeded sensing matrix (dictionary) of SINR.

A dictionary ``A`` of shape ``(k1, k2)`` with i.i.d. standard-normal entries and unit-norm columns is
rebuilt by the decoder from ``(k1, k2, seed, generator)``; it is never stored. To make a stream written
today decode bit-identically on any machine and in any future release, the values come from the
library's own specified generator, not from ``torch.randn`` or ``numpy.random``:

Generator 1 (``"splitmix64-acklam"``), all integer arithmetic modulo 2**64 and IEEE-754 float64
operations that are correctly rounded (``+ - * /`` and ``sqrt`` only):

1. ``key = mix64(seed + GAMMA)`` with ``GAMMA = 0x9E3779B97F4A7C15`` and ``mix64`` the SplitMix64
   finaliser (xor-shift 30, multiply ``0xBF58476D1CE4E5B9``, xor-shift 27, multiply
   ``0x94D049BB133111EB``, xor-shift 31).
2. Entry ``(i, j)`` (row ``i < k1``, column ``j < k2``) has counter ``c = j * k1 + i`` (column-major) and
   hash ``h = mix64(key + (c + 1) * GAMMA)``.
3. ``u = ((h >> 11) + 0.5) * 2**-53``, a float64 in the open interval (0, 1), exact.
4. ``g = Phi^-1(u)`` by Acklam's rational approximation (relative error < 1.2e-9) in which ``log`` is
   evaluated by :func:`_log` below (frexp split and an atanh series), so no libm function is used.
5. Column ``j`` is divided by ``sqrt(sum_i g_ij**2)``, the sum taken in float64 in row order
   ``i = 0, 1, ..., k1 - 1``; the float64 result is finally rounded to the requested dtype.

docs/format.md repeats this specification. A new generator gets a new id; generator 1 never changes.
Because the counter is column-major, the first ``k2`` columns of a wider dictionary with the same
``k1`` and seed are the same columns.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

__all__ = ["GENERATOR_ID", "GENERATORS", "CACHE_BYTES", "atoms", "sensing_matrix", "gaussian_stream", "clear_cache"]

GENERATOR_ID: int = 1
"""The id of the generator used for new streams."""

GENERATORS: dict[int, str] = {1: "splitmix64-acklam"}
"""Every generator id this release can decode, with its name."""

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MAX_ELEMENTS = 1 << 31

# Acklam's coefficients for the inverse normal CDF.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549671010115819e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425
_LN2 = 0.6931471805599453
_SQRT_HALF = 0.7071067811865476
_LOG_TERMS = tuple(1.0 / (2 * k + 1) for k in range(12))


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def _log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive float64 values with basic IEEE operations only (platform-independent).

    ``x = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)); ``log m = 2 atanh(t)``, ``t = (m-1)/(m+1)``,
    summed as a 12-term odd series by Horner's rule (|t| < 0.172, error < 1e-16 relative).
    """
    m, e = np.frexp(x)
    small = m < _SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = np.where(small, e - 1, e).astype(np.float64)
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    acc = np.full_like(t, _LOG_TERMS[-1])
    for c in reversed(_LOG_TERMS[:-1]):
        acc = acc * t2 + c
    return e * _LN2 + 2.0 * t * acc


def _poly(coefs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    acc = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        acc = acc * x + c
    return acc


_S11, _S27, _S30, _S31 = (np.uint64(s) for s in (11, 27, 30, 31))
_BLOCK = 1 << 17


def _gaussian_block(key: np.uint64, start: int, count: int) -> np.ndarray:
    """Steps 2-4 of the specification for counters ``start .. start+count-1`` (in-place heavy)."""
    with np.errstate(over="ignore"):
        z = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        z *= _GAMMA
        z += key
        t = z >> _S30
        z ^= t
        z *= _M1
        np.right_shift(z, _S27, out=t)
        z ^= t
        z *= _M2
        np.right_shift(z, _S31, out=t)
        z ^= t
        np.right_shift(z, _S11, out=z)
    u = z.astype(np.float64)
    u += 0.5
    u *= 2.0**-53
    # central region of Acklam's algorithm, evaluated everywhere, then the tails overwritten
    q = u - 0.5
    r = q * q
    num = np.full_like(r, _A[0])
    for c in _A[1:]:
        num *= r
        num += c
    den = np.full_like(r, _B[0])
    for c in _B[1:]:
        den *= r
        den += c
    den *= r
    den += 1.0
    num *= q
    num /= den
    tail = np.flatnonzero((u < _P_LOW) | (u > 1.0 - _P_LOW))
    if tail.size:
        ut = u[tail]
        lo = ut < _P_LOW
        p = np.where(lo, ut, 1.0 - ut)
        s = np.sqrt(-2.0 * _log(p))
        v = _poly(_C, s) / (_poly(_D, s) * s + 1.0)
        num[tail] = np.where(lo, v, -v)
    return num


def _key(seed: int) -> np.uint64:
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    with np.errstate(over="ignore"):
        return _mix64(np.array([seed], dtype=np.uint64) + _GAMMA)[0]


def gaussian_stream(seed: int, start: int, count: int) -> np.ndarray:
    """Standard-normal float64 values number ``start .. start+count-1`` of generator 1 for ``seed``.

    Parameters
    ----------
    seed : int
        0 <= seed < 2**64.
    start, count : int
        The counter range (counter ``c`` is the column-major position ``j * k1 + i``).

    Returns
    -------
    numpy.ndarray
        Shape ``(count,)``, float64, before column normalisation.
    """
    key = _key(seed)
    out = np.empty(count, dtype=np.float64)  # blocks are written in place: one array, never a copy
    blocks = [(s, min(_BLOCK, start + count - s)) for s in range(start, start + count, _BLOCK)]

    def fill(block: tuple[int, int]) -> None:
        s, n = block
        out[s - start : s - start + n] = _gaussian_block(key, s, n)

    if len(blocks) <= 1:
        for b in blocks:
            fill(b)
    else:  # numpy releases the GIL inside ufuncs: blocks run in parallel
        with ThreadPoolExecutor(max_workers=min(len(blocks), os.cpu_count() or 1)) as pool:
            list(pool.map(fill, blocks))
    return out


def _atoms_f64(k1: int, k2: int, seed: int) -> np.ndarray:
    """The dictionary's unit-norm columns as the rows of a C-contiguous ``(k2, k1)`` float64 array.

    The counter is column-major, so this is the generator's own order: built in place, with no
    transposed copy (steps 2-5 of the specification, bit-identical to :func:`sensing_matrix`).
    """
    g = gaussian_stream(seed, 0, k1 * k2).reshape(k2, k1)
    rows = max(1, _NORM_BLOCK // k1)  # atoms normalised at a time: the work arrays stay small
    norm2 = np.empty(min(rows, k2), dtype=np.float64)
    sq = np.empty_like(norm2)
    for r0 in range(0, k2, rows):
        blk = g[r0 : r0 + rows]
        n2, q = norm2[: blk.shape[0]], sq[: blk.shape[0]]
        n2[:] = 0.0
        for i in range(k1):  # specified summation order: i = 0, 1, ..., k1 - 1
            np.multiply(blk[:, i], blk[:, i], out=q)
            n2 += q
        np.sqrt(n2, out=n2)
        blk /= n2[:, None]
    return g


_NORM_BLOCK = 1 << 19
"""Dictionary entries whose atoms :func:`_atoms_f64` normalises together (4 MiB of float64)."""


def _matrix_f64(k1: int, k2: int, seed: int) -> torch.Tensor:
    """The (k1, k2) float64 dictionary, uncached (what every cached form is rounded from)."""
    return torch.from_numpy(_atoms_f64(k1, k2, seed)).T.contiguous()


CACHE_BYTES = 256 << 20
"""Bound on the bytes of dictionaries kept by :func:`sensing_matrix`'s least-recently-used cache (per
process, all devices together). A dictionary larger than this is returned without being cached."""

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
_cache_bytes = 0


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _cache_get(key: tuple[Any, ...]) -> torch.Tensor | None:
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        return hit


def _cache_put(key: tuple[Any, ...], a: torch.Tensor) -> torch.Tensor:
    """Insert ``a`` (or return the entry another thread inserted first), evicting the least recently
    used entries beyond :data:`CACHE_BYTES`."""
    global _cache_bytes
    size = _nbytes(a)
    if size > CACHE_BYTES:
        return a
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        while _cache and _cache_bytes + size > CACHE_BYTES:
            _, old = _cache.popitem(last=False)
            _cache_bytes -= _nbytes(old)
        _cache[key] = a
        _cache_bytes += size
    return a


def clear_cache() -> None:
    """Drop every cached dictionary."""
    global _cache_bytes
    with _lock:
        _cache.clear()
        _cache_bytes = 0


def atoms(k1: int, k2: int, seed: int = 0, *, generator: int = GENERATOR_ID) -> torch.Tensor:
    """The transposed dictionary ``sensing_matrix(k1, k2, seed).T`` in float64 on the CPU, C-contiguous.

    What a decoder multiplies with: its rows are the atoms. Built in the generator's own (column-major)
    order, so peak memory is one ``(k2, k1)`` float64 array plus a few blocks of work per core, never a
    transposed copy. Cached like :func:`sensing_matrix` (its own entry); treat it as read-only.

    Returns
    -------
    torch.Tensor
        Shape ``(k2, k1)``, float64, bit-identical to ``sensing_matrix(k1, k2, seed, dtype=torch.float64).T``.
    """
    k1, k2, seed = _check(k1, k2, seed, generator)
    key = (k1, k2, seed, generator, "cpu", torch.float64, "atoms")
    hit = _cache_get(key)
    if hit is not None:
        return hit
    return _cache_put(key, torch.from_numpy(_atoms_f64(k1, k2, seed)))


def _check(k1: int, k2: int, seed: int, generator: int) -> tuple[int, int, int]:
    if generator not in GENERATORS:
        raise ValueError(f"unknown dictionary generator id {generator}; known: {sorted(GENERATORS)}")
    k1, k2, seed = int(k1), int(k2), int(seed)
    if k1 < 1 or k2 < 1:
        raise ValueError(f"dictionary dimensions must be >= 1, got k1={k1}, k2={k2}")
    if k1 * k2 > _MAX_ELEMENTS:
        raise ValueError(f"dictionary {k1}x{k2} is larger than the limit of {_MAX_ELEMENTS} entries")
    return k1, k2, seed


def sensing_matrix(
    k1: int,
    k2: int,
    seed: int = 0,
    *,
    generator: int = GENERATOR_ID,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``(k1, k2)`` Gaussian dictionary with unit-norm columns for ``seed``.

    Parameters
    ----------
    k1 : int
        Signal length (rows), >= 1.
    k2 : int
        Number of atoms (columns), >= 1.
    seed : int, default 0
        0 <= seed < 2**64.
    generator : int, default GENERATOR_ID
        Generator id (see :data:`GENERATORS`).
    device, dtype
        Where and in which floating dtype to return it.

    Returns
    -------
    torch.Tensor
        Shape ``(k1, k2)``; bit-identical for the same arguments on any machine. Cached per
        ``(k1, k2, seed, generator, device, dtype)`` in a least-recently-used cache bounded by
        :data:`CACHE_BYTES`; treat it as read-only. Every dtype and device is rounded once from the
        float64 :func:`atoms` (cached too, and shared with decoders), so peak memory while building it
        is that float64 array plus the result.

    Examples
    --------
    >>> a = sensing_matrix(4, 8, seed=1, dtype=torch.float64)
    >>> tuple(a.shape), round(float(a[:, 0].norm()), 12)
    ((4, 8), 1.0)
    """
    k1, k2, seed = _check(k1, k2, seed, generator)
    if not dtype.is_floating_point:
        raise TypeError(f"dictionary dtype must be floating point, got {dtype}")
    device = torch.device(device)
    key = (k1, k2, seed, generator, str(device), dtype)
    hit = _cache_get(key)
    if hit is not None:
        return hit
    # one (k2, k1) float64 array in the generator's order (cached: decoders of the same dictionary use it),
    # copied once into the (k1, k2) result: no float64 (k1, k2) intermediate
    at = atoms(k1, k2, seed, generator=generator)
    out = torch.empty((k1, k2), dtype=dtype, device=device)
    out.copy_(at.T)
    return _cache_put(key, out)
