"""COIN (Dupont et al. 2021, "COIN: COmpression with Implicit Neural representations") with and without SINR.

The method: a SIREN ``R^2 -> R^3`` (``w0 = w0_initial = 30``) is fitted to one image; the weights are
stored in half precision; ``bpp = bits / pixels``. No entropy coding.

Conventions kept from the public code (EmilienDupont/coin, MIT; read, not copied):

- coordinates ``(row, col) / (H - 1) * 2 - 1`` (both axes divided by ``H - 1``), values in [0, 1];
- PSNR after clamping the reconstruction to [0, 1] and rounding to 8 bits;
- state_dict keys ``net.{i}.linear.weight`` / ``net.{i}.linear.bias`` for the ``num_layers`` sine layers
  and ``last_layer.linear.weight`` / ``last_layer.linear.bias`` for the linear output layer; ``w0`` is
  not stored (it comes from the command line there, from :class:`COINAdapter`'s arguments here).

With SINR (``compress(..., sinr=SINROptions(...))``) the hidden-to-hidden weight matrices
``net.1 ... net.{L-1}`` are SINR-coded with one vector per output neuron (the ``auto`` layout flattens a
matrix narrower than 50); the first layer, the output layer and all biases stay in half precision.

Our stream adds a small header (method, architecture, image shape; ~40-80 bytes) that COIN's formula
does not count; we count every byte written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError

from ..framework import nets
from ..framework.checkpoints import LoadReport, map_state_dict, read_state_dict
from ..framework.container import MAX_FREQUENCY, config_number
from ..framework.grids import grid_of
from ..framework.inr import INRAdapter
from ..framework.signals import Signal, image_signal
from ..framework.spec import AdapterSpec, Option

__all__ = ["COINAdapter", "COINSiren", "coin_grid", "load_coin_checkpoint"]


def coin_grid(height: int, width: int) -> torch.Tensor:
    """COIN's pixel coordinates: ``(row, col) / (H - 1) * 2 - 1`` (both axes divided by ``H - 1``, as
    COIN does), row-major, shape ``(H*W, 2)``."""
    if height < 2:
        raise ValueError("COIN coordinates need height >= 2")
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    grid = torch.stack((rows, cols), dim=-1).reshape(-1, 2)
    return (grid / (height - 1) - 0.5) * 2.0


class COINSiren(nn.Module):
    """COIN's SIREN: ``num_layers`` sine layers of width ``dim_hidden`` and a linear output layer.

    Parameters
    ----------
    dim_in, dim_hidden, dim_out : int
        Coordinate dimension, width, channels.
    num_layers : int
        Number of sine layers (COIN's ``--num_layers``; the output layer is extra).
    w0, w0_initial : float
        Sine frequency of the hidden layers and of the first layer.
    """

    def __init__(self, dim_in: int = 2, dim_hidden: int = 28, dim_out: int = 3, num_layers: int = 10,
                 w0: float = 30.0, w0_initial: float = 30.0) -> None:
        super().__init__()
        if num_layers < 1 or dim_hidden < 1:
            raise ValueError("num_layers and dim_hidden must be >= 1")
        self.net = nn.Sequential(*[
            nets.SineLayer(dim_in if i == 0 else dim_hidden, dim_hidden, w0=w0_initial if i == 0 else w0,
                           is_first=i == 0)
            for i in range(num_layers)
        ])
        self.last_layer = nets.SineLayer(dim_hidden, dim_out, w0=w0, activation=nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.net(x))


class COINAdapter(INRAdapter):
    """COIN, end to end (see the module docstring).

    Parameters
    ----------
    width : int, default 28
        Hidden width (COIN's ``--layer_size``).
    layers : int, default 10
        Sine layers (COIN's ``--num_layers``); ``layers - 1`` hidden-to-hidden matrices.
    w0, w0_initial : float, default 30
        SIREN frequencies.
    dim_in, dim_out : int, default 2, 3
        Coordinate dimension and channels.
    bits : int, default 16
        16: COIN as published (every tensor float16). 2..15: a *fair baseline* for SINR, not COIN: the
        hidden-to-hidden matrices (the tensors SINR codes) become per-tensor uniform ``bits``-bit integers,
        Brotli-coded and quantization-aware fine-tuned; the rest stays float16.
    tensor_bits : sequence of int or None, default None
        A bit width per stored tensor, in state_dict order (``2 * (layers + 1)`` entries: each sine layer's
        weight and bias, then the output layer's): 16 stores the tensor as float16, 2..15 as per-tensor
        uniform integers (Brotli-coded together, like ``bits``). A baseline with a per-tensor bit allocation,
        not COIN; needs ``bits=16``. A stream written with it is decoded by an adapter given a
        ``tensor_bits`` of the same length (the values are read from the stream).

    Examples
    --------
    >>> a = COINAdapter(width=16, layers=2)
    >>> a.config()["width"]
    16
    >>> sorted(a.sinr_tensor_names(a.build_model()))
    ['net.1.linear.weight']
    >>> b = COINAdapter(width=16, layers=2, tensor_bits=[16, 16, 6, 16, 8, 16])
    >>> b.storage("net.1.linear.weight", None), b.storage("net.1.linear.bias", None)
    (('q', 6), ('h',))
    """

    name: ClassVar[str] = "coin"
    default_lr: ClassVar[float] = 1e-3
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-3

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the rate–distortion harness runs COIN (:mod:`sinr_adapters.framework.spec`): widths are the rate
        points."""
        return AdapterSpec(
            summary="COIN: a SIREN per image, stored in float16", rate="widths", rate_key="width", bits="bits",
            options=(Option("widths", int, [16, 32], "hidden widths (the rate points)", multiple=True, minimum=1,
                            aliases=("--widths",)),
                     Option("layers", int, 3, "sine layers (COIN's num_layers)", minimum=1, aliases=("--layers",))),
            build=lambda cls, o, width, ctx: cls(width=width, layers=o["layers"]))

    def __init__(self, *, width: int = 28, layers: int = 10, w0: float = 30.0, w0_initial: float = 30.0,
                 dim_in: int = 2, dim_out: int = 3, bits: int = 16,
                 tensor_bits: Sequence[int] | None = None) -> None:
        if int(width) < 1 or int(layers) < 1 or int(dim_in) < 1 or int(dim_out) < 1:
            raise ValueError("width, layers, dim_in and dim_out must be >= 1")
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16 (16: COIN's float16), got {bits}")
        if tensor_bits is not None:
            tensor_bits = tuple(int(b) for b in tensor_bits)
            if len(tensor_bits) != 2 * (int(layers) + 1) or not all(2 <= b <= 16 for b in tensor_bits):
                raise ValueError(f"tensor_bits must hold 2 * (layers + 1) = {2 * (int(layers) + 1)} bit widths in "
                                 f"2..16 (16: float16), got {tensor_bits}")
            if int(bits) != 16:
                raise ValueError("give bits (the hidden matrices) or tensor_bits (every tensor), not both")
        self.tensor_bits = tensor_bits
        self.bits = int(bits)
        self.width = int(width)
        self.layers = int(layers)
        self.w0 = float(w0)
        self.w0_initial = float(w0_initial)
        self.dim_in = int(dim_in)
        self.dim_out = int(dim_out)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"width": self.width, "layers": self.layers, "w0": self.w0,
                               "w0_initial": self.w0_initial, "dim_in": self.dim_in, "dim_out": self.dim_out}
        if self.bits != 16:  # COIN as published writes no such key: its streams stay as they were
            cfg["bits"] = self.bits
        if self.tensor_bits is not None:
            cfg["tensor_bits"] = list(self.tensor_bits)
        return cfg

    def stored_names(self) -> list[str]:
        """The stored tensors' names in state_dict order (the order of ``tensor_bits``)."""
        names = [f"net.{i}.linear.{p}" for i in range(self.layers) for p in ("weight", "bias")]
        return names + ["last_layer.linear.weight", "last_layer.linear.bias"]

    def build_model(self) -> COINSiren:
        return COINSiren(self.dim_in, self.width, self.dim_out, self.layers, self.w0, self.w0_initial)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.build_model().parameters())

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        """The image on COIN's grid (:func:`coin_grid`), values in [0, 1]."""
        return image_signal(image, channels=self.dim_out, grid=coin_grid, name=name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        return grid_of(coin_grid, shape, axes=2, method="COIN")

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        return [f"net.{i}.linear.weight" for i in range(1, self.layers)]

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        # COIN: model.half(). With bits < 16 (a baseline, not COIN as published) the tensors SINR would
        # code are stored as per-tensor uniform integers instead, everything else stays float16.
        if self.tensor_bits is not None:
            b = self.tensor_bits[self.stored_names().index(name)]
            return ("h",) if b == 16 else ("q", b)
        if self.bits < 16 and name in self.sinr_tensor_names(None):
            return ("q", self.bits)
        return ("h",)

    # ---- stream checks (decoding) ------------------------------------------------------------------
    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(2 * (layers + 1), parameters)`` of a stream's COIN network, counted without building it
        (``1 / MAX_FREQUENCY <= w0 <= MAX_FREQUENCY``, ``|w0_initial| <= MAX_FREQUENCY``, sizes ``>= 1``)."""
        width, layers = config_number(config, "width", lo=1), config_number(config, "layers", lo=1)
        dim_in, dim_out = config_number(config, "dim_in", lo=1), config_number(config, "dim_out", lo=1)
        config_number(config, "w0", lo=1 / MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "w0_initial", lo=-MAX_FREQUENCY, hi=MAX_FREQUENCY)
        if "tensor_bits" in config:
            tb = config["tensor_bits"]
            if not isinstance(tb, list) or len(tb) != 2 * (layers + 1):
                raise StreamError(f"stream configuration: tensor_bits must hold 2 * (layers + 1) = "
                                  f"{2 * (layers + 1)} entries")
            for i in range(len(tb)):
                config_number({f"tensor_bits[{i}]": tb[i]}, f"tensor_bits[{i}]", lo=2, hi=16)
                if not isinstance(tb[i], int):
                    raise StreamError(f"stream configuration: tensor_bits[{i}]={tb[i]!r} is not an integer")
            if config.get("bits", 16) != 16:
                raise StreamError("stream configuration: both bits and tensor_bits are set")
        params = (dim_in + 1) * width + (layers - 1) * (width + 1) * width + (width + 1) * dim_out
        return 2 * (layers + 1), params

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """A COIN stream holds an ``(H, W, dim_out)`` image, ``H >= 2``, rendered from 2-D coordinates."""
        if len(shape) != 3 or shape[0] < 2 or shape[2] != config["dim_out"] or config["dim_in"] != 2:
            raise StreamError(f"COIN streams hold (H >= 2, W, dim_out) images of a network with dim_in=2; got "
                              f"shape {shape} with dim_in={config['dim_in']}, dim_out={config['dim_out']}")


def load_coin_checkpoint(source: str | os.PathLike[str] | Mapping[str, torch.Tensor], *, w0: float = 30.0,
                         w0_initial: float = 30.0, strict: bool = True
                         ) -> tuple[COINAdapter, COINSiren, LoadReport]:
    """Load a checkpoint in the official COIN layout (``best_model_{i}.pt``, a plain fp32 state_dict).

    The architecture (width, number of sine layers, input and output dimension) is read from the tensor
    shapes; ``w0`` and ``w0_initial`` are not stored by COIN and default to its 30.

    Parameters
    ----------
    source : path or mapping
        A file readable by ``torch.load(weights_only=True)`` (no unpickling of code), or a state_dict.
    strict : bool, default True
        Raise on keys the model lacks or does not have (``report.missing`` / ``report.unexpected``).

    Returns
    -------
    (COINAdapter, COINSiren, LoadReport)
    """
    sd = read_state_dict(source)
    if "net.0.linear.weight" not in sd or "last_layer.linear.weight" not in sd:
        raise ValueError("not a COIN state_dict: expected keys 'net.0.linear.weight' and "
                         "'last_layer.linear.weight' (EmilienDupont/coin siren.Siren)")
    first = sd["net.0.linear.weight"]
    last = sd["last_layer.linear.weight"]
    if first.ndim != 2 or last.ndim != 2:
        raise ValueError("COIN weight tensors must be 2-D")
    width, dim_in = first.shape
    dim_out = last.shape[0]
    layers = 0
    while f"net.{layers}.linear.weight" in sd:
        layers += 1
    adapter = COINAdapter(width=width, layers=layers, w0=w0, w0_initial=w0_initial, dim_in=dim_in,
                          dim_out=dim_out)
    model = adapter.build_model()
    report = map_state_dict(model, sd, strict=strict, what="COIN")
    return adapter, model, report
