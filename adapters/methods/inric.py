"""INRIC (Strümpler et al. 2022, "Implicit Neural Representations for Image Compression") with and without SINR.

The method, as its paper describes it:

1. a SIREN (``sin(30 x)``) on a NeRF-style positional encoding of the coordinates is fitted to one image
   (values in [-1, 1]), optionally from a meta-learned initialisation ``theta0``: then fitting first
   runs the meta-learned inner loop (a few SGD steps with a learned learning rate per parameter and
   step, :func:`sinr_adapters.rate_coding.meta_init.inner_loop`), then Adam with an L1 penalty on
   ``theta - theta0``;
2. every weight and bias tensor (or update tensor ``theta - theta0``) gets a per-tensor symmetric uniform
   quantizer (7-8 bits); the weights' rounding is learned by AdaRound (:mod:`sinr_adapters.rate_coding.adaround`);
3. quantization-aware retraining (the harness's fine-tuning steps, learning rate 1e-6);
4. the integers are entropy-coded: by the core's static rANS (:mod:`sinr_codecs.rans`, an arithmetic
   coder of the same order-0 model as the paper's), or by Brotli (the paper's other option);
   ``bpp = 8 * bytes / pixels``.

``theta0`` is learned by MAML with per-parameter learning rates (Meta-SGD, one rate per parameter and
inner step as in the public code; :func:`sinr_adapters.rate_coding.meta_init.meta_sgd`) on held-out images, or by
Reptile (``meta="reptile"``, first-order, without learned rates). Each step can be switched off
(``adaround=False``, ``entropy="brotli"``, ``meta="reptile"``, no fine-tuning steps) to measure what it buys.

Conventions kept from the public code (YannickStruempler/inr_based_compression, MIT; read, not copied):

- coordinates ``linspace(-1, 1)`` per axis; values ``2 x - 1``; PSNR on ``clip(out / 2 + 0.5)``;
- encoding ``[x, sin(s^i pi x_j), cos(s^i pi x_j)]`` with ``ff_dims = L`` frequencies and
  ``encoding_scale = s`` (16 and 1.4 in its image runs: 66 inputs);
- ``hidden_layers`` hidden-to-hidden layers (``hidden_layers + 1`` sine layers), state_dict keys
  ``net.net.{i}.0.weight`` / ``net.net.{i}.0.bias`` for ``i = 0 .. hidden_layers + 1`` (the last linear);
- the meta-learned variant stores ``theta - theta0``; its inner loop has 3 steps, learning rates
  starting at 1e-5, outer Adam at 5e-5 (its defaults; our outer rate is 1e-3, for runs of a few
  hundred outer steps, see :meth:`INRICAdapter.meta_learn`).

Differences, stated: AdaRound optimises the image MSE of the whole quantized network at once (AIMET,
which the paper uses, optimises each layer's output in turn) and is applied to the weight matrices, the
biases being rounded to nearest as in AIMET; meta-learning sees a few held-out images for a few hundred
outer steps (not DIV2K / CelebA), one image per step; weights and biases share one quantizer bit width.

With SINR the hidden-to-hidden weight(-update) matrices ``net.net.1 .. net.net.{hidden_layers}`` are
SINR-coded (rows = neurons) before quantization; the rest is stored as INRIC stores it.

``theta0`` (and Meta-SGD's learning rates) is stored without pickle: an ``.npz``
(``allow_pickle=False``) with one array per tensor and the configuration as JSON bytes under
``__config__``; streams record a fingerprint of ``theta0`` and refuse to decode with another.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import resolve_device

from ..framework import nets, records, training
from ..framework.checkpoints import LoadReport, map_state_dict, read_state_dict
from ..framework.container import MAX_FREQUENCY, config_number
from ..framework.finetune import CompressionSetup
from ..framework.grids import grid_of, linspace_grid
from ..framework.inr import INRAdapter
from ..framework.signals import Signal, image_signal
from ..framework.spec import AdapterSpec, Context, Option, Prepared
from ..rate_coding import meta_init
from ..rate_coding.adaround import adaround
from ..rate_coding.meta_init import MetaInitialised

__all__ = ["ENTROPY_CODERS", "META_METHODS", "INRICAdapter", "INRICNet", "load_inric_checkpoint"]

ENTROPY_CODERS = ("rans", "brotli")
"""Coders of the integer section: the core's rANS (the paper's arithmetic coding) or Brotli."""

META_METHODS = ("meta-sgd", "reptile")
"""How :meth:`INRICAdapter.meta_learn` learns ``theta0``."""


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((prediction - target) ** 2)


class _FCBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden_features: int, num_hidden_layers: int,
                 w0: float) -> None:
        super().__init__()
        dims = [in_features] + [hidden_features] * (num_hidden_layers + 1) + [out_features]
        linears = [nn.Linear(a, b) for a, b in itertools.pairwise(dims)]
        for i, linear in enumerate(linears):
            # SIREN weights; biases keep torch's default U(-1/sqrt(n), 1/sqrt(n)), as INRIC's do
            nets.siren_uniform_(linear, w0=w0, is_first=i == 0, bias=False)
        self.net = nn.Sequential(*[nn.Sequential(linear, nets.Sine(w0)) for linear in linears[:-1]],
                                 nn.Sequential(linears[-1]))

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


class INRICAdapter(MetaInitialised, INRAdapter):
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
    entropy : {"rans", "brotli"}, default "rans"
        Coder of the quantized integers (written in the stream's configuration).
    adaround : bool, default True
        Learn the weights' rounding by AdaRound before the fine-tuning (``False``: nearest rounding).
    adaround_steps : int, default 300
        AdaRound's Adam steps (full batch).
    adaround_reg : float, default 1.0
        Weight of AdaRound's rounding regulariser, relative to the MSE with nearest rounding.
    init : mapping of str to tensor, path, or None
        The meta-learned initialisation ``theta0`` (a state_dict of :class:`INRICNet`, or an ``.npz``
        written by :meth:`save_init`, whose learning rates are read too).
    inner_lrs : mapping of str to tensor, or None
        Meta-SGD's learning rates (name -> ``(steps, *shape)``): fitting from ``theta0`` runs those inner
        steps first. Only with ``init``.

    Only ``entropy`` and the architecture matter to a decoder; ``adaround*`` and ``l1`` shape how a
    stream is made (``adaround*`` is not written to it; ``l1`` is, as a record of the fit).

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
    stream_config_defaults: ClassVar[dict[str, Any]] = {"entropy": "brotli"}  # streams before rANS

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the rate–distortion harness runs INRIC (:mod:`sinr_adapters.framework.spec`): widths are the rate
        points; with ``meta_steps > 0`` θ0 is meta-learned per width on held-out images first. The
        defaults are the paper's pipeline; ``adaround=false``, ``entropy=brotli`` and ``meta=reptile``
        switch its steps off one by one (``--finetune-steps 0``: no quantization-aware retraining)."""
        def prepare(adapter: INRICAdapter, o: Mapping[str, Any], ctx: Context) -> Prepared:
            if o["meta_steps"] < 1:
                return Prepared(adapter)
            meta = adapter.meta_learn(ctx.held_out_signals(), outer_steps=o["meta_steps"], method=o["meta"],
                                      inner_steps=o["meta_inner_steps"], device=ctx.device, seed=ctx.seed,
                                      progress=ctx.progress)
            return Prepared(meta, {"meta_images": list(ctx.held_out), "meta_steps": o["meta_steps"],
                                   "meta": o["meta"]},
                            save=meta.save_init, message=f"meta-learned theta0 ({o['meta']}) on {list(ctx.held_out)}")

        return AdapterSpec(
            summary="INRIC: SIREN on a positional encoding, AdaRound + QAT, integers rANS-coded", rate="widths",
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
                     Option("adaround", bool, True, "AdaRound the weights before the fine-tuning (false: nearest)"),
                     Option("adaround_steps", int, 300, "AdaRound's Adam steps", minimum=0),
                     Option("entropy", str, "rans", "coder of the quantized integers", choices=ENTROPY_CODERS),
                     Option("meta_steps", int, 0, "outer steps of the meta-learned init on held-out images "
                                                  "(0: none)", minimum=0),
                     Option("meta", str, "meta-sgd", "how theta0 is meta-learned", choices=META_METHODS),
                     Option("meta_inner_steps", int, 3, "inner-loop steps of the meta-learning", minimum=1)),
            build=lambda cls, o, width, ctx: cls(hidden_features=width, hidden_layers=o["layers"] - 1,
                                                 ff_dims=o["ff_dims"], encoding_scale=o["encoding_scale"],
                                                 bits=o["bits"], l1=o["l1"], entropy=o["entropy"],
                                                 adaround=o["adaround"], adaround_steps=o["adaround_steps"]))

    def __init__(self, *, hidden_features: int = 32, hidden_layers: int = 3, ff_dims: int = 16,
                 encoding_scale: float = 1.4, w0: float = 30.0, in_features: int = 2, out_features: int = 3,
                 bits: int = 8, l1: float = 1e-6, entropy: str = "rans", adaround: bool = True,
                 adaround_steps: int = 300, adaround_reg: float = 1.0,
                 init: Mapping[str, torch.Tensor] | str | os.PathLike[str] | None = None,
                 inner_lrs: Mapping[str, torch.Tensor] | None = None) -> None:
        if int(hidden_features) < 1 or int(hidden_layers) < 0 or int(ff_dims) < 0:
            raise ValueError("hidden_features must be >= 1, hidden_layers and ff_dims >= 0")
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        if float(l1) < 0:
            raise ValueError("l1 must be >= 0")
        if entropy not in ENTROPY_CODERS:
            raise ValueError(f"entropy must be one of {ENTROPY_CODERS}, got {entropy!r}")
        if int(adaround_steps) < 0 or float(adaround_reg) < 0:
            raise ValueError("adaround_steps and adaround_reg must be >= 0")
        self.hidden_features = int(hidden_features)
        self.hidden_layers = int(hidden_layers)
        self.ff_dims = int(ff_dims)
        self.encoding_scale = float(encoding_scale)
        self.w0 = float(w0)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.bits = int(bits)
        self.l1 = float(l1)
        self.entropy = str(entropy)
        self.adaround = bool(adaround)
        self.adaround_steps = int(adaround_steps)
        self.adaround_reg = float(adaround_reg)
        if init is not None:
            self._init = self.load_init(init)
            if inner_lrs is None and not isinstance(init, Mapping):
                inner_lrs = meta_init.read_lrs(init)
        if inner_lrs is not None:
            if self._init is None:
                raise ValueError("inner_lrs need the meta-learned initialisation (init) they were learned with")
            self._lrs = self._check_lrs(inner_lrs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in {**self.config(), **self.encoder_options()}.items())
        return f"INRICAdapter({args}{', init=<theta0>' if self._init is not None else ''})"

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"hidden_features": self.hidden_features, "hidden_layers": self.hidden_layers,
                "ff_dims": self.ff_dims, "encoding_scale": self.encoding_scale, "w0": self.w0,
                "in_features": self.in_features, "out_features": self.out_features, "bits": self.bits,
                "l1": self.l1, "entropy": self.entropy}

    def encoder_options(self) -> dict[str, Any]:
        """The options that shape how a stream is made but are not written to it (AdaRound's)."""
        return {"adaround": self.adaround, "adaround_steps": self.adaround_steps, "adaround_reg": self.adaround_reg}

    def with_config(self, config: Mapping[str, Any]) -> INRICAdapter:
        return INRICAdapter(**{**self.encoder_options(), **config}, init=self._init, inner_lrs=self._lrs)

    def bare_model(self) -> INRICNet:
        return INRICNet(in_features=self.in_features, out_features=self.out_features,
                        hidden_features=self.hidden_features, hidden_layers=self.hidden_layers,
                        ff_dims=self.ff_dims, encoding_scale=self.encoding_scale, w0=self.w0)

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        """The image on INRIC's grid (:func:`~sinr_adapters.framework.grids.linspace_grid`), values ``2 x - 1``."""
        return image_signal(image, channels=self.out_features, grid=linspace_grid, value_range=(-1.0, 1.0),
                            name=name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        return grid_of(linspace_grid, shape, axes=self.in_features, method="INRIC")

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        return values / 2.0 + 0.5

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        return [f"net.net.{i}.0.weight" for i in range(1, self.hidden_layers + 1)]

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        return ("q", self.bits)

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
        if config["entropy"] not in ENTROPY_CODERS:
            raise StreamError(f"stream configuration: entropy {config['entropy']!r} is not one of {ENTROPY_CODERS}")
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

    def fit_regularizer(self, model: nn.Module) -> Callable[[], torch.Tensor] | None:
        """``l1`` times the L1 norm of ``theta - theta0`` (``theta0 = 0`` without a meta-learned init)."""
        if self.l1 <= 0:
            return None
        params = dict(model.named_parameters())
        ref = None if self._init is None else {k: self._init[k].to(p.device) for k, p in params.items()}

        def l1() -> torch.Tensor:
            total = torch.zeros((), device=next(iter(params.values())).device)
            for k, p in params.items():
                total = total + ((p - ref[k]) if ref is not None else p).abs().sum()
            return self.l1 * total

        return l1

    def fit(self, signal: Signal, *, steps: int, lr: float | None = None, batch_size: int | None = None,
            device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: nn.Module | None = None) -> tuple[nn.Module, training.FitLog]:
        """Fit a network to ``signal`` (see :meth:`INRAdapter.fit`).

        With Meta-SGD's learning rates (:attr:`inner_lrs`) a fresh network starts at ``theta0`` and first
        takes the meta-learned inner loop (full batch, :func:`~sinr_adapters.rate_coding.meta_init.inner_loop`),
        then ``steps`` Adam steps with the L1 penalty on ``theta - theta0``, as INRIC's public code does.
        """
        if model is None and self._lrs is not None:
            dev = resolve_device(device)
            torch.manual_seed(seed)
            model = self.build_model().to(dev)
            sig = signal.to(dev)
            params = {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters()}
            lrs = {k: v.to(dev) for k, v in self._lrs.items()}
            fast = meta_init.inner_loop(model, params, lrs, sig.coords, sig.values, _mse)
            with torch.no_grad():
                for k, p in model.named_parameters():
                    p.copy_(fast[k])
        return super().fit(signal, steps=steps, lr=lr, batch_size=batch_size, device=device, progress=progress,
                           seed=seed, model=model)

    # ---- AdaRound and the integer section ------------------------------------------------------------
    def before_finetune(self, setup: CompressionSetup, forward: Callable[[torch.Tensor], torch.Tensor], signal: Signal,
                        info: dict[str, Any]) -> None:
        """AdaRound (:func:`sinr_adapters.rate_coding.adaround.adaround`) of the quantized weight matrices: their stored
        values are replaced by the learned rounding, which the fine-tuning then starts from. Adds
        ``adaround`` (MSE with nearest and with learned rounding, values flipped, seconds) to ``info``."""
        names = [k for k in setup.names if k not in setup.codes and setup.specs[k][0] == "q"
                 and setup.trainable[k].dim() >= 2]
        if not self.adaround or self.adaround_steps < 1 or not names:
            return
        t0 = time.perf_counter()

        def soft_forward(rounded: Mapping[str, torch.Tensor]) -> torch.Tensor:
            with_rounded = {k: rounded[k] + setup.reference[k] if setup.reference is not None else rounded[k]
                            for k in names}
            tensors = {k: with_rounded[k] if k in with_rounded else setup.tensor(k) for k in setup.names}
            return torch.func.functional_call(setup_model, tensors, (signal.coords,))

        setup_model = self.bare_model().to(setup.device)  # its own parameters are never used
        res = adaround(soft_forward, {k: setup.trainable[k].detach() for k in names},
                       {k: int(setup.specs[k][1]) for k in names}, signal.values, steps=self.adaround_steps,
                       reg=self.adaround_reg)
        with torch.no_grad():
            for k in names:
                # the stored values move into their learned rounding cell, as little as possible, so
                # that the fine-tuning can still move those near a cell's edge
                step = res.steps[k]
                q = torch.round(res.tensors[k] / step)
                lo, hi = (q - 0.5 + self._margin) * step, (q + 0.5 - self._margin) * step
                setup.trainable[k].copy_(torch.minimum(torch.maximum(setup.trainable[k], lo), hi))
        info["adaround"] = {"mse_nearest": res.mse_nearest, "mse_adaround": res.mse_adaround, "used": res.used,
                            "flipped": res.flipped, "seconds": time.perf_counter() - t0}

    _margin = 0.05  # of a step: how far inside its rounding cell a moved value lands

    def code_integers(self, ints: Sequence[np.ndarray]) -> bytes:
        """The integer section: one rANS stream over every stored integer, tensor after tensor
        (:func:`~sinr_adapters.framework.records.rans_integers`), or Brotli (``entropy``)."""
        return records.rans_integers(ints) if self.entropy == "rans" else records.brotli_integers(ints)

    def decode_integers(self, payload: bytes, tensors: Sequence[tuple[int, int]]) -> bytes:
        """Inverse of :meth:`code_integers`; rANS integers are checked to lie in their tensor's range."""
        if self.entropy == "rans":
            return records.unrans_integers(payload, tensors)
        return records.unbrotli_integers(payload, tensors)

    # ---- meta-learned initialisation ---------------------------------------------------------------
    @property
    def inner_lrs(self) -> dict[str, torch.Tensor] | None:
        """Meta-SGD's learning rates (a copy; name -> ``(steps, *shape)``), or ``None``."""
        return None if self._lrs is None else {k: v.clone() for k, v in self._lrs.items()}

    def _check_lrs(self, lrs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._init is None:
            raise ValueError("inner_lrs need the meta-learned initialisation (init) they were learned with")
        shapes = {k: tuple(v.shape) for k, v in self._init.items()}
        lrs = {k: torch.as_tensor(v).detach().to("cpu", torch.float32).clone() for k, v in lrs.items()}
        steps = {v.shape[0] if v.dim() else 0 for v in lrs.values()}
        if set(lrs) != set(shapes) or len(steps) != 1 or 0 in steps or any(
                tuple(v.shape[1:]) != shapes[k] for k, v in lrs.items()):
            raise ValueError("inner_lrs must hold one (steps, *shape) tensor per parameter of theta0, steps >= 1")
        if not all(bool(torch.isfinite(v).all()) for v in lrs.values()):
            raise ValueError("inner_lrs must be finite")
        return lrs

    def meta_learn(self, images: Sequence[np.ndarray], *, outer_steps: int = 200, method: str = "meta-sgd",
                   inner_steps: int | None = None, inner_lr: float | None = None, outer_lr: float | None = None,
                   first_order: bool = False, device: str = "auto", seed: int = 0,
                   progress: bool | None = None) -> INRICAdapter:
        """Learn ``theta0`` over ``images`` (same size); returns a new adapter holding it.

        Parameters
        ----------
        images : sequence of (H, W, C) arrays in [0, 1]
            Held-out images, one per outer step in turn.
        outer_steps : int, default 200
        method : {"meta-sgd", "reptile"}, default "meta-sgd"
            ``"meta-sgd"`` (the paper's): MAML with a learned learning rate per parameter and inner step
            (:func:`~sinr_adapters.rate_coding.meta_init.meta_sgd`; second-order unless ``first_order``); the
            adapter returned also holds the rates, which :meth:`fit` uses. ``"reptile"``: first-order
            Reptile (:func:`~sinr_adapters.rate_coding.meta_init.reptile`), Adam inner steps, no learned rates.
        inner_steps : int or None
            Inner-loop steps (None: 3 for Meta-SGD, as INRIC's code; 10 for Reptile).
        inner_lr : float or None
            Meta-SGD: the learning rates' starting value (None: 1e-5, INRIC's); Reptile: the inner Adam
            rate (None: 1e-3).
        outer_lr : float or None
            Meta-SGD: outer Adam rate on ``theta0`` and the rates (None: 1e-3, for a few hundred outer
            steps; INRIC's code uses 5e-5 over far more); Reptile: the interpolation step (None: 0.1).
        first_order : bool, default False
            Meta-SGD only: treat the inner gradients as constants.
        """
        if not images:
            raise ValueError("meta_learn needs at least one image")
        if method not in META_METHODS:
            raise ValueError(f"method must be one of {META_METHODS}, got {method!r}")
        dev = resolve_device(device)
        signals = [self.signal_from_image(img).to(dev) for img in images]
        if len({s.shape for s in signals}) != 1:
            raise ValueError("meta_learn needs images of one size")
        fresh = INRICAdapter(**self.config(), **self.encoder_options())
        if method == "reptile":
            theta0 = meta_init.reptile(fresh.build_model, signals, _mse, outer_steps=outer_steps,
                                       inner_steps=10 if inner_steps is None else inner_steps,
                                       inner_lr=1e-3 if inner_lr is None else inner_lr,
                                       outer_lr=0.1 if outer_lr is None else outer_lr, device=dev,
                                       seed=seed, desc="inric meta-learn", progress=progress)
            return INRICAdapter(**self.config(), **self.encoder_options(), init=theta0)
        theta0, lrs = meta_init.meta_sgd(fresh.build_model, signals, _mse, outer_steps=outer_steps,
                                         inner_steps=3 if inner_steps is None else inner_steps,
                                         init_lr=1e-5 if inner_lr is None else inner_lr,
                                         outer_lr=1e-3 if outer_lr is None else outer_lr, first_order=first_order,
                                         device=dev, seed=seed, desc="inric meta-learn", progress=progress)
        return INRICAdapter(**self.config(), **self.encoder_options(), init=theta0, inner_lrs=lrs)

def load_inric_checkpoint(source: str | os.PathLike[str] | Mapping[str, torch.Tensor], *, encoding_scale: float = 1.4,
                          w0: float = 30.0, in_features: int = 2, bits: int = 8,
                          init: Mapping[str, torch.Tensor] | str | os.PathLike[str] | None = None,
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
    model = adapter.bare_model()
    report = map_state_dict(model, sd, strict=strict, what="INRIC")
    return adapter, model, report
