"""Differentiable rate models of quantized integers, for rate-aware fine-tuning (:mod:`sinr_adapters.rate_aware`).

A tensor is stored as integers ``q = round(v / step)`` entropy-coded with the core's static rANS
(:func:`sinr_codecs.rans.encode`). During training ``q`` is the straight-through rounding
:func:`ste_round` of ``v / step`` (forward: the integers the stream will hold; backward: identity), and
its cost in bits is estimated by a zero-mean discretized Laplace model with a learned scale ``b``
(integer units, log-parametrised)::

    P(q) = F(q + 1/2) - F(q - 1/2),   F the Laplace(0, b) CDF,   bits = -log2 P(q)

:func:`laplace_bits` is differentiable with respect to ``q`` (so the rate pushes values towards zero) and
to ``log b``. :func:`actual_bits` is what rANS writes for the same integers, table included, so the two can
be compared.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sinr_codecs import rans

__all__ = ["actual_bits", "laplace_bits", "noisy_round", "ste_round"]

_LOG2 = math.log(2.0)
_MIN_P = 2.0 ** -30  # probability floor: at most 30 bits per symbol, never an infinite gradient


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer in the forward pass, identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


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
