"""Multi-resolution hash-grid encoding (Müller et al. 2022, "Instant Neural Graphics Primitives") in pure torch.

No CUDA extension (tiny-cuda-nn) is needed: the encoding is a gather and a weighted sum, so it runs, and
trains, on any torch device. :class:`HashGrid` holds the latent tables of all levels in one parameter
``latents`` of shape ``(sum of table sizes, features)``; level ``l`` owns rows
``offsets[l] : offsets[l + 1]``.

Geometry (for ``dim``-dimensional inputs ``x`` in ``[0, 1]^dim``):

- level ``l`` of ``L`` has resolution ``N_l = floor(N_min * b**l)`` with
  ``b = exp((ln N_max - ln N_min) / (L - 1))`` (``N_0 = N_min``, ``N_{L-1} = N_max``);
- its vertices are the integer points ``0 .. N_l`` per axis, and ``x`` falls in the cell whose lower
  corner is ``i0 = min(floor(x * N_l), N_l - 1)``, with fractional position ``t = x * N_l - i0``;
- a level whose ``(N_l + 1)**dim`` vertices fit in ``2**log2_table_size`` entries is indexed densely
  (``sum_j c_j (N_l + 1)**j``, a collision-free table of exactly that size); a finer level hashes the
  vertex ``c`` to ``(XOR_j c_j * pi_j) mod 2**log2_table_size`` with Instant-NGP's primes
  ``pi = (1, 2654435761, 805459861)``;
- the encoding is the ``2**dim``-corner multilinear (bilinear in 2-D) interpolation of the corner
  entries, per level: output ``(N, L, features)``.

Examples
--------
>>> g = HashGrid(dim=2, levels=4, base_resolution=4, finest_resolution=32, log2_table_size=8)
>>> g.resolutions, g.table_sizes
([4, 8, 16, 32], [25, 81, 256, 256])
>>> tuple(g(torch.rand(10, 2)).shape)
(10, 4, 1)
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PRIMES", "HashGrid", "grid_resolutions"]

PRIMES = (1, 2654435761, 805459861)
"""Instant-NGP's per-axis hashing primes (the first axis is not scrambled)."""


def grid_resolutions(levels: int, base_resolution: int, finest_resolution: int) -> list[int]:
    """``N_l = floor(N_min * b**l)`` with ``b`` spanning ``N_min .. N_max`` over ``levels`` levels."""
    if levels < 1 or base_resolution < 1 or finest_resolution < base_resolution:
        raise ValueError("need levels >= 1 and 1 <= base_resolution <= finest_resolution")
    if levels == 1:
        return [int(base_resolution)]
    b = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (levels - 1))
    # the small epsilon keeps N_{L-1} == N_max despite rounding in exp/log
    return [math.floor(base_resolution * b ** level + 1e-6) for level in range(levels)]


class HashGrid(nn.Module):
    """Multi-resolution (hash) grid of latent tables with multilinear interpolation.

    Parameters
    ----------
    dim : int, default 2
        Input dimension (1, 2 or 3).
    levels : int, default 16
        Number of resolutions ``L``.
    base_resolution, finest_resolution : int, default 16, 512
        ``N_min`` and ``N_max``.
    log2_table_size : int, default 14
        ``T``: at most ``2**T`` entries per level.
    features : int, default 1
        Entries' width (latent values per vertex).
    init_range : float, default 1e-4
        Entries start ``U(-init_range, init_range)`` (Instant-NGP's 1e-4).

    Attributes
    ----------
    resolutions, table_sizes : list of int
        Per level.
    hashed : list of bool
        Whether a level is hashed (else dense).
    offsets : list of int
        ``L + 1`` row offsets into :attr:`latents`.
    latents : nn.Parameter
        ``(offsets[-1], features)``.
    """

    _corners: torch.Tensor
    latents: nn.Parameter

    def __init__(self, *, dim: int = 2, levels: int = 16, base_resolution: int = 16, finest_resolution: int = 512,
                 log2_table_size: int = 14, features: int = 1, init_range: float = 1e-4) -> None:
        super().__init__()
        if dim not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {dim}")
        if not 1 <= log2_table_size <= 30:
            raise ValueError(f"log2_table_size must be in 1..30, got {log2_table_size}")
        if features < 1:
            raise ValueError("features must be >= 1")
        self.dim = int(dim)
        self.levels = int(levels)
        self.features = int(features)
        self.log2_table_size = int(log2_table_size)
        self.resolutions = grid_resolutions(levels, base_resolution, finest_resolution)
        cap = 1 << self.log2_table_size
        self.hashed = [(n + 1) ** self.dim > cap for n in self.resolutions]
        self.table_sizes = [cap if h else (n + 1) ** self.dim
                            for n, h in zip(self.resolutions, self.hashed, strict=True)]
        self.offsets = [0]
        for size in self.table_sizes:
            self.offsets.append(self.offsets[-1] + size)
        self.latents = nn.Parameter(torch.empty(self.offsets[-1], self.features).uniform_(-init_range, init_range))
        # corner bit patterns, (2**dim, dim)
        corners = [[(c >> j) & 1 for j in range(self.dim)] for c in range(1 << self.dim)]
        self.register_buffer("_corners", torch.tensor(corners, dtype=torch.int64), persistent=False)

    @property
    def num_entries(self) -> int:
        return self.offsets[-1]

    def level_slice(self, level: int) -> slice:
        """Rows of :attr:`latents` that belong to ``level``."""
        return slice(self.offsets[level], self.offsets[level + 1])

    def vertex_index(self, level: int, vertex: torch.Tensor) -> torch.Tensor:
        """Table row (within ``level``) of integer vertices ``(..., dim)``."""
        n = self.resolutions[level]
        if self.hashed[level]:
            h = vertex[..., 0] * PRIMES[0]
            for j in range(1, self.dim):
                h = torch.bitwise_xor(h, vertex[..., j] * PRIMES[j])
            return torch.bitwise_and(h, (1 << self.log2_table_size) - 1)
        idx = vertex[..., 0]
        stride = n + 1
        for j in range(1, self.dim):
            idx = idx + vertex[..., j] * stride
            stride *= n + 1
        return idx

    def corners(self, level: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (into :attr:`latents`, level offset added) and weights of the ``2**dim`` corners of the
        cell around each point of ``x`` ``(N, dim)``: two ``(N, 2**dim)`` tensors; weights sum to 1."""
        n = self.resolutions[level]
        pos = x * n
        lower = torch.clamp(torch.floor(pos), 0, n - 1)
        frac = pos - lower
        lower = lower.to(torch.int64)
        bits = self._corners  # (C, dim)
        vertex = lower[:, None, :] + bits[None]                       # (N, C, dim)
        w = torch.where(bits[None].bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(-1)  # (N, C)
        return self.vertex_index(level, vertex) + self.offsets[level], w

    def forward(self, x: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Encode points ``x`` ``(N, dim)`` in ``[0, 1]``: ``(N, levels, features)``.

        ``table`` replaces :attr:`latents` (same shape), e.g. rounded or decoded latents; gradients flow
        to whichever table is used, and to ``x``.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (N, {self.dim}), got {tuple(x.shape)}")
        t = self.latents if table is None else table
        out = []
        for level in range(self.levels):
            rows, w = self.corners(level, x)
            out.append((t[rows] * w[..., None].to(t.dtype)).sum(1))   # (N, F)
        return torch.stack(out, dim=1)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, levels={self.levels}, resolutions={self.resolutions[0]}..{self.resolutions[-1]}, "
                f"log2_table_size={self.log2_table_size}, features={self.features}, entries={self.num_entries}")
