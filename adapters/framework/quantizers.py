"""The methods' uniform quantizer and straight-through rounding for quantization-aware training.

There is one uniform quantizer, the core's (:func:`sinr_codecs.quantize.quantize`); here it quantizes a
whole tensor with one float32 step, as the adapter streams store it:

- :func:`uniform_quantize` / :func:`uniform_dequantize`: symmetric per-tensor integers
  ``q = round(t / step)``, ``|q| <= 2**(bits-1) - 1``, ``step = max|t| / (2**(bits-1) - 1)`` rounded to
  float32 (INRIC / AIMET style; COIN's ``bits < 16`` baseline; SHACIRA's MLP; NIC);
- :func:`fake_uniform`, :func:`fake_half`: the same, and float16 rounding (COIN), straight-through: the
  forward pass sees the stored values, the gradient passes unchanged;
- :func:`ste_round`: rounding to integers, straight-through (SHACIRA's latents, rate-aware training).

How the integers are stored in a stream is :func:`sinr_adapters.framework.records.stored_uniform`.

Examples
--------
>>> q, step = uniform_quantize(torch.tensor([0.0, 0.5, -1.0]), 3)
>>> q.tolist(), step
([0, 1, -3], 0.3333333432674408)
>>> uniform_dequantize(q, step).tolist()
[0.0, 0.3333333432674408, -1.0]
"""

from __future__ import annotations

import numpy as np
import torch

from sinr_codecs import quantize

__all__ = ["MAX_BITS", "MIN_BITS", "fake_half", "fake_uniform", "ste_round", "uniform_dequantize",
           "uniform_quantize"]

MIN_BITS = 2
"""Fewest bits of the per-tensor quantizer."""
MAX_BITS = 16
"""Most bits of the per-tensor quantizer (a stream stores its integers in at most 16 bits)."""


def uniform_quantize(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """Quantize the whole tensor ``t`` with one step (the core's quantizer, one float32 step).

    Parameters
    ----------
    t : torch.Tensor
        Any shape, finite values.
    bits : int
        2..16.

    Returns
    -------
    q : torch.Tensor
        int64 of ``t``'s shape and device, ``|q| <= 2**(bits-1) - 1``.
    step : float
        ``max|t| / (2**(bits-1) - 1)`` rounded to float32 (the value a stream stores); 1 for an all-zero
        or empty tensor.
    """
    if isinstance(bits, bool) or not MIN_BITS <= int(bits) <= MAX_BITS:
        raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    q, steps = quantize.quantize(t.detach().reshape(1, -1), int(bits), "vector")
    step = float(steps[0]) if float(steps[0]) > 0 else 1.0
    return torch.from_numpy(q.astype(np.int64)).reshape(t.shape).to(t.device), step


def uniform_dequantize(q: torch.Tensor, step: float) -> torch.Tensor:
    """Inverse of :func:`uniform_quantize`: ``q * step`` in float32."""
    return q.to(torch.float32) * float(np.float32(step))


def fake_uniform(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Straight-through fake quantization: forward :func:`uniform_quantize` + dequantize, identity grad."""
    q, step = uniform_quantize(t, bits)
    return t + (uniform_dequantize(q, step).to(t.device) - t).detach()


def fake_half(t: torch.Tensor) -> torch.Tensor:
    """Straight-through rounding to float16 (COIN's storage)."""
    return t + (t.detach().half().float() - t).detach()


def ste_round(t: torch.Tensor) -> torch.Tensor:
    """Round to integers in the forward pass, identity gradient (straight-through estimator)."""
    return t + (torch.round(t) - t).detach()
