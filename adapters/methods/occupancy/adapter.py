"""Occupancy fields (the SINR paper's §4.4 setup) with and without SINR.

The method: an MLP with Gaussian activations ``exp(-(s x)^2)`` (``s = 1 / (sqrt(2) sigma)``: the
``exp(-x^2 / (2 sigma^2))`` nonlinearity of the Gaussian INRs the SINR paper builds on) maps a point
``(x, y, z)`` in ``[-1, 1]^3`` to the logit of its occupancy. It is fitted with binary cross-entropy on
points sampled inside and near the surface of a shape (half within a band around the surface, half
uniform in the cube). Quality is the intersection over union (IoU) of the decoded field thresholded at
0.5 against the true occupancy on a dense ``size^3`` grid of cell centres; the rate is the stream's
length in bytes.

Storage without SINR (the SINR paper's baselines): the hidden-to-hidden weight matrices as per-tensor
uniform ``bits``-bit integers (16 by default) with Brotli, everything else (first and output layer,
biases) in float16. ``bits`` is the storage-bits knob of the fair baseline's search. With SINR the
hidden-to-hidden matrices are SINR-coded (rows = neurons), the rest stored as without.

The paper's network is 3 hidden layers of 128; the default here is 3 x 32 (64 for the larger rate point)
so that a point runs in seconds on a CPU; ``--set occupancy.widths=128`` restores it. Shapes are
procedural signed distance functions (:mod:`sinr_adapters.methods.occupancy.shapes`), never downloaded scans.

Stream: the shared records (:mod:`sinr_adapters.framework.records`: ``h``, ``q`` and ``s``); the signal
shape in the header is the evaluation grid ``(size, size, size, 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError

from ...framework.fields import FieldAdapter
from ...framework.signals import Signal
from ...framework.spec import BYTES, AdapterSpec, Metric, Option, SignalSource
from .shapes import SHAPES, Shape, grid_points, load_shape

__all__ = ["GaussianMLP", "OccupancyAdapter", "iou"]

THRESHOLD = 0.5
"""The occupancy threshold of the IoU."""


class GaussianLayer(nn.Module):
    """``exp(-(scale * (W x + b))^2)``; keys ``linear.weight`` / ``linear.bias``."""

    def __init__(self, dim_in: int, dim_out: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(self.scale * self.linear(x)) ** 2)


class GaussianMLP(nn.Module):
    """``layers`` Gaussian layers of width ``width`` and a linear output (the occupancy logit).

    State_dict keys: ``net.{i}.linear.weight`` / ``.bias`` and ``last.weight`` / ``last.bias``.
    """

    def __init__(self, *, width: int = 32, layers: int = 3, scale: float = 5.0, dim_in: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(*[GaussianLayer(dim_in if i == 0 else width, width, scale) for i in range(layers)])
        self.last = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.net(x))


def iou(decoded: np.ndarray, reference: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Intersection over union of ``decoded >= threshold`` and ``reference >= threshold`` (1.0 when both
    are empty)."""
    a = np.asarray(decoded) >= threshold
    b = np.asarray(reference) >= threshold
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum()) / union


class OccupancyAdapter(FieldAdapter):
    """Occupancy fields, end to end (see the module docstring).

    Parameters
    ----------
    width : int, default 32
        Hidden width (the paper: 128).
    layers : int, default 3
        Gaussian layers (the paper: 3); ``layers - 1`` hidden-to-hidden matrices.
    scale : float, default 5.0
        ``s`` of ``exp(-(s x)^2)`` (``sigma = 1 / (sqrt(2) s)``).
    bits : int, default 16
        Storage bits of the hidden-to-hidden matrices without SINR (2..16).
    samples : int, default 16384
        Training points drawn per shape (not stored in streams).

    Examples
    --------
    >>> a = OccupancyAdapter(width=8, layers=3)
    >>> round(a.loss(torch.zeros(2, 1), torch.ones(2, 1)).item(), 4)  # binary cross-entropy of logit 0
    0.6931
    """

    name: ClassVar[str] = "occupancy"
    default_lr: ClassVar[float] = 5e-3
    default_finetune_lr: ClassVar[float] = 1e-4
    default_sinr_lr: ClassVar[float] = 1e-3
    dim_in: ClassVar[int] = 3
    frequency_keys: ClassVar[tuple[str, ...]] = ("scale",)

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the harness runs occupancy fields: shapes by name, IoU vs bytes, widths as rate points."""
        return cls.field_spec(
            summary="an occupancy field: Gaussian-activation MLP, BCE on sampled points (IoU on a grid vs bytes)",
            source=SignalSource("occupancy", tuple(SHAPES), load_shape, ("statue",), (), 32,
                                "side of the occupancy grid the IoU is measured on", BYTES, 4),
            metric=Metric("IoU", "", True, iou), rate_aware=False, layers_help="Gaussian layers (the paper: 3)",
            bits_help="storage bits of the hidden matrices without SINR",
            options=(Option("scale", float, 5.0, "s of exp(-(s x)^2)", minimum=1e-3, maximum=1e3),
                     Option("samples", int, 16384, "training points per shape (half near the surface)",
                            minimum=16, maximum=1 << 22)))

    def __init__(self, *, width: int = 32, layers: int = 3, scale: float = 5.0, bits: int = 16,
                 samples: int = 16384) -> None:
        super().__init__(width=width, layers=layers, bits=bits)
        if int(samples) < 16:
            raise ValueError(f"samples must be >= 16, got {samples}")
        self.scale = self.check_frequency("scale", scale)
        self.samples = int(samples)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "scale": self.scale}

    def with_config(self, config: Mapping[str, Any]) -> OccupancyAdapter:
        return OccupancyAdapter(**config, samples=self.samples)

    def build_model(self) -> GaussianMLP:
        return GaussianMLP(width=self.width, layers=self.layers, scale=self.scale)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the logits against the occupancy in {0, 1}."""
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)

    def signal_from(self, raw: Any, *, name: str = "") -> Signal:
        """``samples`` training points of a :class:`~sinr_adapters.methods.occupancy.shapes.Shape` (seeded by
        its name) and its occupancy grid as the reference."""
        if not isinstance(raw, Shape):
            raise TypeError(f"expected a sinr_adapters.methods.occupancy.shapes.Shape, got {type(raw).__name__}")
        seed = sum(ord(c) for c in raw.name)
        pts, occ = raw.sample(self.samples, seed=seed)
        g = raw.size
        return Signal(torch.from_numpy(pts), torch.from_numpy(occ[:, None]), (g, g, g, 1), (0.0, 1.0),
                      "occupancy", name or raw.name, reference=raw.occupancy_grid().astype(np.float32)[..., None])

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        if len(shape) != 3 or len(set(shape)) != 1:
            raise ValueError(f"occupancy renders cubic grids, got grid shape {tuple(shape)}")
        return torch.from_numpy(grid_points(int(shape[0])))

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        """Logits -> occupancy probabilities."""
        return torch.sigmoid(values)

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """An occupancy stream holds a cubic grid ``(G, G, G, 1)``."""
        if len(shape) != 4 or shape[3] != 1 or len(set(shape[:3])) != 1:
            raise StreamError(f"occupancy streams hold (G, G, G, 1) grids, got shape {shape}")
