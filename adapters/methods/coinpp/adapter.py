"""COIN++ (Dupont et al. 2022, "COIN++: Neural Compression Across Modalities") with and without SINR.

The method: one **base network** is meta-learned over a training set and shared by encoder and decoder
beforehand; a signal is then stored as a small **latent vector per patch**. The base network is a SIREN
whose hidden layers take per-signal *shift modulations* ``sin(w0 (W h + b + shift_i))``, the shifts of
all hidden layers produced from the latent by one linear map (``modulation_net``). Encoding a signal =
a few SGD steps on the latents from zero (the MAML inner loop), then uniform quantization of the latents
(clipped to ``+-std_range`` standard deviations of the training set's latents, ``bits`` bits) and
entropy coding. Large images are cut into ``patch`` x ``patch`` patches (32 x 32 in COIN++), each with
its own latent: the per-image payload is the ``(patches, latent_dim)`` latent matrix.

Conventions kept from the public code (EmilienDupont/coinpp, MIT; read, not copied):

- ``ModulatedSiren`` state_dict keys ``net.{i}.linear.weight/bias`` (``num_layers - 1`` sine layers),
  ``last_layer.linear.weight/bias`` (linear, ``+ 0.5`` on the output), and
  ``modulation_net.net.weight`` ``[dim_hidden * (num_layers - 1), latent_dim]`` + ``.bias``
  (``use_latent=1``, ``modulation_net_num_layers=1``, shift modulations only);
- patch-local coordinates ``linspace(0, 1)`` per axis; the image is padded at the bottom/right by
  reflection (by replication where the padding exceeds the image) to a whole number of patches;
- meta-learning: inner loop = SGD on the latents from zero, loss = per-patch MSE summed over patches;
  outer loop = Adam on the base network, loss = mean per-patch MSE after the inner loop (second order
  through the inner loop by default, ``first_order=True`` drops it);
- quantizer ``q = round(((clip((m - mean) / std, -r, r)) / (2 r) + 1/2) (2**bits - 1))`` with the mean
  and standard deviation of latents fitted to the training set (``calibrate``).

Differences, stated: COIN++ estimates the rate by a cross-entropy and writes no bitstream; we write one
(Brotli over the ``bits``-bit integers; ``bpp = 8 * len(stream) / pixels``, header included). The base
network and the quantizer's mean / std are shared beforehand and **not counted** per image (as in COIN++);
each stream holds a 4-byte fingerprint of them and refuses to decode with others.

With SINR (``compress(..., sinr=SINROptions(...))``) the latent matrix is SINR-coded with one vector per
patch (``layout="auto"`` means ``"rows"`` here) and its sparse values are fine-tuned through the core's
value quantizer (support fixed) for the same number of steps that the plain path spends on
quantization-aware fine-tuning of the latents through COIN++'s quantizer.

The meta-learned state is saved without pickle: an ``.npz`` (``allow_pickle=False``) with one float32
array per state_dict tensor and the configuration (architecture, inner-loop settings, quantizer
statistics, meta-learning record) as JSON bytes under ``__config__``. Official COIN++ checkpoints
(``model.pt = {"args": argparse.Namespace, "state_dict": ...}``) load with ``weights_only=True``, only
``argparse.Namespace`` allowed (:func:`load_coinpp_checkpoint`).

This module holds the adapter and the loader of official checkpoints; the networks and patches are in
:mod:`sinr_adapters.methods.coinpp.model`, the inner loop, meta-learning and calibration in
:mod:`sinr_adapters.methods.coinpp.meta`, the files in :mod:`sinr_adapters.methods.coinpp.files`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import brotli
import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import resolve_device

from ...framework import container
from ...framework.checkpoints import LoadReport, map_state_dict
from ...framework.container import MAX_FREQUENCY, Reader, config_number, fingerprint, inflate, write_section
from ...framework.grids import grid_of, pixel_grid
from ...framework.inr import INRAdapter
from ...framework.protocol import Decoded
from ...framework.records import sparse_tensor_from_bytes
from ...framework.signals import Signal, image_signal
from ...framework.sinr_options import SINROptions
from ...framework.spec import AdapterSpec, Context, Option, Prepared
from ...framework.training import FitLog
from .files import BASE_FORMAT, read_base_file, read_checkpoint, write_base_file
from .meta import calibrate_quantizer, inner_fit, meta_learn
from .model import COINppModel, ModulatedSiren, patch_coordinates, patch_grid, patchify

__all__ = ["COINppAdapter", "load_coinpp_checkpoint"]


# --------------------------------------------------------------------------------------------------
# the adapter
# --------------------------------------------------------------------------------------------------

def _patch_pair(patch: int | Sequence[int]) -> tuple[int, int]:
    sides = [] if isinstance(patch, bool) else [int(patch)] * 2 if isinstance(patch, (int, np.integer)) else \
        [int(p) for p in patch]
    if len(sides) != 2 or min(sides) < 2:
        raise ValueError(f"patch must be an int or a pair of ints >= 2, got {patch!r}")
    return sides[0], sides[1]


class COINppAdapter(INRAdapter):
    """COIN++, end to end (see the module docstring).

    Parameters
    ----------
    width : int, default 32
        Base network width (COIN++'s ``--dim_hidden``; 512 for Kodak).
    layers : int, default 5
        Layers including the output layer (COIN++'s ``--num_layers``; 10 for Kodak).
    latent_dim : int, default 32
        Latent length per patch (64 for Kodak).
    w0, w0_initial : float, default 30
        SIREN frequencies (50 for Kodak).
    dim_out : int, default 3
        Channels.
    patch : int or (int, int), default 32
        Patch size.
    bits : int, default 5
        Quantizer bits of the latents (COIN++: 5-6), 2..8.
    std_range : float, default 3
        Clipping range of the quantizer, in training-set standard deviations.
    base : mapping, path or None
        The meta-learned base network (state_dict of :class:`ModulatedSiren`), or ``None`` before
        :meth:`meta_learn`. A path is read with :meth:`from_base_file`'s format (use that classmethod to
        get the settings too).
    inner_steps : int, default 3
        SGD steps on the latents when fitting a signal (COIN++'s inner loop).
    inner_lr : float, default 1e-2
        Their learning rate.
    quantizer : (float, float) or None
        ``(mean, std)`` of training-set latents (set by :meth:`meta_learn` / :meth:`calibrate`).

    Examples
    --------
    >>> a = COINppAdapter(width=16, layers=3, latent_dim=8, patch=8)
    >>> a.config()["patch"], a.num_modulations
    ([8, 8], 32)
    """

    name: ClassVar[str] = "coinpp"
    default_lr: ClassVar[float] = 1e-2
    default_finetune_lr: ClassVar[float] = 3e-3
    default_sinr_lr: ClassVar[float] = 3e-3

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the rate–distortion harness runs COIN++ (:mod:`sinr_adapters.framework.spec`): latent lengths
        are the rate points, each with a base network meta-learned on held-out images (or one read from
        ``base``); an image is fitted by the inner loop, not by ``--steps``."""
        def points(cls: type[COINppAdapter], o: Mapping[str, Any], ctx: Context) -> list[tuple[int, COINppAdapter]]:
            if o["base"] is not None:
                a = cls.from_base_file(o["base"])
                return [(a.latent_dim, a)]
            return [(d, cls(width=o["width"], layers=o["layers"], latent_dim=d, patch=o["patch"], bits=o["bits"],
                            inner_steps=o["inner_steps"])) for d in o["latent_dims"]]

        def prepare(adapter: COINppAdapter, o: Mapping[str, Any], ctx: Context) -> Prepared:
            if o["base"] is not None:
                return Prepared(adapter, {"base_file": o["base"], "base_fingerprint": adapter.base_fingerprint()})
            meta = adapter.meta_learn(ctx.held_out_signals(), outer_steps=o["meta_steps"], batch_size=o["meta_batch"],
                                      outer_lr=o["meta_lr"], device=ctx.device, seed=ctx.seed, progress=ctx.progress)
            return Prepared(meta, {"meta_images": list(ctx.held_out), "meta_steps": o["meta_steps"],
                                   "base_fingerprint": meta.base_fingerprint()}, save=meta.save_base,
                            message=f"meta-learned the base network on {list(ctx.held_out)} (crop PSNR after the "
                                    f"inner loop {meta.meta_info.get('final_psnr', float('nan')):.2f} dB)")

        def validate(o: Mapping[str, Any], ctx: Context) -> None:
            if o["base"] is None and o["meta_steps"] < 1:
                raise ValueError("COIN++ needs a base network: set coinpp.meta_steps >= 1 (meta-learn one) "
                                 "or coinpp.base (a file written by COINppAdapter.save_base)")
            if o["patch"] > ctx.size:
                raise ValueError(f"coinpp.patch ({o['patch']}) is larger than the images ({ctx.size})")

        return AdapterSpec(
            summary="COIN++: a meta-learned base network, one quantized latent per patch", rate="latent_dims",
            rate_key="latent_dim", bits="bits", shared_tag="base", points=points, prepare=prepare,
            validate=validate, uses_held_out=lambda o: o["base"] is None,
            fit_schedule=lambda adapter, steps, lr: (adapter.inner_steps, None),
            options=(Option("latent_dims", int, [8, 16], "latent length per patch (the rate points; one base "
                            "network meta-learned per value)", multiple=True, minimum=1),
                     Option("width", int, 32, "base network width", minimum=1),
                     Option("layers", int, 4, "base network layers incl. the output layer", minimum=2),
                     Option("patch", int, 16, "patch side in pixels", minimum=1),
                     Option("bits", int, 5, "latent quantizer bits", minimum=2, maximum=8),
                     Option("inner_steps", int, 3, "SGD steps on the latents per image", minimum=0),
                     Option("meta_steps", int, 300, "MAML outer steps of the base network", minimum=0),
                     Option("meta_lr", float, 1e-3, "MAML outer learning rate (Adam)", minimum=0),
                     Option("meta_batch", int, 16, "random crops per MAML outer step", minimum=1),
                     Option("base", str, None, "a base file from COINppAdapter.save_base: no meta-learning, "
                                               "its latent length only", optional=True)))

    def __init__(self, *, width: int = 32, layers: int = 5, latent_dim: int = 32, w0: float = 30.0,
                 w0_initial: float = 30.0, dim_out: int = 3, patch: int | Sequence[int] = 32, bits: int = 5,
                 std_range: float = 3.0, base: Mapping[str, torch.Tensor] | str | os.PathLike[str] | None = None,
                 inner_steps: int = 3, inner_lr: float = 1e-2,
                 quantizer: Sequence[float] | None = None) -> None:
        if int(width) < 1 or int(layers) < 2 or int(latent_dim) < 1 or int(dim_out) < 1:
            raise ValueError("width, latent_dim and dim_out must be >= 1 and layers >= 2")
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"bits must be in 2..8, got {bits}")
        if not float(std_range) > 0:
            raise ValueError("std_range must be > 0")
        if int(inner_steps) < 0 or not float(inner_lr) > 0:
            raise ValueError("inner_steps must be >= 0 and inner_lr > 0")
        self.width = int(width)
        self.layers = int(layers)
        self.latent_dim = int(latent_dim)
        self.w0 = float(w0)
        self.w0_initial = float(w0_initial)
        self.dim_out = int(dim_out)
        self.patch = _patch_pair(patch)
        self.bits = int(bits)
        self.std_range = float(std_range)
        self.inner_steps = int(inner_steps)
        self.inner_lr = float(inner_lr)
        self.quantizer: tuple[float, float] | None = None
        if quantizer is not None:
            mean, std = (float(v) for v in quantizer)
            if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise ValueError(f"quantizer needs a finite mean and a positive std, got {quantizer!r}")
            self.quantizer = (mean, std)
        self.meta_info: dict[str, Any] = {}
        self._base: dict[str, torch.Tensor] | None = None
        if base is not None:
            if not isinstance(base, Mapping):
                base = read_base_file(base)[0]
            self._base = self._check_base(base)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"COINppAdapter({args}{', base=<meta-learned>' if self._base is not None else ''})"

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What a stream needs to decode (the architecture, patch size and quantizer settings)."""
        return {"width": self.width, "layers": self.layers, "latent_dim": self.latent_dim, "w0": self.w0,
                "w0_initial": self.w0_initial, "dim_out": self.dim_out, "patch": list(self.patch),
                "bits": self.bits, "std_range": self.std_range}

    def settings(self) -> dict[str, Any]:
        """Shared state besides the weights: inner loop, quantizer statistics, meta-learning record."""
        return {"inner_steps": self.inner_steps, "inner_lr": self.inner_lr,
                "quantizer": None if self.quantizer is None else list(self.quantizer)}

    def with_config(self, config: Mapping[str, Any]) -> COINppAdapter:
        out = COINppAdapter(**config, base=self._base, **self.settings())
        out.meta_info = dict(self.meta_info)
        return out

    @property
    def num_modulations(self) -> int:
        return self.width * (self.layers - 1)

    def _fresh_base(self) -> ModulatedSiren:
        return ModulatedSiren(dim_in=2, dim_hidden=self.width, dim_out=self.dim_out, num_layers=self.layers,
                              w0=self.w0, w0_initial=self.w0_initial, latent_dim=self.latent_dim)

    def build_model(self) -> ModulatedSiren:
        """The base network (meta-learned weights loaded, when there are any)."""
        net = self._fresh_base()
        if self._base is not None:
            net.load_state_dict(self._base, strict=True)
        return net

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        """The image at integer pixel positions (:func:`~sinr_adapters.framework.grids.pixel_grid`), values in
        [0, 1]."""
        return image_signal(image, channels=self.dim_out, grid=pixel_grid, name=name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        return grid_of(pixel_grid, shape, axes=2, method="COIN++")

    def tensor_names(self, model: nn.Module) -> list[str]:
        """The stored tensors: the latent matrix only (the base network is shared beforehand)."""
        return ["latents"]

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        return ["latents"]

    def sinr_layout(self, name: str, sinr: SINROptions) -> tuple[str, int | None]:
        """One vector per patch: ``"auto"`` means ``"rows"`` for the ``(patches, latent_dim)`` latents."""
        return ("rows" if sinr.layout == "auto" else sinr.layout), sinr.block_size

    def stored_model(self, shape: Sequence[int]) -> COINppModel:
        """The base network with zero latents for an ``(H, W, dim_out)`` image: the stored tensor is the
        ``(patches, latent_dim)`` latent matrix, whose size follows from the image's patch grid."""
        if len(shape) != 3:
            raise StreamError(f"COIN++ streams hold (H, W, {self.dim_out}) images, got shape {tuple(shape)}")
        nr, nc = patch_grid(int(shape[0]), int(shape[1]), self.patch)
        if nr * nc * self.latent_dim > 1 << 28:
            raise StreamError("stream describes too many patches")
        return COINppModel(self.build_model(), torch.zeros(nr * nc, self.latent_dim), shape[:2], self.patch)

    def shared_fingerprint(self) -> str:
        """:meth:`base_fingerprint`: a stream decodes only with the base network (and quantizer
        statistics) that wrote it."""
        return self.base_fingerprint()

    # ---- base network ----------------------------------------------------------------------------
    @property
    def base(self) -> dict[str, torch.Tensor] | None:
        """The base network's state_dict (a copy), or ``None``."""
        return None if self._base is None else {k: v.clone() for k, v in self._base.items()}

    def _check_base(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        net = self._fresh_base()
        map_state_dict(net, sd, strict=True, what="COIN++ base network")
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in net.state_dict().items()}

    def base_fingerprint(self) -> str:
        """16 hex digits over the base network and the quantizer statistics (streams hold 8 of them)."""
        if self._base is None:
            raise ValueError(self._no_base())
        q = torch.tensor(self.quantizer if self.quantizer is not None else (math.nan, math.nan), dtype=torch.float32)
        return fingerprint({**self._base, "__quantizer__": q})

    def _no_base(self) -> str:
        return ("this COIN++ adapter has no base network: meta-learn one (adapter.meta_learn(images)), load "
                "one (COINppAdapter.from_base_file(path)) or an official checkpoint (load_coinpp_checkpoint)")

    def save_base(self, path: str | os.PathLike[str]) -> None:
        """Write the base network, configuration and settings to an ``.npz`` (no pickle)."""
        if self._base is None:
            raise ValueError(self._no_base())
        meta = {"config": self.config(), **self.settings(), "meta": self.meta_info}
        write_base_file(path, self._base, meta)

    @classmethod
    def from_shared_file(cls, path: str | os.PathLike[str]) -> COINppAdapter:
        """:meth:`from_base_file` (the file the harness's preparation saves)."""
        return cls.from_base_file(path)

    @classmethod
    def from_base_file(cls, path: str | os.PathLike[str]) -> COINppAdapter:
        """The adapter (configuration, settings and base network) saved by :meth:`save_base`."""
        state, meta = read_base_file(path)
        if meta is None or meta.get("format") != BASE_FORMAT:
            raise ValueError(f"{path} was not written by COINppAdapter.save_base (no {BASE_FORMAT!r} '__config__')")
        out = cls(**meta["config"], base=state, inner_steps=meta["inner_steps"], inner_lr=meta["inner_lr"],
                  quantizer=meta.get("quantizer"))
        out.meta_info = dict(meta.get("meta") or {})
        return out

    # ---- fitting (the inner loop) ---------------------------------------------------------------
    def fit(self, signal: Signal, *, steps: int | None = None, lr: float | None = None,
            batch_size: int | None = None, device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: nn.Module | None = None) -> tuple[COINppModel, FitLog]:
        """Fit one latent per patch by ``steps`` SGD steps from zero (COIN++'s inner loop).

        Parameters
        ----------
        steps : int or None
            SGD steps (None: :attr:`inner_steps`, what the base network was meta-learned for).
        lr : float or None
            SGD learning rate (None: :attr:`inner_lr`).
        batch_size : int or None
            Patches per chunk (memory only: patches are fitted independently, so chunking changes nothing).
        model : COINppModel or None
            Continue from this model's latents instead of zero.
        seed : int
            Unused (the inner loop is deterministic); kept for the Adapter protocol.
        """
        if self._base is None:
            raise ValueError(self._no_base())
        if model is not None and not isinstance(model, COINppModel):
            raise TypeError(f"COIN++ continues fitting a COINppModel, got a {type(model).__name__}")
        steps = self.inner_steps if steps is None else int(steps)
        lr = self.inner_lr if lr is None else float(lr)
        dev = resolve_device(device)
        h, w, c = signal.shape
        base = self.build_model().to(dev)
        patches = patchify(signal.values.to(dev).reshape(h, w, c), self.patch)
        local = patch_coordinates(self.patch).to(dev)
        if model is not None:
            latents = model.latents.detach().to(dev).clone()
        else:
            latents = torch.zeros(patches.shape[0], self.latent_dim, device=dev)
        log = inner_fit(base, latents, local, patches, steps=steps, lr=lr, chunk=batch_size, progress=progress,
                         desc=f"{self.name} fit")
        return COINppModel(base, latents, (h, w), self.patch).to(dev), log

    # ---- quantizer ---------------------------------------------------------------------------------
    def _check_quantizer(self) -> tuple[float, float]:
        if self.quantizer is None:
            raise ValueError("the COIN++ quantizer has no training-set statistics: call adapter.calibrate(images) "
                             "(meta_learn does it for you)")
        return self.quantizer

    def quantize_latents(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """COIN++'s quantizer: ``(integers in [0, 2**bits - 1] as int64, dequantized latents)``."""
        mean, std = self._check_quantizer()
        r, levels = self.std_range, (1 << self.bits) - 1
        u = torch.clamp((latents.detach() - mean) / std, -r, r) / (2 * r) + 0.5
        q = torch.round(u * levels)
        return q.to(torch.int64), self.dequantize_latents(q)

    def dequantize_latents(self, q: torch.Tensor) -> torch.Tensor:
        mean, std = self._check_quantizer()
        r, levels = self.std_range, (1 << self.bits) - 1
        return ((q.to(torch.float32) / levels - 0.5) * (2 * r)) * std + mean

    def fake_quantize(self, latents: torch.Tensor) -> torch.Tensor:
        """Straight-through: forward the quantized latents, identity gradient."""
        return latents + (self.quantize_latents(latents)[1].to(latents) - latents).detach()

    def fake_storage(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The latents through COIN++'s quantizer, straight-through (:meth:`fake_quantize`)."""
        return self.fake_quantize(tensor)

    # ---- compress ----------------------------------------------------------------------------------
    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None,
                           sinr_lr: float | None = None, schedule: str = "cosine",
                           batch_size: int | None = None, progress: bool | None = None
                           ) -> tuple[bytes, dict[str, Any]]:
        """Write one image's latents (see :meth:`INRAdapter.compress` for the arguments).

        Without SINR: ``finetune_steps`` Adam steps on the latents through COIN++'s quantizer
        (straight-through), then the ``bits``-bit integers, Brotli-coded. With SINR: OMP on the latent
        matrix (rows = patches), ``finetune_steps`` Adam steps on the sparse values through the core's
        value quantizer (support fixed), then the SINR stream. The base network is not modified.
        """
        if self._base is None:
            raise ValueError(self._no_base())
        if sinr is None:
            self._check_quantizer()
        setup = self.prepare_compression(model, sinr)
        info: dict[str, Any] = {"omp_seconds": setup.omp_seconds}
        log = self.finetune(model, setup, signal, info, steps=finetune_steps, finetune_lr=finetune_lr,
                            sinr_lr=sinr_lr, schedule=schedule, batch_size=batch_size, progress=progress)
        buf = io.BytesIO()
        hlen = container.write_header(buf, self, signal.shape, sinr=sinr is not None, ref=self.base_fingerprint())
        with torch.no_grad():
            if sinr is not None:
                blob = setup.code_bytes("latents")
            else:
                q, _ = self.quantize_latents(setup.trainable["latents"].detach().cpu())
                blob = brotli.compress(q.numpy().astype(np.uint8).tobytes(), quality=11)
        body = write_section(buf, blob)
        info.update(header_bytes=hlen, sinr_bytes=0, int_bytes=0, checksum_bytes=4,
                    num_patches=int(setup.state["latents"].shape[0]), finetune_log=log.to_dict(),
                    sinr_tensors=sorted(setup.codes))
        info["sinr_bytes" if sinr is not None else "int_bytes"] = body
        return container.finish_stream(buf), info

    # ---- decompress --------------------------------------------------------------------------------
    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(1, base network parameters)`` for a stream's configuration (one stored tensor: the latents),
        counted without building anything. With a base network, its architecture (``width``, ``layers``,
        ``latent_dim``, ``dim_out``) must be the stream's; ``1 / MAX_FREQUENCY <= w0 <= MAX_FREQUENCY``,
        ``0 < std_range <= 1e6``, patch sides in ``2 .. 2**24``."""
        width, layers = config_number(config, "width", lo=1), config_number(config, "layers", lo=2)
        latent, dim_out = config_number(config, "latent_dim", lo=1), config_number(config, "dim_out", lo=1)
        if self._base is not None:
            own = {"width": self.width, "layers": self.layers, "latent_dim": self.latent_dim, "dim_out": self.dim_out}
            theirs = {k: config[k] for k in own}
            if theirs != own:
                raise StreamError(f"the stream's base network {theirs} is not this adapter's {own}: decode with "
                                  "the base network that wrote it")
        config_number(config, "w0", lo=1 / MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "w0_initial", lo=-MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "std_range", lo=0, hi=1e6, above=True)
        config_number(config, "bits", lo=2, hi=8)
        for i, side in enumerate(config["patch"]):
            config_number({f"patch[{i}]": side}, f"patch[{i}]", lo=2, hi=1 << 24)
        params = (3 * width + (layers - 2) * (width + 1) * width + (width + 1) * dim_out
                  + (latent + 1) * width * (layers - 1))
        return 1, params

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """A COIN++ stream holds an ``(H, W, dim_out)`` image."""
        if len(shape) != 3 or shape[2] != config["dim_out"]:
            raise StreamError(f"COIN++ streams hold (H, W, {config['dim_out']}) images, got shape {shape}")

    def decompress(self, data: bytes, *, device: str = "cpu") -> Decoded:
        """Rebuild the image's model from a stream (needs the base network that wrote it)."""
        if self._base is None:
            raise ValueError(self._no_base())
        header, pos, data, config = container.open_stream(self, data)
        adapter = container.stream_adapter(self, config)
        container.check_reference(adapter, header)
        shape = tuple(int(s) for s in header["shape"])
        nr, nc = patch_grid(shape[0], shape[1], adapter.patch)
        count = nr * nc
        if count * adapter.latent_dim > 1 << 28:
            raise StreamError("stream describes too many patches")
        r = Reader(data, pos)
        blob = r.section(what="the latent section")
        if r.pos != len(data):
            raise StreamError(f"{len(data) - r.pos} trailing bytes after the stream")
        if header["sinr"]:
            latents = sparse_tensor_from_bytes(blob, (count, adapter.latent_dim))
        else:
            raw = inflate(blob, count * adapter.latent_dim, "latent section")
            q = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.int64)).reshape(count, adapter.latent_dim)
            if int(q.max()) > (1 << adapter.bits) - 1:
                raise StreamError("latent section holds an integer beyond the quantizer's range")
            latents = adapter.dequantize_latents(q)
        model = COINppModel(adapter.build_model(), latents, shape[:2], adapter.patch)
        return Decoded(model=model.to(resolve_device(device)), shape=shape, header=dict(header))

    # ---- meta-learning -----------------------------------------------------------------------------
    def meta_learn(self, images: Sequence[np.ndarray], *, outer_steps: int = 500, batch_size: int = 16,
                   outer_lr: float = 1e-4, inner_steps: int | None = None, inner_lr: float | None = None,
                   first_order: bool = False, device: str = "auto", seed: int = 0, calibrate: bool = True,
                   progress: bool | None = None) -> COINppAdapter:
        """Meta-learn the base network over random ``patch``-sized crops of ``images`` (MAML, COIN++'s way;
        :func:`sinr_adapters.methods.coinpp.meta.meta_learn`), then :meth:`calibrate` on ``images`` unless
        ``calibrate=False``. Returns a new adapter."""
        return meta_learn(self, images, outer_steps=outer_steps, batch_size=batch_size, outer_lr=outer_lr,
                          inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order, device=device,
                          seed=seed, calibrate=calibrate, progress=progress)

    def calibrate(self, images: Sequence[np.ndarray], *, device: str = "auto") -> COINppAdapter:
        """Set the quantizer's mean and std from latents fitted (``inner_steps``) to every patch of ``images``
        (:func:`sinr_adapters.methods.coinpp.meta.calibrate_quantizer`). Returns a new adapter (same base network)."""
        return calibrate_quantizer(self, images, device=device)


