"""Per-tensor uniform quantization: the coding of whole-model tensors at one step per tensor.

A tensor ``w`` is stored as the integers ``q = round(w / step)`` (int16 or int32, whichever holds them),
entropy-coded by pcodec; decoding is ``q * step``. In a Zarr store the integers and ``step`` are held by
numcodecs' ``FixedScaleOffset`` filter (``scale = 1 / step``, offset 0: a zero weight stays exactly zero)
and its ``PCodec`` serializer, both standard numcodecs codecs: any Zarr reader with numcodecs and pcodec
installed reads the floats back with no help from this package.

The step comes from one of three places: :func:`fit`, the largest step whose restored tensor, rounded to
the tensor's own dtype, keeps ``||w - w_hat|| / ||w|| <= target``; :func:`fit_bits`, a fixed number of
levels over the tensor's range; or :func:`fit_step`, a step chosen elsewhere (one step for the whole model,
:mod:`sinr_codecs.allocation`). :func:`zarr_codecs` gives the filter and serializer for a Zarr format 3
array; :func:`estimate_bytes` what its chunks take, from the integers' entropy.

Examples
--------
>>> import numpy as np
>>> w = np.random.default_rng(0).standard_normal((64, 64)).astype("float32")
>>> f = fit(w, 0.02)
>>> f.rel_error <= 0.02, f.astype, f.bits
(True, '<i2', 7)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UniformFit", "ErrorAccumulator", "fit", "fit_bits", "fit_step", "zarr_codecs", "estimate_bytes",
           "quiet_numcodecs", "SAMPLE_VALUES"]

_INT_TYPES = (("<i2", 32767), ("<i4", 2**31 - 1))  # pcodec codes 16-bit and wider integers
SAMPLE_VALUES = 1 << 16
"""Values :func:`estimate_bytes` (and the fits of :func:`fit` with ``sample=True``) look at in a larger tensor."""


@dataclass(frozen=True)
class UniformFit:
    """A fitted per-tensor uniform quantizer.

    Attributes
    ----------
    step : float
        Quantizer step (the tensor's units); ``w_hat = q * step``.
    astype : str
        Integer type of ``q`` (numpy ``dtype.str``: ``"<i2"`` or ``"<i4"``).
    bits : int
        ``ceil(log2(2 * max|q| + 1))``: the fixed-length bits per value the levels need (the stored size,
        after Zstandard, is usually smaller).
    rel_error : float
        ``||w - w_hat|| / ||w||`` with ``w_hat`` rounded to the tensor's dtype.
    target : float
        The relative error asked for; ``rel_error`` exceeds it only where the dtype's own rounding (or a
        step below ``max|w| / 2**31``) makes it unreachable.
    """

    step: float
    astype: str
    bits: int
    rel_error: float
    target: float

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """``round(values / step)`` as :attr:`astype`, exactly as the Zarr filter computes it."""
        return _quantize(values, self.step).astype(self.astype)

    def restore(self, q: np.ndarray) -> np.ndarray:
        """``q * step`` in float64 (as the filter's decoding, before the cast to the array's dtype)."""
        return q / (1.0 / self.step)


def _quantize(values: np.ndarray, step: float) -> np.ndarray:
    # as numcodecs FixedScaleOffset: (x - offset) * scale, rounded, in the array's float type
    return np.around(values * values.dtype.type(1.0 / step))


def _levels(q: np.ndarray) -> int:
    return int(np.abs(q).max()) if q.size else 0


def fit(values: np.ndarray, target: float, *, round_to: Callable[[np.ndarray], np.ndarray] | None = None,
        max_iter: int = 60, sample: bool = False) -> UniformFit:
    """The largest step that keeps the relative error within ``target``.

    Parameters
    ----------
    values : ndarray of float32 or float64, any shape
        The tensor, finite.
    target : float
        Relative L2 error bound over the whole tensor, in (0, 1).
    round_to : callable, optional
        Rounds a float64 array to the tensor's own dtype (e.g. float16 or bfloat16) and back, so the error
        is the one a restored model file has; default: to ``values.dtype``.
    max_iter : int, default 60
        Evaluations of the error allowed (each one quantizes the whole tensor).
    sample : bool, default False
        Fit on an evenly spaced sample of :data:`SAMPLE_VALUES` values of a larger tensor (an estimate, for
        reports; ``rel_error`` is then the sample's).

    Returns
    -------
    UniformFit

    Raises
    ------
    ValueError
        ``target`` outside (0, 1), or non-finite values.
    """
    if not 0.0 < float(target) < 1.0:
        raise ValueError(f"target relative error must lie in (0, 1), got {target!r}")
    values = np.asarray(values)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float32)
    if sample:
        values = _sample(values)
    x = values.astype(np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("uniform quantization needs finite values")
    norm = float(np.linalg.norm(x))
    peak = float(np.abs(x).max()) if x.size else 0.0
    if norm == 0.0:
        return UniformFit(1.0, "<i2", 1, 0.0, float(target))
    rnd = round_to or (lambda a: a.astype(values.dtype).astype(np.float64))
    min_step = peak / 2**30

    def error(step: float) -> float:
        restored = _quantize(values, step).reshape(-1) * step
        return float(np.linalg.norm(x - rnd(restored))) / norm

    rms = norm / math.sqrt(x.size)
    step = max(target * math.sqrt(12.0) * rms, min_step)  # uniform noise: rms error = step / sqrt(12)
    err = error(step)
    n = 1
    while err > target and step > min_step and n < max_iter:  # shrink until the bound holds
        prev = err
        step = max(min_step, step * min(0.95, max(0.3, target / err)))
        err, n = error(step), n + 1
        if err > 0.99 * prev and err > 2 * target:  # the dtype's rounding is the floor: stop here
            break
    if err <= target:  # then grow while it still holds, and bisect between the last good and bad steps
        hi = None
        while n < max_iter and hi is None:
            bigger = step * 1.1
            e = error(bigger)
            n += 1
            if e > target:
                hi = bigger
            else:
                step, err = bigger, e
        for _ in range(8):
            if hi is None or n >= max_iter:
                break
            mid = math.sqrt(step * hi)
            e = error(mid)
            n += 1
            if e <= target:
                step, err = mid, e
            else:
                hi = mid
    return _fitted(values, step, err, float(target))


def _fitted(values: np.ndarray, step: float, err: float, target: float) -> UniformFit:
    levels = _levels(_quantize(values, step))
    astype = next((t for t, hi in _INT_TYPES if levels <= hi), None)
    if astype is None:
        raise ValueError(f"a step of {step:.3g} needs integers of magnitude {levels}, beyond 32 bits")
    return UniformFit(float(step), astype, max(1, math.ceil(math.log2(2 * levels + 1))), err, target)


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(-1)
    if flat.size <= SAMPLE_VALUES:
        return flat
    return flat[np.linspace(0, flat.size - 1, SAMPLE_VALUES).astype(np.int64)]


def fit_step(values: np.ndarray, step: float) -> UniformFit:
    """The quantizer with a given ``step`` (> 0, finite): its integer type and bits, from the tensor's extremes
    alone (one pass, no copy); ``rel_error`` is NaN, to be measured as the tensor is written
    (:func:`error_accumulator`).

    Raises
    ------
    ValueError
        A step that is not positive and finite, or one that needs integers beyond 32 bits.
    """
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    values = np.asarray(values)
    if values.size == 0:
        return UniformFit(float(step), "<i2", 1, 0.0, math.nan)
    top = max(abs(float(values.max())), abs(float(values.min())))
    levels = int(np.around(np.float32(top) * np.float32(1.0 / step))) if values.dtype != np.float64 else int(
        np.around(top / step))
    astype = next((t for t, hi in _INT_TYPES if levels <= hi), None)
    if astype is None:
        raise ValueError(f"a step of {step:.3g} needs integers of magnitude {levels}, beyond 32 bits")
    return UniformFit(float(step), astype, max(1, math.ceil(math.log2(2 * levels + 1))), math.nan, math.nan)


_ERROR_PIECE = 1 << 18


class ErrorAccumulator:
    """``||w - w_hat||`` and ``||w||`` summed over blocks of a tensor (float64), ``w_hat`` rounded to the
    tensor's dtype by ``round_to``: the relative error of a tensor written block by block."""

    def __init__(self, round_to: Callable[[np.ndarray], np.ndarray]) -> None:
        self.round_to = round_to
        self.err2 = 0.0
        self.norm2 = 0.0

    def add(self, block: np.ndarray, restored: np.ndarray) -> None:
        flat, back = np.asarray(block).reshape(-1), np.asarray(restored).reshape(-1)
        for i in range(0, flat.size, _ERROR_PIECE):  # float64 work of a bounded size
            x = flat[i:i + _ERROR_PIECE].astype(np.float64)
            d = self.round_to(back[i:i + _ERROR_PIECE].astype(np.float64)) - x
            self.err2 += float(np.dot(d, d))
            self.norm2 += float(np.dot(x, x))

    @property
    def rel_error(self) -> float:
        return math.sqrt(self.err2 / self.norm2) if self.norm2 > 0 else 0.0


def fit_bits(values: np.ndarray, bits: int, *, round_to: Callable[[np.ndarray], np.ndarray] | None = None
             ) -> UniformFit:
    """A quantizer with ``2**(bits-1) - 1`` levels each side of zero over ``[-max|w|, max|w|]``.

    Parameters
    ----------
    values : ndarray of float32 or float64
        The tensor, finite.
    bits : int
        In [2, 24].
    round_to : callable, optional
        As in :func:`fit`.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 24:
        raise ValueError(f"bits must be an integer in [2, 24], got {bits!r}")
    values = np.asarray(values)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float32)
    x = values.astype(np.float64).reshape(-1)
    peak = float(np.abs(x).max()) if x.size else 0.0
    norm = float(np.linalg.norm(x))
    if peak == 0.0 or not np.isfinite(peak):
        if not np.isfinite(peak):
            raise ValueError("uniform quantization needs finite values")
        return UniformFit(1.0, "<i2", 1, 0.0, 0.0)
    step = peak / (2 ** (bits - 1) - 1)
    rnd = round_to or (lambda a: a.astype(values.dtype).astype(np.float64))
    q = _quantize(values, step)
    err = float(np.linalg.norm(x - rnd(q.reshape(-1) * step))) / norm
    return _fitted(values, step, err, err)


@contextmanager
def quiet_numcodecs() -> Iterator[None]:
    """Silence zarr's note that numcodecs codecs are outside the Zarr v3 specification (it is shown
    each time such an array is opened)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
        yield


def zarr_codecs(f: UniformFit, dtype: np.dtype) -> tuple[list[Any], Any]:
    """``(filters, serializer)`` for a Zarr format 3 array of ``dtype`` (float32/float64) holding the
    tensor quantized by ``f``: numcodecs' ``FixedScaleOffset`` and ``PCodec``."""
    from zarr.codecs.numcodecs import FixedScaleOffset, PCodec

    with quiet_numcodecs():
        flt = FixedScaleOffset(offset=0, scale=1.0 / f.step, dtype=np.dtype(dtype).str, astype=f.astype)
        serializer = PCodec()
    return [flt], serializer


def estimate_bytes(values: np.ndarray, f: UniformFit) -> int:
    """Bytes the integers of ``values`` quantized by ``f`` take under pcodec, estimated from their order-0
    entropy on a sample of :data:`SAMPLE_VALUES` values (pcodec codes within about 1% of it on long arrays),
    plus 64 bytes of headers."""
    q = _quantize(_sample(np.asarray(values)), f.step)
    if q.size == 0:
        return 0
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    bits = float(-(p * np.log2(p)).sum())
    return int(math.ceil(bits * np.asarray(values).size / 8)) + 64
