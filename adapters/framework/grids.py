"""Coordinate grids: where a coordinate network is evaluated, one row per sample, row-major.

Each INR method has its own convention, and reproducing its numbers depends on it (a method with a
convention of its own keeps it, e.g. :func:`sinr_adapters.methods.coin.coin_grid`):

- :func:`linspace_grid`: INRIC and SIREN, ``linspace(-1, 1, n)`` per axis;
- :func:`unit_grid`: SHACIRA (and COIN++ within a patch), ``linspace(0, 1, n)`` per axis;
- :func:`pixel_grid`: COIN++, integer pixel positions (the model finds each pixel's patch).
"""

from __future__ import annotations

import torch

__all__ = ["linspace_grid", "pixel_grid", "unit_grid"]


def linspace_grid(*sizes: int) -> torch.Tensor:
    """``linspace(-1, 1, n)`` per axis, ``indexing="ij"``, row-major, shape ``(prod(sizes), len(sizes))``
    (INRIC's and SIREN's convention; works for 1-D audio, 2-D images, 3-D volumes)."""
    axes = [torch.linspace(-1.0, 1.0, int(n)) for n in sizes]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh, dim=-1).reshape(-1, len(sizes))


def unit_grid(*sizes: int) -> torch.Tensor:
    """``linspace(0, 1, n)`` per axis, ``indexing="ij"``, row-major: ``(prod(sizes), len(sizes))``."""
    axes = [torch.linspace(0.0, 1.0, int(n)) for n in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(sizes))


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """Integer pixel positions ``(row, col)`` as float32, row-major: ``(H * W, 2)``."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    return torch.stack((rows, cols), dim=-1).reshape(-1, 2)
