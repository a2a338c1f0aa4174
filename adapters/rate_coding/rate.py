"""Differentiable rate models of quantized integers, for rate-aware fine-tuning
(:mod:`sinr_adapters.rate_coding.rate_aware`).

A tensor is stored as integers ``q = round(v / step)`` entropy-coded with the core's static rANS
(:func:`sinr_codecs.rans.encode`). During training ``q`` is the straight-through rounding
:func:`~sinr_adapters.framework.quantizers.ste_round` of ``v / step`` (forward: the integers the stream will
hold; backward: identity), and
its cost in bits is estimated by a zero-mean discretized Laplace model with a learned scale ``b``
(integer units, log-parametrised)::

    P(q) = F(q + 1/2) - F(q - 1/2),   F the Laplace(0, b) CDF,   bits = -log2 P(q)

:func:`laplace_bits` is differentiable with respect to ``q`` (so the rate pushes values towards zero) and
to ``log b``. :func:`actual_bits` is what rANS writes for the same integers, table included, so the two can
be compared.

:class:`LaplaceModel` is the coder's side of the same model: a two-sided geometric (discretized Laplace)
distribution of a few integer parameters, turned into an exact integer frequency table
(:func:`laplace_freqs`) that :func:`sinr_codecs.rans.encode_with_model` codes with and the decoder rebuilds
bit for bit; only the parameters are stored, never a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sinr_codecs import rans

__all__ = ["LaplaceModel", "actual_bits", "laplace_bits", "laplace_freqs", "noisy_round"]

_LOG2 = math.log(2.0)
_MIN_P = 2.0 ** -30  # probability floor: at most 30 bits per symbol, never an infinite gradient


def noisy_round(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + U(-1/2, 1/2)``: the additive-noise proxy of rounding (differentiable, unbiased rate)."""
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device) - 0.5
    return x + noise