def load_coinpp_checkpoint(source: str | os.PathLike[str] | Mapping[str, Any], *,
                           patch: int | Sequence[int] | None = None, bits: int = 5, std_range: float = 3.0,
                           quantizer: Sequence[float] | None = None, strict: bool = True
                           ) -> tuple[COINppAdapter, LoadReport]:
    """Load an official COIN++ checkpoint: ``model.pt = {"args": argparse.Namespace, "state_dict": ...}``.

    The file is read with ``torch.load(weights_only=True)``, allowing ``argparse.Namespace`` only (no code
    is unpickled). Width, layers, ``w0``, latent size, patch shape and the inner loop come from ``args``
    (``w0_initial = w0`` as COIN++ builds its model); input and output dims from the tensor shapes.
    Only what COIN++ uses for its results is supported: shift modulations (``modulate_scale=0``,
    ``modulate_shift=1``) from a latent by a linear map (``use_latent=1``, ``modulation_net_num_layers=1``).
    COIN++ does not store the quantizer's statistics: pass ``quantizer=(mean, std)`` or call
    ``adapter.calibrate(images)`` before compressing.

    Parameters
    ----------
    source : path or mapping
        The ``model.pt`` file, or the dict it holds (``args`` may be a Namespace or a dict).
    patch : int, pair or None
        Patch size when ``args.patch_shape`` is ``[-1]`` (no patching) or missing.
    strict : bool, default True
        Raise when a key is missing or unexpected (else see the report).

    Returns
    -------
    (COINppAdapter, LoadReport)
    """
    args, sd = read_checkpoint(source)
    published = (("modulate_scale", 0), ("modulate_shift", 1), ("use_latent", 1), ("modulation_net_num_layers", 1))
    for key, want in published:
        if key in args and int(args[key]) != want:
            raise ValueError(f"unsupported COIN++ model: {key}={args[key]} (this adapter implements {key}={want}: "
                             "shift modulations from a latent by one linear map, COIN++'s published setting)")
    if "net.0.linear.weight" not in sd or "modulation_net.net.weight" not in sd or "last_layer.linear.weight" not in sd:
        raise ValueError("not a COIN++ ModulatedSiren state_dict: expected keys 'net.0.linear.weight', "
                         "'last_layer.linear.weight' and 'modulation_net.net.weight'")
    width, dim_in = sd["net.0.linear.weight"].shape
    if dim_in != 2:
        raise ValueError(f"this adapter handles images (2-D coordinates); the checkpoint takes {dim_in}-D inputs")
    n_sine = 0
    while f"net.{n_sine}.linear.weight" in sd:
        n_sine += 1
    latent_dim = sd["modulation_net.net.weight"].shape[1]
    dim_out = sd["last_layer.linear.weight"].shape[0]
    layers = int(args.get("num_layers", n_sine + 1))
    stated = (int(args.get("dim_hidden", width)), int(args.get("latent_dim", latent_dim)))
    if layers != n_sine + 1 or stated != (width, latent_dim):
        raise ValueError(f"the checkpoint's args (num_layers={args.get('num_layers')}, "
                         f"dim_hidden={args.get('dim_hidden')}, "
                         f"latent_dim={args.get('latent_dim')}) disagree with its tensors ({n_sine + 1} layers, width "
                         f"{width}, latent {latent_dim})")
    shape = list(args.get("patch_shape") or [-1])
    if patch is None:
        if shape == [-1] or len(shape) != 2:
            raise ValueError("the checkpoint was trained without 2-D patches (patch_shape=[-1]): pass patch=")
        patch = shape
    w0 = float(args.get("w0", 30.0))
    inner = args.get("inner_steps", 3)
    adapter = COINppAdapter(width=width, layers=layers, latent_dim=latent_dim, w0=w0, w0_initial=w0, dim_out=dim_out,
                            patch=patch, bits=bits, std_range=std_range, inner_steps=int(inner),
                            inner_lr=float(args.get("inner_lr", 1e-2)), quantizer=quantizer)
    net = adapter._fresh_base()
    report = map_state_dict(net, sd, strict=strict, what="COIN++")
    adapter._base = {k: v.detach().to("cpu", torch.float32).clone() for k, v in net.state_dict().items()}
    plain = {k: v for k, v in args.items() if isinstance(v, (int, float, str, bool, list))}
    adapter.meta_info = {"source": "official COIN++ checkpoint", "args": plain}
    return adapter, report
