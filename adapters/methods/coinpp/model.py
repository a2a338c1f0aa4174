"""COIN++'s networks and patches: the modulated base network and one image's model.

- :class:`ModulatedSiren`: the base network shared by encoder and decoder, a SIREN whose hidden layers
  take per-signal shift modulations ``sin(w0 (W h + b + shift_i))`` from a latent by one linear map
  (:class:`LatentToModulation`); state_dict keys as in COIN++'s public code (EmilienDupont/coinpp, MIT;
  read, not copied): ``net.{i}.linear.*``, ``last_layer.linear.*`` (``+ 0.5`` on the output),
  ``modulation_net.net.*``.
- :func:`patchify`, :func:`patch_grid`, :func:`patch_coordinates`: ``patch`` x ``patch`` patches, the
  image padded at the bottom/right by reflection (by replication where the padding exceeds the image),
  patch-local coordinates ``linspace(0, 1)`` per axis.
- :class:`COINppModel`: one image, the frozen base network plus one latent per patch, evaluated at
  integer pixel positions (:func:`sinr_adapters.framework.grids.pixel_grid`).

The adapter is :class:`sinr_adapters.methods.coinpp.adapter.COINppAdapter`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

from ...framework import nets
from ...framework.grids import unit_grid

__all__ = ["COINppModel", "LatentToModulation", "ModulatedSiren", "patch_coordinates", "patch_grid", "patchify"]


class LatentToModulation(nn.Module):
    """The linear map latent -> shifts of all hidden layers (key ``net.weight`` / ``net.bias``)."""

    def __init__(self, latent_dim: int, num_modulations: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.net = nn.Linear(latent_dim, num_modulations)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent)


class ModulatedSiren(nn.Module):
    """COIN++'s base network: a SIREN with per-signal shift modulations from a latent vector.

    Parameters
    ----------
    dim_in, dim_hidden, dim_out : int
        Coordinate dimension, width, channels.
    num_layers : int
        Layers including the linear output layer (COIN++'s ``--num_layers``): ``num_layers - 1`` sine
        layers are modulated, so there are ``dim_hidden * (num_layers - 1)`` shifts.
    w0, w0_initial : float
        Sine frequencies (COIN++ passes ``w0_initial = w0``).
    latent_dim : int
        Latent vector length.
    """

    def __init__(self, *, dim_in: int = 2, dim_hidden: int = 32, dim_out: int = 3, num_layers: int = 5,
                 w0: float = 30.0, w0_initial: float = 30.0, latent_dim: int = 32) -> None:
        super().__init__()
        if num_layers < 2 or dim_hidden < 1 or latent_dim < 1:
            raise ValueError("num_layers must be >= 2, dim_hidden and latent_dim >= 1")
        self.dim_hidden = int(dim_hidden)
        self.net = nn.Sequential(*[
            nets.SineLayer(dim_in if i == 0 else dim_hidden, dim_hidden, w0=w0_initial if i == 0 else w0,
                           is_first=i == 0)
            for i in range(num_layers - 1)
        ])
        self.last_layer = nets.SineLayer(dim_hidden, dim_out, w0=w0, activation=nn.Identity())
        self.modulation_net = LatentToModulation(latent_dim, dim_hidden * (num_layers - 1))

    @property
    def latent_dim(self) -> int:
        return self.modulation_net.latent_dim

    def shifts(self, latents: torch.Tensor) -> torch.Tensor:
        """``(..., latent_dim)`` -> ``(..., num_layers - 1, dim_hidden)`` shifts."""
        return self.modulation_net(latents).unflatten(-1, (len(self.net), self.dim_hidden))

    def forward_shifted(self, x: torch.Tensor, shift: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """The network on ``x`` with ``shift(i)`` (broadcastable to layer ``i``'s pre-activation) added."""
        for i, layer in enumerate(self.net):
            sine = cast(nets.SineLayer, layer)
            x = sine.activation(sine.linear(x) + shift(i))
        return self.last_layer.linear(x) + 0.5

    def modulated_forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, *, dim_in)`` with one latent per batch element ``(B, latent_dim)`` -> ``(B, *, dim_out)``."""
        shape = x.shape[:-1]
        s = self.shifts(latents)
        out = self.forward_shifted(x.reshape(x.shape[0], -1, x.shape[-1]), lambda i: s[:, i, None, :])
        return out.reshape(*shape, out.shape[-1])

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        return self.modulated_forward(x, latents)


def patch_grid(height: int, width: int, patch: Sequence[int]) -> tuple[int, int]:
    """Patches per column and per row: ``(ceil(H / ph), ceil(W / pw))``."""
    return -(-int(height) // int(patch[0])), -(-int(width) // int(patch[1]))


def patchify(image: torch.Tensor, patch: Sequence[int]) -> torch.Tensor:
    """``(H, W, C)`` -> ``(patches, ph * pw, C)``, row-major over the patch grid and within patches.

    The image is padded at the bottom and right to whole patches by reflection (COIN++), or by
    replication where the padding is not smaller than the image.
    """
    h, w, c = image.shape
    ph, pw = int(patch[0]), int(patch[1])
    nr, nc = patch_grid(h, w, (ph, pw))
    pad_h, pad_w = nr * ph - h, nc * pw - w
    x = image.permute(2, 0, 1)[None]
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    x = x[0].reshape(c, nr, ph, nc, pw).permute(1, 3, 2, 4, 0)
    return x.reshape(nr * nc, ph * pw, c)


def patch_coordinates(patch: Sequence[int]) -> torch.Tensor:
    """Patch-local coordinates ``linspace(0, 1)`` per axis, ``indexing="ij"``: ``(ph * pw, 2)``."""
    return unit_grid(int(patch[0]), int(patch[1]))


class COINppModel(nn.Module):
    """One image under COIN++: the (frozen) base network plus one latent per patch.

    ``forward(coords)`` maps integer pixel positions ``(row, col)`` (float tensor ``(N, 2)``) to values:
    each pixel finds its patch and its patch-local coordinate. ``forward(coords, latents=...)`` uses other
    latents (fine-tuning through a quantizer or a sparse code).
    """

    def __init__(self, base: ModulatedSiren, latents: torch.Tensor, image_shape: Sequence[int],
                 patch: Sequence[int]) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.latents = nn.Parameter(latents.detach().clone().float())
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.patch = (int(patch[0]), int(patch[1]))
        self.grid = patch_grid(*self.image_shape, self.patch)
        if self.latents.shape[0] != self.grid[0] * self.grid[1]:
            raise ValueError(f"{self.latents.shape[0]} latents for a {self.grid[0]} x {self.grid[1]} patch grid")

    def locate(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch index ``(N,)`` and patch-local coordinates ``(N, 2)`` of pixel positions ``(N, 2)``."""
        ph, pw = self.patch
        rc = coords.round().to(torch.int64)
        r, c = rc[:, 0], rc[:, 1]
        index = (r // ph) * self.grid[1] + (c // pw)
        local = torch.stack(((r % ph).float() / (ph - 1), (c % pw).float() / (pw - 1)), dim=-1)
        return index, local.to(coords.dtype)

    def forward(self, coords: torch.Tensor, latents: torch.Tensor | None = None) -> torch.Tensor:
        lat = self.latents if latents is None else latents
        index, local = self.locate(coords)
        s = self.base.shifts(lat)  # (P, L-1, h); gathered per layer to keep memory at N x h
        return self.base.forward_shifted(local, lambda i: s[index, i])
