"""INRIC (Strümpler et al. 2022, "Implicit Neural Representations for Image Compression") with and without SINR.

The method: a SIREN (``sin(30 x)``) on a NeRF-style positional encoding of the coordinates is fitted to
one image (values in [-1, 1]), optionally starting from a meta-learned initialisation ``theta0`` with an
L1 penalty on the update ``theta - theta0``; then every weight and bias tensor (or update tensor) is
quantized with a per-tensor symmetric uniform quantizer (7-8 bits), fine-tuned quantization-aware, and
the integers are Brotli-coded; ``bpp = 8 * bytes / pixels``.

Conventions kept from the public code (YannickStruempler/inr_based_compression, MIT; read, not copied):

- coordinates ``linspace(-1, 1)`` per axis; values ``2 x - 1``; PSNR on ``clip(out / 2 + 0.5)``;
- encoding ``[x, sin(s^i pi x_j), cos(s^i pi x_j)]`` with ``ff_dims = L`` frequencies and
  ``encoding_scale = s`` (16 and 1.4 in its image runs: 66 inputs);
- ``hidden_layers`` hidden-to-hidden layers (``hidden_layers + 1`` sine layers), state_dict keys
  ``net.net.{i}.0.weight`` / ``net.net.{i}.0.bias`` for ``i = 0 .. hidden_layers + 1`` (the last linear);
- the meta-learned variant stores ``theta - theta0``.

Differences, stated: no AdaRound (our quantization-aware fine-tuning starts from plain rounding); the
meta-learned initialisation is trained by Reptile (first-order) rather than MAML with per-parameter
learning rates; Brotli rather than its arithmetic coder; weights and biases share one quantizer bit width.

With SINR the hidden-to-hidden weight(-update) matrices ``net.net.1 .. net.net.{hidden_layers}`` are
SINR-coded (rows = neurons) before quantization; the rest is stored as INRIC stores it.

``theta0`` is stored without pickle: an ``.npz`` (``allow_pickle=False``) with one array per tensor and
the configuration as JSON bytes under ``__config__``; streams record a fingerprint of it and refuse to
decode with another.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError

from . import meta_init, nets
from .checkpoints import LoadReport, map_state_dict, read_state_dict
from .container import MAX_FREQUENCY, config_number
from .grids import linspace_grid
from .inr import INRAdapter
from .signals import Signal, image_signal

__all__ = ["INRICAdapter", "INRICNet", "load_inric_checkpoint"]


class _FCBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden_features: int, num_hidden_layers: int,
                 w0: float) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Linear(in_features, hidden_features), nets.Sine(w0))]
        layers += [nn.Sequential(nn.Linear(hidden_features, hidden_features), nets.Sine(w0))
                   for _ in range(num_hidden_layers)]
        layers.append(nn.Sequential(nn.Linear(hidden_features, out_features)))
        for i, layer in enumerate(layers):
            # SIREN weights; biases keep torch's default U(-1/sqrt(n), 1/sqrt(n)), as INRIC's do
            nets.siren_uniform_(layer[0], w0=w0, is_first=i == 0, bias=False)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class INRICNet(nn.Module):
    """INRIC's network: positional encoding -> ``hidden_layers + 1`` sine layers -> linear output."""

    def __init__(self, *, in_features: int = 2, out_features: int = 3, hidden_features: int = 32,
                 hidden_layers: int = 3, ff_dims: int = 16, encoding_scale: float = 1.4, w0: float = 30.0) -> None:
        super().__init__()
        self.positional_encoding = nets.PositionalEncoding(in_features, num_frequencies=ff_dims,
                                                           scale=encoding_scale)
        self.net = _FCBlock(self.positional_encoding.out_dim, out_features, hidden_features, hidden_layers, w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.positional_encoding(x))