def laplace_bits(q: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Bits of each value of ``q`` under a zero-mean discretized Laplace model of scale ``exp(log_scale)``.

    Parameters
    ----------
    q : torch.Tensor
        Values in integer units (integers, or integers plus noise), any shape.
    log_scale : torch.Tensor
        Scalar (or broadcastable) natural log of the Laplace scale ``b`` in integer units.

    Returns
    -------
    torch.Tensor
        ``-log2 P(q)``, the shape of ``q``; differentiable with respect to ``q`` and ``log_scale``.

    Notes
    -----
    With ``x = |q|`` and ``a = exp(-1 / b)``: for ``x >= 1/2``,
    ``P = exp(-(x - 1/2) / b) (1 - a) / 2``; for ``x < 1/2``,
    ``P = 1 - (exp(-(x + 1/2) / b) + exp(-(1/2 - x) / b)) / 2``. Both are evaluated in the log domain where
    that is stable; ``P`` is floored at ``2**-30``.
    """
    b = torch.exp(log_scale)
    x = q.abs()
    tail_x = torch.clamp(x, min=0.5)
    log_tail = -(tail_x - 0.5) / b + torch.log(-torch.expm1(-1.0 / b)) - _LOG2
    centre_x = torch.clamp(x, max=0.5)
    centre = 1.0 - 0.5 * (torch.exp(-(centre_x + 0.5) / b) + torch.exp(-(0.5 - centre_x) / b))
    log_centre = torch.log(torch.clamp(centre, min=_MIN_P))
    log_p = torch.where(x >= 0.5, log_tail, log_centre)
    return -torch.clamp(log_p, min=math.log(_MIN_P)) / _LOG2


def actual_bits(q: np.ndarray | torch.Tensor) -> int:
    """Bits that :func:`sinr_codecs.rans.encode` writes for the integers ``q`` (flattened; table included)."""
    a = np.asarray(q.detach().cpu() if isinstance(q, torch.Tensor) else q).reshape(-1).astype(np.int64)
    return 8 * len(rans.encode(a))


MAX_MODEL_ALPHABET = 1 << 20
"""Widest value range ``hi - lo + 1`` a :class:`LaplaceModel` covers."""
MODEL_SCALE = 18
"""``log2`` of the model's frequency total (at least 2 bits above the widest alphabet it holds)."""


def laplace_freqs(lo: int, hi: int, center: int, ratio: int, scale: int) -> np.ndarray:
    """The exact integer frequency table of a two-sided geometric distribution on ``[lo, hi]``.

    Weights ``w(k) = floor(2**32 * (ratio / 2**16) ** |k - center|)`` (an integer recurrence, identical on
    every machine); each of the ``hi - lo + 1`` values gets ``1 + floor(w * spare / sum(w))`` of the
    ``2**scale`` total (``spare`` = the total less one per value) and ``center`` the remainder.

    Returns
    -------
    (hi - lo + 1,) int64, every entry >= 1, summing to ``2**scale``.

    Raises
    ------
    ValueError
        ``lo <= center <= hi``, ``1 <= ratio < 2**16`` and ``hi - lo + 1 <= min(2**scale,``
        :data:`MAX_MODEL_ALPHABET`) must hold.
    """
    size = hi - lo + 1
    m = 1 << scale
    if not (lo <= center <= hi and 1 <= ratio < (1 << 16) and 1 <= size <= min(m, MAX_MODEL_ALPHABET)):
        raise ValueError(f"bad Laplace model: lo={lo}, hi={hi}, center={center}, ratio={ratio}, scale={scale}")
    reach = max(center - lo, hi - center) + 1
    w = np.zeros(reach, dtype=np.int64)
    x = 1 << 32
    for d in range(reach):  # stops as soon as the weights reach 0
        if x == 0:
            break
        w[d] = x
        x = (x * ratio) >> 16
    wk = w[np.abs(np.arange(lo, hi + 1, dtype=np.int64) - center)]
    f = 1 + (wk * (m - size)) // int(wk.sum())  # wk * spare < 2**32 * 2**22: no int64 overflow
    f[center - lo] += m - int(f.sum())
    return f


@dataclass(frozen=True)
class LaplaceModel:
    """The parameters of :func:`laplace_freqs` (``scale`` = :data:`MODEL_SCALE`) that code one integer
    section best; :meth:`fit` picks them, the stream stores them (varints and a u16)."""

    lo: int
    hi: int
    center: int
    ratio: int

    @classmethod
    def fit(cls, ints: np.ndarray) -> LaplaceModel | None:
        """The model of smallest exact cost for ``ints`` (1-D int64): the median as centre, the maximum
        likelihood ratio and its neighbours tried; ``None`` when the range is too wide or has one value."""
        lo, hi = int(ints.min()), int(ints.max())
        if hi == lo or hi - lo + 1 > min(MAX_MODEL_ALPHABET, 1 << (MODEL_SCALE - 2)):
            return None
        center = int(np.clip(np.rint(np.median(ints)), lo, hi))
        mean = float(np.abs(ints - center).mean())
        rho = (math.sqrt(1 + mean * mean) - 1) / mean if mean > 0 else 1e-4  # E|d| = 2 rho / (1 - rho**2)
        models = [cls(lo, hi, center, int(min(max(round(rho * factor * 65536), 1), 65535)))
                  for factor in (0.9, 0.95, 0.98, 1.0, 1.02, 1.05, 1.1)]
        return min(models, key=lambda m: m.cost_bits(ints))  # the first of the cheapest

    def freqs(self) -> np.ndarray:
        return laplace_freqs(self.lo, self.hi, self.center, self.ratio, MODEL_SCALE)

    def cost_bits(self, ints: np.ndarray) -> float:
        """Bits the lanes take for ``ints`` under this model, lane states excluded."""
        f = self.freqs()
        return float(ints.size * MODEL_SCALE - np.log2(f[ints - self.lo]).sum())
