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
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import brotli
import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError

from . import nets
from .base import (
    MAX_FREQUENCY,
    Decoded,
    INRAdapter,
    LoadReport,
    Signal,
    SINROptions,
    Reader,
    config_number,
    fingerprint,
    image_array,
    inflate,
    map_state_dict,
    sparse_tensor_from_bytes,
    write_section,
)

__all__ = [
    "COINppAdapter",
    "COINppModel",
    "ModulatedSiren",
    "load_coinpp_checkpoint",
    "patch_coordinates",
    "patchify",
]

BASE_FORMAT = "sinr_adapters.coinpp.base/1"


# --------------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------------

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

    def forward_shifted(self, x: torch.Tensor, shift) -> torch.Tensor:
        """The network on ``x`` with ``shift(i)`` (broadcastable to layer ``i``'s pre-activation) added."""
        for i, layer in enumerate(self.net):
            x = layer.activation(layer.linear(x) + shift(i))
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
    axes = [torch.linspace(0.0, 1.0, int(n)) for n in patch]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 2)


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """Integer pixel positions ``(row, col)`` as float32, row-major: ``(H * W, 2)``."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    return torch.stack((rows, cols), dim=-1).reshape(-1, 2)


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


# --------------------------------------------------------------------------------------------------
# the adapter
# --------------------------------------------------------------------------------------------------

def _patch_pair(patch: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(patch, (int, np.integer)) and not isinstance(patch, bool):
        pair = (int(patch), int(patch))
    else:
        pair = tuple(int(p) for p in patch)
    if len(pair) != 2 or min(pair) < 2:
        raise ValueError(f"patch must be an int or a pair of ints >= 2, got {patch!r}")
    return pair  # type: ignore[return-value]


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
    def describe(cls):
        """How the rate–distortion harness runs COIN++ (:mod:`sinr_adapters.spec`): latent lengths are the
        rate points, each with a base network meta-learned on held-out images (or one read from ``base``);
        an image is fitted by the inner loop, not by ``--steps``."""
        from .spec import AdapterSpec, Option, Prepared

        def points(cls, o, ctx):
            if o["base"] is not None:
                a = cls.from_base_file(o["base"])
                return [(a.latent_dim, a)]
            return [(d, cls(width=o["width"], layers=o["layers"], latent_dim=d, patch=o["patch"], bits=o["bits"],
                            inner_steps=o["inner_steps"])) for d in o["latent_dims"]]

        def prepare(adapter, o, ctx):
            if o["base"] is not None:
                return Prepared(adapter, {"base_file": o["base"], "base_fingerprint": adapter.base_fingerprint()})
            meta = adapter.meta_learn(ctx.held_out_images(), outer_steps=o["meta_steps"], batch_size=o["meta_batch"],
                                      outer_lr=o["meta_lr"], device=ctx.device, seed=ctx.seed, progress=ctx.progress)
            return Prepared(meta, {"meta_images": list(ctx.held_out), "meta_steps": o["meta_steps"],
                                   "base_fingerprint": meta.base_fingerprint()}, save=meta.save_base,
                            message=f"meta-learned the base network on {list(ctx.held_out)} (crop PSNR after the "
                                    f"inner loop {meta.meta_info.get('final_psnr', float('nan')):.2f} dB)")

        def validate(o, ctx):
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
                 std_range: float = 3.0, base: Mapping[str, torch.Tensor] | str | os.PathLike | None = None,
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
                base = _read_npz(base)[0]
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
        img = image_array(image, self.dim_out)
        h, w, c = img.shape
        values = torch.from_numpy(img.reshape(-1, c).astype(np.float32))
        return Signal(pixel_grid(h, w), values, (h, w, c), (0.0, 1.0), "image", name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        if len(shape) != 2:
            raise ValueError(f"COIN++ renders 2-D images, got grid shape {tuple(shape)}")
        return pixel_grid(int(shape[0]), int(shape[1]))

    def tensor_names(self, model: nn.Module) -> list[str]:
        """The stored tensors: the latent matrix only (the base network is shared beforehand)."""
        return ["latents"]

    def sinr_tensor_names(self, model: nn.Module) -> list[str]:
        return ["latents"]

    def sinr_layout(self, name: str, sinr: SINROptions) -> tuple[str, int | None]:
        """One vector per patch: ``"auto"`` means ``"rows"`` for the ``(patches, latent_dim)`` latents."""
        return ("rows" if sinr.layout == "auto" else sinr.layout), sinr.block_size

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

    def save_base(self, path: str | os.PathLike) -> None:
        """Write the base network, configuration and settings to an ``.npz`` (no pickle)."""
        if self._base is None:
            raise ValueError(self._no_base())
        arrays = {k: v.numpy() for k, v in self._base.items()}
        meta = {"format": BASE_FORMAT, "config": self.config(), **self.settings(), "meta": self.meta_info}
        arrays["__config__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        with open(os.fspath(path), "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def from_base_file(cls, path: str | os.PathLike) -> COINppAdapter:
        """The adapter (configuration, settings and base network) saved by :meth:`save_base`."""
        state, meta = _read_npz(path)
        if meta is None or meta.get("format") != BASE_FORMAT:
            raise ValueError(f"{path} was not written by COINppAdapter.save_base (no {BASE_FORMAT!r} '__config__')")
        out = cls(**meta["config"], base=state, inner_steps=meta["inner_steps"], inner_lr=meta["inner_lr"],
                  quantizer=meta.get("quantizer"))
        out.meta_info = dict(meta.get("meta") or {})
        return out

    # ---- fitting (the inner loop) ---------------------------------------------------------------
    def fit(self, signal: Signal, *, steps: int | None = None, lr: float | None = None,
            batch_size: int | None = None, device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: COINppModel | None = None) -> tuple[COINppModel, nets.FitLog]:
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
        steps = self.inner_steps if steps is None else int(steps)
        lr = self.inner_lr if lr is None else float(lr)
        dev = nets.resolve_device(device)
        h, w, c = signal.shape
        base = self.build_model().to(dev)
        patches = patchify(signal.values.to(dev).reshape(h, w, c), self.patch)
        local = patch_coordinates(self.patch).to(dev)
        if model is not None:
            latents = model.latents.detach().to(dev).clone()
        else:
            latents = torch.zeros(patches.shape[0], self.latent_dim, device=dev)
        log = _inner_fit(base, latents, local, patches, steps=steps, lr=lr, chunk=batch_size, progress=progress,
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

    # ---- compress ----------------------------------------------------------------------------------
    def compress_with_info(self, model: COINppModel, signal: Signal, *, sinr: SINROptions | None = None,
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
        info: dict[str, Any] = {}
        setup = self.prepare_compression(model, sinr)
        info["omp_seconds"] = setup.omp_seconds
        trainable = setup.trainable["latents"]
        sig = signal.to(setup.device)

        def materialize() -> torch.Tensor:
            return setup.tensor("latents") if sinr is not None else self.fake_quantize(trainable)

        def forward(x: torch.Tensor) -> torch.Tensor:
            return model(x, latents=materialize())

        t1 = time.perf_counter()
        lr = self.finetune_learning_rate(with_sinr=sinr is not None, finetune_lr=finetune_lr, sinr_lr=sinr_lr)
        log = nets.fit(forward, [trainable], sig.coords, sig.values, steps=finetune_steps, lr=lr, schedule=schedule,
                       batch_size=batch_size, value_peak=signal.peak, progress=progress,
                       desc=f"{self.name}{'+sinr' if sinr else ''} fine-tune")
        info["finetune_seconds"] = time.perf_counter() - t1
        with torch.no_grad():
            info["psnr_finetuned"] = nets.psnr_8bit(self.predict_with(model, sig.coords, materialize()), sig.values)

        buf = io.BytesIO()
        hlen = self.write_header(buf, signal.shape, sinr=sinr is not None, ref=self.base_fingerprint())
        with torch.no_grad():
            if sinr is not None:
                blob = setup.code_bytes("latents")
            else:
                q, _ = self.quantize_latents(trainable.detach().cpu())
                blob = brotli.compress(q.numpy().astype(np.uint8).tobytes(), quality=11)
        body = write_section(buf, blob)
        data = self.finish_stream(buf)
        info.update(header_bytes=hlen, sinr_bytes=0, int_bytes=0, checksum_bytes=4,
                    num_patches=int(setup.state["latents"].shape[0]), finetune_log=log.to_dict(),
                    sinr_tensors=sorted(setup.codes))
        info["sinr_bytes" if sinr is not None else "int_bytes"] = body
        return data, info

    @torch.no_grad()
    def predict_with(self, model: COINppModel, coords: torch.Tensor, latents: torch.Tensor, *,
                     chunk: int = 1 << 16) -> torch.Tensor:
        outs = [model(coords[i:i + chunk], latents=latents) for i in range(0, coords.shape[0], chunk)]
        return torch.cat(outs).float()

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
        header, pos, data, config = self.open_stream(data)
        adapter = self.stream_adapter(config)
        if header["ref"] is None or header["ref"] != adapter.base_fingerprint()[:8]:
            raise StreamError("the stream's base network (or quantizer statistics) differ from this adapter's: "
                              "decode with the base network that wrote it")
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
        return Decoded(model=model.to(nets.resolve_device(device)), shape=shape, header=header)

    # ---- meta-learning -----------------------------------------------------------------------------
    def meta_learn(self, images: Sequence[np.ndarray], *, outer_steps: int = 500, batch_size: int = 16,
                   outer_lr: float = 1e-4, inner_steps: int | None = None, inner_lr: float | None = None,
                   first_order: bool = False, device: str = "auto", seed: int = 0, calibrate: bool = True,
                   progress: bool | None = None) -> COINppAdapter:
        """Meta-learn the base network over random ``patch``-sized crops of ``images`` (MAML, COIN++'s way).

        Each outer step draws ``batch_size`` crops, fits one latent per crop by ``inner_steps`` SGD steps
        from zero (loss = per-crop MSE summed over crops), and takes one Adam step (``outer_lr``) on the
        base network for the mean per-crop MSE after the inner loop, differentiating through the inner
        loop (``first_order=True``: not). Starts from this adapter's base network, or a fresh SIREN
        initialisation (seeded by ``seed``) if it has none. Then :meth:`calibrate` on ``images`` unless
        ``calibrate=False``. Returns a new adapter.
        """
        if not images:
            raise ValueError("meta_learn needs at least one image")
        inner_steps = self.inner_steps if inner_steps is None else int(inner_steps)
        inner_lr = self.inner_lr if inner_lr is None else float(inner_lr)
        dev = nets.resolve_device(device)
        imgs = [torch.from_numpy(image_array(im, self.dim_out)) for im in images]
        ph, pw = self.patch
        if any(im.shape[0] < ph or im.shape[1] < pw for im in imgs):
            raise ValueError(f"every training image must be at least {ph} x {pw} (the patch size)")
        torch.manual_seed(seed)
        net = (self.build_model() if self._base is not None else self._fresh_base()).to(dev)
        for p in net.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(net.parameters(), lr=outer_lr)
        gen = torch.Generator().manual_seed(seed)
        local = patch_coordinates(self.patch).to(dev)
        from tqdm.auto import tqdm

        bar = tqdm(range(outer_steps), desc=f"{self.name} meta-learn", leave=False, file=sys.stderr,
                   disable=not nets.progress_enabled(progress), dynamic_ncols=True)
        psnrs: list[float] = []
        t0 = time.perf_counter()
        for step in bar:
            which = torch.randint(len(imgs), (batch_size,), generator=gen).tolist()
            crops = []
            for i in which:
                im = imgs[i]
                top = int(torch.randint(im.shape[0] - ph + 1, (1,), generator=gen))
                left = int(torch.randint(im.shape[1] - pw + 1, (1,), generator=gen))
                crops.append(im[top:top + ph, left:left + pw].reshape(ph * pw, -1))
            target = torch.stack(crops).to(dev)                       # (B, n, C)
            coords = local.expand(batch_size, -1, -1)
            latents = torch.zeros(batch_size, self.latent_dim, device=dev, requires_grad=True)
            for _ in range(inner_steps):
                loss = ((net.modulated_forward(coords, latents) - target) ** 2).mean(dim=(1, 2)).sum()
                (grad,) = torch.autograd.grad(loss, latents, create_graph=not first_order)
                latents = latents - inner_lr * grad
            per = ((net.modulated_forward(coords, latents) - target) ** 2).mean(dim=(1, 2))
            outer = per.mean()
            opt.zero_grad(set_to_none=True)
            outer.backward()
            opt.step()
            psnrs.append(float(torch.mean(-10 * torch.log10(per.detach().clamp_min(1e-12)))))
            if step % 25 == 0 or step == outer_steps - 1:
                bar.set_postfix(psnr=f"{psnrs[-1]:.2f}", refresh=False)
        bar.close()
        nets.synchronize(dev)
        out = COINppAdapter(**self.config(), base={k: v.detach().cpu() for k, v in net.state_dict().items()},
                            inner_steps=inner_steps, inner_lr=inner_lr)
        tail = psnrs[-max(1, len(psnrs) // 10):] if psnrs else [math.nan]
        out.meta_info = {"outer_steps": int(outer_steps), "batch_size": int(batch_size), "outer_lr": float(outer_lr),
                         "first_order": bool(first_order), "images": len(imgs), "seed": int(seed),
                         "seconds": time.perf_counter() - t0, "first_psnr": psnrs[0] if psnrs else math.nan,
                         "final_psnr": float(np.mean(tail))}
        if calibrate:
            out = out.calibrate(images, device=device)
        return out

    def calibrate(self, images: Sequence[np.ndarray], *, device: str = "auto") -> COINppAdapter:
        """Set the quantizer's mean and std from latents fitted (``inner_steps``) to every patch of ``images``.

        Returns a new adapter (same base network).
        """
        if self._base is None:
            raise ValueError(self._no_base())
        dev = nets.resolve_device(device)
        base = self.build_model().to(dev)
        local = patch_coordinates(self.patch).to(dev)
        fitted = []
        for im in images:
            img = torch.from_numpy(image_array(im, self.dim_out)).to(dev)
            patches = patchify(img, self.patch)
            lat = torch.zeros(patches.shape[0], self.latent_dim, device=dev)
            _inner_fit(base, lat, local, patches, steps=self.inner_steps, lr=self.inner_lr, progress=False)
            fitted.append(lat.cpu())
        if not fitted:
            raise ValueError("calibrate needs at least one image")
        allv = torch.cat(fitted).double()
        mean, std = float(allv.mean()), float(allv.std()) if allv.numel() > 1 else 1.0
        out = COINppAdapter(**self.config(), base=self._base, inner_steps=self.inner_steps, inner_lr=self.inner_lr,
                            quantizer=(mean, std if std > 0 else 1.0))
        out.meta_info = {**self.meta_info, "calibration_patches": int(allv.shape[0])}
        return out


def _inner_fit(base: ModulatedSiren, latents: torch.Tensor, local: torch.Tensor, patches: torch.Tensor, *,
               steps: int, lr: float, chunk: int | None = None, progress: bool | None = None,
               desc: str = "coinpp fit") -> nets.FitLog:
    """SGD on ``latents`` ``(P, D)`` in place (per-patch MSE summed over patches, as COIN++)."""
    log = nets.FitLog()
    p = patches.shape[0]
    chunk = p if not chunk or chunk >= p else int(chunk)
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=desc, file=sys.stderr, leave=False, disable=not nets.progress_enabled(progress))
    for step in range(steps + 1):
        total = 0.0
        for i in range(0, p, chunk):
            lat = latents[i:i + chunk].detach().requires_grad_(steps > step)
            n = lat.shape[0]
            with torch.set_grad_enabled(step < steps):
                per = ((base.modulated_forward(local.expand(n, -1, -1), lat) - patches[i:i + chunk]) ** 2).mean(dim=(1, 2))
                total += float(per.detach().sum())
                if step < steps:
                    (grad,) = torch.autograd.grad(per.sum(), lat)
                    latents[i:i + chunk] = lat.detach() - lr * grad
        mse = total / p
        if step < steps:
            log.loss.append(mse)
            log.psnr.append(nets.mse_to_psnr(mse))
            log.steps += 1
            bar.update(1)
        if mse < log.best_loss:
            log.best_loss, log.best_step = mse, step
    bar.close()
    nets.synchronize(latents.device)
    log.seconds = time.perf_counter() - t0
    return log


def _read_npz(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    with np.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: torch.from_numpy(np.array(z[k], dtype=np.float32)) for k in z.files if k != "__config__"}
        meta = json.loads(bytes(z["__config__"].astype(np.uint8)).decode()) if "__config__" in z.files else None
    return state, meta


# --------------------------------------------------------------------------------------------------
# official checkpoints
# --------------------------------------------------------------------------------------------------

def _torch_load_coinpp(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` allowing ``argparse.Namespace`` and nothing else."""
    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is not None:
        with safe([argparse.Namespace]):
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    torch.serialization.add_safe_globals([argparse.Namespace])  # pragma: no cover - torch < 2.5
    return torch.load(os.fspath(path), map_location="cpu", weights_only=True)  # pragma: no cover


def load_coinpp_checkpoint(source: str | os.PathLike | Mapping[str, Any], *, patch: int | Sequence[int] | None = None,
                           bits: int = 5, std_range: float = 3.0, quantizer: Sequence[float] | None = None,
                           strict: bool = True) -> tuple[COINppAdapter, LoadReport]:
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
    ckpt = dict(source) if isinstance(source, Mapping) else _torch_load_coinpp(source)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise ValueError("not a COIN++ checkpoint: expected a dict with 'args' and 'state_dict' (coinpp main.py)")
    args = ckpt.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    sd = {k.removeprefix("module."): v for k, v in dict(ckpt["state_dict"]).items()}
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("the checkpoint's state_dict must map names to tensors")
    for key, want in (("modulate_scale", 0), ("modulate_shift", 1), ("use_latent", 1), ("modulation_net_num_layers", 1)):
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
    if layers != n_sine + 1 or int(args.get("dim_hidden", width)) != width or int(args.get("latent_dim", latent_dim)) != latent_dim:
        raise ValueError(f"the checkpoint's args (num_layers={args.get('num_layers')}, dim_hidden={args.get('dim_hidden')}, "
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
    adapter.meta_info = {"source": "official COIN++ checkpoint", "args": {k: v for k, v in args.items()
                                                                        if isinstance(v, (int, float, str, bool, list))}}
    return adapter, report