class INRICAdapter(INRAdapter):
    """INRIC, end to end (see the module docstring).

    Parameters
    ----------
    hidden_features : int, default 32
        Width (INRIC's ``hidden_dims``).
    hidden_layers : int, default 3
        Hidden-to-hidden layers (INRIC's ``hidden_layers``; the network has ``hidden_layers + 1`` sine
        layers, so COIN's ``layers = L`` matches ``hidden_layers = L - 1``).
    ff_dims : int, default 16
        Frequencies ``L`` of the positional encoding.
    encoding_scale : float, default 1.4
        ``sigma`` of the positional encoding.
    w0 : float, default 30
    in_features, out_features : int, default 2, 3
    bits : int, default 8
        Per-tensor quantizer bits (INRIC uses 7-8).
    l1 : float, default 1e-6
        Weight of ``sum |theta - theta0|`` (``theta0 = 0`` without a meta-learned init) added to the MSE
        while fitting.
    init : mapping of str to tensor, path, or None
        The meta-learned initialisation ``theta0`` (a state_dict of :class:`INRICNet`, or an ``.npz``
        written by :meth:`save_init`).

    Examples
    --------
    >>> a = INRICAdapter(hidden_features=16, hidden_layers=2, ff_dims=4)
    >>> a.sinr_tensor_names(a.build_model())
    ['net.net.1.0.weight', 'net.net.2.0.weight']
    """

    name: ClassVar[str] = "inric"
    default_lr: ClassVar[float] = 1e-3
    default_finetune_lr: ClassVar[float] = 1e-6
    default_sinr_lr: ClassVar[float] = 1e-3

    @classmethod
    def describe(cls):
        """How the rate–distortion harness runs INRIC (:mod:`sinr_adapters.spec`): widths are the rate
        points; with ``meta_steps > 0`` θ0 is meta-learned per width on held-out images first."""
        from .spec import AdapterSpec, Option, Prepared

        def prepare(adapter, o, ctx):
            if o["meta_steps"] < 1:
                return Prepared(adapter)
            meta = adapter.meta_learn(ctx.held_out_images(), outer_steps=o["meta_steps"], device=ctx.device,
                                      seed=ctx.seed, progress=ctx.progress)
            return Prepared(meta, {"meta_images": list(ctx.held_out), "meta_steps": o["meta_steps"]},
                            save=meta.save_init, message=f"meta-learned theta0 on {list(ctx.held_out)}")

        return AdapterSpec(
            summary="INRIC: SIREN on a positional encoding, per-tensor uniform integers + Brotli", rate="widths",
            rate_key="width", bits="bits", shared_tag="init", prepare=prepare,
            uses_held_out=lambda o: o["meta_steps"] > 0,
            options=(Option("widths", int, [16, 32], "hidden widths (the rate points)", multiple=True, minimum=1,
                            aliases=("--widths",)),
                     Option("layers", int, 3, "sine layers (hidden_layers = layers - 1)", minimum=1,
                            aliases=("--layers",)),
                     Option("bits", int, 8, "quantizer bits", minimum=2, maximum=16),
                     Option("ff_dims", int, 16, "positional-encoding frequencies", minimum=0),
                     Option("encoding_scale", float, 1.4, "positional-encoding scale"),
                     Option("l1", float, 1e-6, "L1 weight on theta - theta0", minimum=0),
                     Option("meta_steps", int, 0, "Reptile steps of the meta-learned init on held-out images "
                                                  "(0: none)", minimum=0)),
            build=lambda cls, o, width, ctx: cls(hidden_features=width, hidden_layers=o["layers"] - 1,
                                                 ff_dims=o["ff_dims"], encoding_scale=o["encoding_scale"],
                                                 bits=o["bits"], l1=o["l1"]))

    def __init__(self, *, hidden_features: int = 32, hidden_layers: int = 3, ff_dims: int = 16,
                 encoding_scale: float = 1.4, w0: float = 30.0, in_features: int = 2, out_features: int = 3,
                 bits: int = 8, l1: float = 1e-6,
                 init: Mapping[str, torch.Tensor] | str | os.PathLike | None = None) -> None:
        if int(hidden_features) < 1 or int(hidden_layers) < 0 or int(ff_dims) < 0:
            raise ValueError("hidden_features must be >= 1, hidden_layers and ff_dims >= 0")
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        if float(l1) < 0:
            raise ValueError("l1 must be >= 0")
        self.hidden_features = int(hidden_features)
        self.hidden_layers = int(hidden_layers)
        self.ff_dims = int(ff_dims)
        self.encoding_scale = float(encoding_scale)
        self.w0 = float(w0)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.bits = int(bits)
        self.l1 = float(l1)
        self._init: dict[str, torch.Tensor] | None = None
        if init is not None:
            self._init = self._check_init(meta_init.read_init(init) if not isinstance(init, Mapping) else dict(init))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"INRICAdapter({args}{', init=<theta0>' if self._init is not None else ''})"

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"hidden_features": self.hidden_features, "hidden_layers": self.hidden_layers,
                "ff_dims": self.ff_dims, "encoding_scale": self.encoding_scale, "w0": self.w0,
                "in_features": self.in_features, "out_features": self.out_features, "bits": self.bits,
                "l1": self.l1}

    def with_config(self, config: Mapping[str, Any]) -> INRICAdapter:
        return INRICAdapter(**config, init=self._init)

    def build_model(self) -> INRICNet:
        model = INRICNet(in_features=self.in_features, out_features=self.out_features,
                         hidden_features=self.hidden_features, hidden_layers=self.hidden_layers,
                         ff_dims=self.ff_dims, encoding_scale=self.encoding_scale, w0=self.w0)
        if self._init is not None:
            model.load_state_dict(self._init, strict=True)
        return model

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        """The image on INRIC's grid (:func:`~sinr_adapters.grids.linspace_grid`), values ``2 x - 1``."""
        return image_signal(image, channels=self.out_features, grid=linspace_grid, value_range=(-1.0, 1.0),
                            name=name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        if len(shape) != self.in_features:
            raise ValueError(f"grid shape {tuple(shape)} does not have {self.in_features} axes")
        return linspace_grid(*shape)

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        return values / 2.0 + 0.5

    def sinr_tensor_names(self, model: nn.Module) -> list[str]:
        return [f"net.net.{i}.0.weight" for i in range(1, self.hidden_layers + 1)]

    def storage(self, name: str, tensor: torch.Tensor) -> tuple:
        return ("q", self.bits)

    def reference(self) -> dict[str, torch.Tensor] | None:
        return self._init

    # ---- stream checks (decoding) ------------------------------------------------------------------
    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(2 * (hidden_layers + 2), parameters)`` of a stream's INRIC network, counted without building
        it (``1 / MAX_FREQUENCY <= w0 <= MAX_FREQUENCY``, the encoding's highest frequency finite in
        float32, sizes in range)."""
        width = config_number(config, "hidden_features", lo=1)
        hidden = config_number(config, "hidden_layers", lo=0)
        ff_dims = config_number(config, "ff_dims", lo=0)
        d_in, d_out = config_number(config, "in_features", lo=1), config_number(config, "out_features", lo=1)
        config_number(config, "w0", lo=1 / MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "bits", lo=2, hi=16)
        scale = abs(config_number(config, "encoding_scale"))
        if ff_dims > 1 and scale > 1 and (ff_dims - 1) * math.log(scale) + math.log(math.pi) > math.log(1e30):
            raise StreamError(f"stream configuration: encoding_scale={config['encoding_scale']} with ff_dims="
                              f"{ff_dims} gives frequencies beyond float32")
        enc = d_in * (1 + 2 * ff_dims)
        params = (enc + 1) * width + hidden * (width + 1) * width + (width + 1) * d_out
        return 2 * (hidden + 2), params

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """An INRIC stream holds a signal of ``in_features`` grid axes and ``out_features`` channels."""
        if len(shape) != config["in_features"] + 1 or shape[-1] != config["out_features"]:
            raise StreamError(f"INRIC streams hold signals of in_features={config['in_features']} axes and "
                              f"out_features={config['out_features']} channels, got shape {shape}")

    def fit_regularizer(self, model: nn.Module):
        if self.l1 <= 0:
            return None
        params = dict(model.named_parameters())
        ref = None if self._init is None else {k: self._init[k].to(p.device) for k, p in params.items()}

        def l1() -> torch.Tensor:
            total = 0.0
            for k, p in params.items():
                total = total + ((p - ref[k]) if ref is not None else p).abs().sum()
            return self.l1 * total

        return l1

    # ---- meta-learned initialisation ---------------------------------------------------------------
    @property
    def init(self) -> dict[str, torch.Tensor] | None:
        """``theta0`` (a copy), or ``None``."""
        return None if self._init is None else {k: v.clone() for k, v in self._init.items()}

    def _check_init(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        model = INRICNet(in_features=self.in_features, out_features=self.out_features,
                         hidden_features=self.hidden_features, hidden_layers=self.hidden_layers,
                         ff_dims=self.ff_dims, encoding_scale=self.encoding_scale, w0=self.w0)
        map_state_dict(model, sd, strict=True, what="INRIC initialisation")
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}

    def save_init(self, path: str | os.PathLike) -> None:
        """Write ``theta0`` and the configuration to an ``.npz`` (no pickle)."""
        if self._init is None:
            raise ValueError("this adapter has no meta-learned initialisation to save")
        meta_init.save_init(path, self._init, self.config())

    @classmethod
    def from_init_file(cls, path: str | os.PathLike) -> INRICAdapter:
        """The adapter (configuration and ``theta0``) saved by :meth:`save_init`."""
        return cls(**meta_init.read_init_config(path, "INRICAdapter.save_init"), init=path)

    def meta_learn(self, images: Sequence[np.ndarray], *, outer_steps: int = 200, inner_steps: int = 10,
                   inner_lr: float = 1e-3, outer_lr: float = 0.1, device: str = "auto", seed: int = 0,
                   progress: bool | None = None) -> INRICAdapter:
        """Learn ``theta0`` over ``images`` (same size) by Reptile (first-order meta-learning).

        Each outer step takes the next image, runs ``inner_steps`` Adam steps from ``theta0`` on it, and
        moves ``theta0`` by ``outer_lr * (theta - theta0)``. Returns a new adapter holding ``theta0``.
        """
        if not images:
            raise ValueError("meta_learn needs at least one image")
        dev = nets.resolve_device(device)
        signals = [self.signal_from_image(img).to(dev) for img in images]
        if len({s.shape for s in signals}) != 1:
            raise ValueError("meta_learn needs images of one size")

        def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return torch.mean((prediction - target) ** 2)

        theta0 = meta_init.reptile(self.build_model, signals, mse, outer_steps=outer_steps,
                                   inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr, device=dev,
                                   seed=seed, desc="inric meta-learn", progress=progress)
        return INRICAdapter(**self.config(), init=theta0)

def load_inric_checkpoint(source: str | os.PathLike | Mapping[str, torch.Tensor], *, encoding_scale: float = 1.4,
                          w0: float = 30.0, in_features: int = 2, bits: int = 8,
                          init: Mapping[str, torch.Tensor] | str | os.PathLike | None = None,
                          strict: bool = True) -> tuple[INRICAdapter, INRICNet, LoadReport]:
    """Load a checkpoint in the official INRIC layout (``checkpoints/model_best_.pth``, a state_dict).

    Width, ``hidden_layers``, ``ff_dims`` and the output channels are read from the tensor shapes
    (``ff_dims`` from the first layer's fan-in ``in_features * (1 + 2 * ff_dims)``);
    ``encoding_scale`` is not stored there (it is in ``FLAGS.yml``) and defaults to INRIC's 1.4.
    """
    sd = read_state_dict(source)
    if "net.net.0.0.weight" not in sd:
        raise ValueError("not an INRIC state_dict: expected key 'net.net.0.0.weight' "
                         "(inr_based_compression modules.INRNet)")
    n = 0
    while f"net.net.{n}.0.weight" in sd:
        n += 1
    if n < 2:
        raise ValueError("an INRIC network has at least two linear layers")
    first = sd["net.net.0.0.weight"]
    last = sd[f"net.net.{n - 1}.0.weight"]
    width, fan_in = first.shape
    if fan_in % in_features or (fan_in // in_features - 1) % 2:
        raise ValueError(f"first-layer fan-in {fan_in} is not in_features * (1 + 2 * ff_dims) for "
                         f"in_features={in_features}")
    ff_dims = (fan_in // in_features - 1) // 2
    adapter = INRICAdapter(hidden_features=width, hidden_layers=n - 2, ff_dims=ff_dims,
                           encoding_scale=encoding_scale, w0=w0, in_features=in_features,
                           out_features=last.shape[0], bits=bits, init=init)
    model = INRICNet(in_features=in_features, out_features=last.shape[0], hidden_features=width,
                     hidden_layers=n - 2, ff_dims=ff_dims, encoding_scale=encoding_scale, w0=w0)
    report = map_state_dict(model, sd, strict=strict, what="INRIC")
    return adapter, model, report
