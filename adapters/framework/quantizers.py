"""The methods' own quantizers (the core's :mod:`sinr_codecs.quantize` quantizes SINR's sparse values).

- :func:`uniform_quantize` / :func:`uniform_dequantize`: symmetric per-tensor uniform integers (INRIC /
  AIMET style; COIN's ``bits < 16`` baseline; SHACIRA's MLP).
- :func:`fake_uniform`, :func:`fake_half`: the same, and float16 rounding (COIN), straight-through:
  the forward pass sees the stored values, the gradient passes unchanged (quantization-aware fine-tuning).

How the integers are stored in a stream is :func:`sinr_adapters.framework.container.stored_uniform`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["fake_half", "fake_uniform", "uniform_dequantize", "uniform_quantize"]


def uniform_quantize(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """Symmetric per-tensor uniform quantizer (INRIC / AIMET style).

    ``step = max|t| / (2**(bits-1) - 1)`` (1 for an all-zero tensor), ``q = round(t / step)`` clamped to
    ``+-(2**(bits-1) - 1)``. Returns ``(q as int64, step)`` with ``step`` a float32-representable float.
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    amax = float(t.detach().abs().max()) if t.numel() else 0.0
    step = float(np.float32(amax / qmax)) if amax > 0 else 1.0
    if step == 0.0 or not math.isfinite(step):
        step = 1.0
    q = torch.clamp(torch.round(t.detach() / step), -qmax, qmax).to(torch.int64)
    return q, step


def uniform_dequantize(q: torch.Tensor, step: float) -> torch.Tensor:
    """Inverse of :func:`uniform_quantize` (float32)."""
    return q.to(torch.float32) * np.float32(step)


def fake_uniform(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Straight-through fake quantization: forward :func:`uniform_quantize` + dequantize, identity grad."""
    q, step = uniform_quantize(t, bits)
    return t + (uniform_dequantize(q, step).to(t.device) - t).detach()


def fake_half(t: torch.Tensor) -> torch.Tensor:
    """Straight-through rounding to float16 (COIN's storage)."""
    return t + (t.detach().half().float() - t).detach()
