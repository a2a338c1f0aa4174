"""An example INR-method adapter: a plain ReLU MLP on Fourier features (``ffmlp``).

The network maps a pixel's coordinates in [-1, 1]² through a fixed positional encoding (sines and
cosines at ``frequencies`` octaves) and ``layers`` ReLU layers of width ``width`` to RGB in [0, 1].
Without SINR every tensor is stored as per-tensor uniform ``bits``-bit integers (Brotli-coded by the
container); with SINR the hidden-to-hidden matrices are SINR-coded. Everything else (fitting,
fine-tuning, the stream, decoding) is :class:`sinr_adapters.framework.INRAdapter`'s; every name it uses
comes from :mod:`sinr_adapters.framework`.

Examples
--------
>>> a = FourierMLPAdapter(width=8, layers=3)
>>> a.sinr_tensor_names(a.build_model())
['layers.1.weight', 'layers.2.weight']
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_adapters.framework import (
    AdapterSpec,
    INRAdapter,
    Option,
    PositionalEncoding,
    Signal,
    grid_of,
    image_signal,
    linspace_grid,
)

__all__ = ["FourierMLP", "FourierMLPAdapter"]


class FourierMLP(nn.Module):
    """Positional encoding, then ``layers`` ReLU layers of width ``width``, then a linear RGB output."""

    def __init__(self, *, width: int, layers: int, frequencies: int) -> None:
        super().__init__()
        self.encoding = PositionalEncoding(2, num_frequencies=frequencies, scale=2.0)
        dims = [self.encoding.out_dim] + [width] * layers + [3]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoding(x)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class FourierMLPAdapter(INRAdapter):
    """The ``ffmlp`` method.

    Parameters
    ----------
    width : int, default 32
        Hidden width (the rate knob of the harness).
    layers : int, default 3
        ReLU layers (``layers - 1`` hidden-to-hidden matrices, which SINR codes).
    frequencies : int, default 6
        Octaves of the positional encoding.
    bits : int, default 8
        Storage of every tensor without SINR, and of the tensors SINR leaves alone (uniform integers).
    """

    name: ClassVar[str] = "ffmlp"
    default_lr: ClassVar[float] = 1e-3
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-3

    @classmethod
    def describe(cls) -> AdapterSpec:
        """What ``sinr evaluate`` needs to know: the options, which one sweeps the rate, which one is the
        storage bits of the fair baseline (the defaults give images, PSNR, no preparation)."""
        return AdapterSpec(
            summary="example plugin: a ReLU MLP on Fourier features, uniform integers",
            rate="widths", rate_key="width", bits="bits",
            options=(Option("widths", int, [16, 32], "hidden widths (the rate points)", multiple=True, minimum=1),
                     Option("layers", int, 3, "ReLU layers", minimum=2),
                     Option("frequencies", int, 6, "positional-encoding octaves", minimum=0),
                     Option("bits", int, 8, "storage bits of every tensor without SINR", minimum=2, maximum=16)))

    def __init__(self, *, width: int = 32, layers: int = 3, frequencies: int = 6, bits: int = 8) -> None:
        if int(width) < 1 or int(layers) < 2 or int(frequencies) < 0 or not 2 <= int(bits) <= 16:
            raise ValueError("width >= 1, layers >= 2, frequencies >= 0 and bits in 2..16 are required")
        self.width, self.layers, self.frequencies, self.bits = int(width), int(layers), int(frequencies), int(bits)

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "layers": self.layers, "frequencies": self.frequencies, "bits": self.bits}

    def build_model(self) -> FourierMLP:
        return FourierMLP(width=self.width, layers=self.layers, frequencies=self.frequencies)

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        return image_signal(image, channels=3, grid=linspace_grid, name=name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        return grid_of(linspace_grid, shape, axes=2, method="ffmlp")

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        return [f"layers.{i}.weight" for i in range(1, self.layers)]

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        return ("q", self.bits)
