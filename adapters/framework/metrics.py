"""Quality measures shared by the adapters and the harness: PSNR in its three forms.

- :func:`mse_to_psnr`: ``10 log10(peak^2 / mse)``;
- :func:`psnr`: between two tensors;
- :func:`psnr_8bit`: of a reconstruction clamped to [0, 1] and rounded to 8-bit levels (COIN's
  ``get_clamped_psnr``), the harness's default metric for images.

Examples
--------
>>> mse_to_psnr(0.01)
20.0
>>> import torch
>>> psnr_8bit(torch.full((4,), 1.3), torch.full((4,), 1.0))  # clamped to [0, 1] first
inf
"""

from __future__ import annotations

import math

import torch

__all__ = ["mse_to_psnr", "psnr", "psnr_8bit"]


def mse_to_psnr(mse: float | torch.Tensor, peak: float = 1.0) -> float:
    """``10 log10(peak^2 / mse)`` in dB; ``inf`` for ``mse == 0``."""
    mse = float(mse)
    if mse <= 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR in dB between two tensors of the same shape."""
    return mse_to_psnr(torch.mean((a.detach().float() - b.detach().float()) ** 2), peak)


def psnr_8bit(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of a reconstruction in [0, 1] after clamping and rounding to 8-bit levels (what a decoder
    that writes an 8-bit image delivers; COIN's ``get_clamped_psnr``), against a target in [0, 1]."""
    rec = torch.round(torch.clamp(reconstruction.detach().float(), 0.0, 1.0) * 255.0) / 255.0
    return psnr(rec, target)
