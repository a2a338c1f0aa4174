"""Coordinate grids: where a coordinate network is evaluated, one row per sample, row-major.

Each INR method has its own convention, and reproducing its numbers depends on it (a method with a
convention of its own keeps it, e.g. :func:`sinr_adapters.methods.coin.coin_grid`):

- :func:`linspace_grid`: INRIC and SIREN, ``linspace(-1, 1, n)`` per axis;
- :func:`unit_grid`: SHACIRA (and COIN++ within a patch), ``linspace(0, 1, n)`` per axis;
- :func:`pixel_grid`: COIN++, integer pixel positions (the model finds each pixel's patch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["grid_of", "linspace_grid", "pixel_grid", "unit_grid"]


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


def grid_of(grid: Callable[..., torch.Tensor], shape: Sequence[int], *, axes: int, method: str) -> torch.Tensor:
    """``grid(*shape)`` for a method that renders ``axes``-D signals, e.g. in an adapter's ``coordinates``.

    Parameters
    ----------
    grid : callable
        One of this module's grids (or a method's own), called with the sizes of ``shape``.
    shape : sequence of int
        The grid shape asked for.
    axes : int
        How many axes the method renders.
    method : str
        The method's name, for the error.

    Returns
    -------
    torch.Tensor
        ``(prod(shape), axes)``.

    Raises
    ------
    ValueError
        If ``shape`` does not have ``axes`` axes.

    >>> grid_of(linspace_grid, (2, 3), axes=2, method="coin").shape
    torch.Size([6, 2])
    """
    if len(shape) != axes:
        raise ValueError(f"{method} renders {axes}-D signals, got grid shape {tuple(shape)}")
    return grid(*(int(n) for n in shape))
