"""SHACIRA's network: a hash grid of integer latents, a per-level latent decoder, a ReLU MLP, and the
learned prior of the entropy penalty (the adapter is :class:`sinr_adapters.methods.shacira.adapter.SHACIRAAdapter`).

State_dict keys are ours (``grid.latents``, ``decoder.weight``/``bias``, ``mlp.{i}.weight``/``bias``,
``prior.log_scale``); the hash grid itself is :mod:`sinr_adapters.methods.shacira.hashgrid`.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ...framework.quantizers import ste_round
from .hashgrid import HashGrid

__all__ = ["LatentDecoder", "LatentPrior", "SHACIRANet"]


class LatentDecoder(nn.Module):
    """Per-level affine map latents -> features: ``(N, L, latent_dim) -> (N, L, feature_dim)``."""

    def __init__(self, levels: int, latent_dim: int, feature_dim: int, *, scale: float = 0.05) -> None:
        super().__init__()
        w = torch.zeros(levels, feature_dim, latent_dim)
        w[:, :, :] = scale * torch.eye(feature_dim, latent_dim)  # start as a scaled identity
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(levels, feature_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nlk,lfk->nlf", z, self.weight) + self.bias


class LatentPrior(nn.Module):
    """Per-level, per-channel zero-mean logistic prior over integer latents (the entropy penalty)."""

    def __init__(self, levels: int, latent_dim: int, *, scale: float = 1.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((levels, latent_dim), math.log(scale)))

    def bits(self, q: torch.Tensor, level: int) -> torch.Tensor:
        """Bits of integer-valued ``q`` ``(n, latent_dim)`` under level ``level``'s prior (a scalar)."""
        s = torch.exp(self.log_scale[level]).clamp_min(1e-3)
        a = -q.abs()  # symmetric: evaluate in the lower tail, where the difference is accurate
        p = torch.sigmoid((a + 0.5) / s) - torch.sigmoid((a - 0.5) / s)
        return -torch.log2(p.clamp_min(1e-12)).sum()


class SHACIRANet(nn.Module):
    """Hash grid of integer latents -> per-level latent decoder -> ReLU MLP.

    ``forward(x)`` takes points in ``[0, 1]^dim``; it rounds the latents (straight-through) unless
    :attr:`round_latents` is False (latents decoded from a SINR stream are real numbers).
    """

    grid: HashGrid
    round_latents: bool

    def __init__(self, *, dim: int = 2, levels: int = 16, base_resolution: int = 16, finest_resolution: int = 512,
                 log2_table_size: int = 14, latent_dim: int = 1, feature_dim: int = 1, hidden: int = 16,
                 hidden_layers: int = 2, dim_out: int = 3, latent_init: float = 1.0,
                 decoder_scale: float = 0.05) -> None:
        super().__init__()
        self.grid = HashGrid(dim=dim, levels=levels, base_resolution=base_resolution,
                             finest_resolution=finest_resolution, log2_table_size=log2_table_size,
                             features=latent_dim, init_range=latent_init)
        self.decoder = LatentDecoder(levels, latent_dim, feature_dim, scale=decoder_scale)
        dims = [levels * feature_dim] + [hidden] * hidden_layers + [dim_out]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)
        self.prior = LatentPrior(levels, latent_dim, scale=max(latent_init, 0.5))
        self.round_latents = True

    def forward(self, x: torch.Tensor, latents: torch.Tensor | None = None) -> torch.Tensor:
        t = self.grid.latents if latents is None else latents
        if self.round_latents:
            t = ste_round(t)
        z = self.grid(x, table=t)
        return self.mlp(self.decoder(z).flatten(1))

    def rate_bits(self, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Estimated bits of the rounded latents under the prior (straight-through to the latents)."""
        t = ste_round(self.grid.latents if latents is None else latents)
        levels = (self.prior.bits(t[self.grid.level_slice(level)], level) for level in range(self.grid.levels))
        return sum(levels, torch.zeros((), device=t.device))
