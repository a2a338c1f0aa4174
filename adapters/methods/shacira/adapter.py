"""SHACIRA (Girish et al. 2023, "SHACIRA: Scalable HAsh-grid Compression for Implicit Neural
Representations") with and without SINR, written from the paper's description.

The method: a multi-resolution hash grid (Instant-NGP, :mod:`sinr_adapters.methods.shacira.hashgrid`) whose tables hold
**integer latents** instead of features; a small learned **latent decoder** maps latents to features
(here one affine map per level, ``feature = W_l latent + b_l``, i.e. a learned quantization step
("scale") and offset ("shift") per level); a small ReLU **MLP** maps the features of all levels to the
signal's values. Training rounds the latents with a straight-through estimator and adds an **entropy
penalty**: the bits of the rounded latents under a learned per-level logistic prior (zero mean, learned
scale), ``loss = MSE + rate_weight * bits / pixels``. Storage: the rounded latents, entropy-coded per
level; the decoder and the MLP at full precision (SHACIRA counts its MLP at 32 bits).

Our entropy coder for the latents (``entropy``): ``"rans"``, the core's static rANS (:mod:`sinr_codecs.rans`),
one section per level with that level's empirical histogram stored in the stream (what SHACIRA's torchac
coding with an empirical CDF does);
``"brotli"``, Brotli over the zigzag-coded integers; ``"auto"`` (default) writes whichever is shorter.
``bpp = 8 * len(stream) / pixels`` counts everything a decoder needs: our header, the latents (with their
histograms), the decoder and the MLP. The prior is a training device only and is not stored.

With SINR (``compress(..., sinr=SINROptions(...))``) the MLP's weight matrices are SINR-coded (the
``auto`` layout: a matrix narrower than 50 is one flattened vector) and, with ``sinr_latents=True``,
the latent tables too (cut into vectors of ``block_size``, 64 by default; they are then decoded as real
numbers, not rounded). The sparse values, support fixed, and every tensor SINR leaves alone are
fine-tuned for the same number of steps that the plain path spends on fine-tuning through its own
rounding (straight-through) with the rate penalty.

The SHACIRA code (Sharath-girish/Shacira) is under a non-commercial licence: nothing of it is used here;
state_dict keys are ours (``grid.latents``, ``decoder.weight``/``bias``, ``mlp.{i}.weight``/``bias``,
``prior.log_scale``).

This module holds the adapter; the network is in :mod:`sinr_adapters.methods.shacira.model`, the latents'
entropy coders in :mod:`sinr_adapters.methods.shacira.coding`.
"""

from __future__ import annotations

import io
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import brotli
import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import resolve_device

from ...framework import container, metrics, training
from ...framework.container import Reader, config_number, inflate, write_section
from ...framework.grids import grid_of, unit_grid
from ...framework.inr import INRAdapter
from ...framework.protocol import Decoded
from ...framework.quantizers import ste_round
from ...framework.records import (
    from_stored_uniform,
    read_quantizer,
    sparse_tensor_from_bytes,
    stored_uniform,
    write_records,
)
from ...framework.signals import Signal, image_signal
from ...framework.sinr_options import SINROptions
from ...framework.spec import AdapterSpec, Option
from .coding import CODERS, MAX_LATENT, brotli_decode, brotli_encode, rans_decode, rans_encode
from .hashgrid import HashGrid, grid_resolutions
from .model import SHACIRANet

__all__ = ["MAX_LEVELS", "MAX_RESOLUTION", "SHACIRAAdapter"]

MAX_LEVELS = 1024
"""Most hash-grid levels a stream's configuration may declare."""

MAX_RESOLUTION = 1 << 24
"""Finest grid resolution a stream's configuration may declare (vertex hashes stay within int64)."""


class SHACIRAAdapter(INRAdapter):
    """SHACIRA, end to end (see the module docstring).

    Parameters
    ----------
    levels : int, default 16
        Hash-grid levels (SHACIRA's Kodak setting: 24).
    base_resolution : int, default 16
        Coarsest grid resolution.
    finest_resolution : int, default 512
        Finest grid resolution (about the image's side is a good choice).
    log2_table_size : int, default 12
        At most ``2**T`` latents per level (the main rate knob with ``rate_weight``).
    latent_dim, feature_dim : int, default 1, 1
        Latents per table entry and decoded features per level.
    hidden, hidden_layers : int, default 16, 2
        ReLU MLP width and hidden layers (SHACIRA: ``24 -> 16 -> 16 -> 3``).
    dim_out : int, default 3
    rate_weight : float, default 2e-4
        ``lambda`` of the entropy penalty (MSE in [0, 1] units + lambda * bits per pixel).
    mlp_bits : int, default 32
        Storage of the decoder and the MLP (and of the tensors SINR leaves alone): 32 or 16 (floats; SHACIRA
        counts fp32), or 2..15 (per-tensor uniform integers + Brotli, quantization-aware fine-tuned: a
        fair baseline for SINR, not SHACIRA as published).
    entropy : {"auto", "rans", "brotli"}, default "auto"
        Entropy coder of the integer latents.
    sinr_latents : bool, default False
        With SINR, code the latent tables too (not only the MLP's weight matrices).
    latent_init, decoder_scale : float, default 1.0, 0.05
        Latents start ``U(-latent_init, latent_init)``; the decoder starts as ``decoder_scale * I``.

    Examples
    --------
    >>> a = SHACIRAAdapter(levels=4, base_resolution=4, finest_resolution=16, log2_table_size=8)
    >>> a.sinr_tensor_names(a.build_model())
    ['mlp.0.weight', 'mlp.2.weight', 'mlp.4.weight']
    """

    name: ClassVar[str] = "shacira"
    default_lr: ClassVar[float] = 1e-2
    latent_lr: ClassVar[float] = 5e-2
    default_finetune_lr: ClassVar[float] = 1e-4
    default_sinr_lr: ClassVar[float] = 1e-2

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the rate–distortion harness runs SHACIRA (:mod:`sinr_adapters.framework.spec`): table sizes are
        the rate points; the finest grid resolution is the image side."""
        return AdapterSpec(
            summary="SHACIRA: hash-grid latents, entropy-coded, and a small MLP", rate="table_sizes",
            rate_key="log2_table_size", bits="mlp_bits",
            options=(Option("table_sizes", int, [8, 10], "log2 of the largest latent table per level (the rate "
                            "points)", multiple=True, minimum=2, maximum=24),
                     Option("levels", int, 8, "hash-grid levels", minimum=1),
                     Option("base_resolution", int, 4, "coarsest grid resolution (the finest is --size)", minimum=1),
                     Option("hidden", int, 16, "MLP width", minimum=1),
                     Option("rate_weight", float, 2e-4, "entropy-penalty weight lambda", minimum=0),
                     Option("sinr_latents", bool, False, "with SINR, code the latent tables too (not only the MLP's "
                                                         "weight matrices)")),
            build=lambda cls, o, t, ctx: cls(
                levels=o["levels"], base_resolution=min(o["base_resolution"], ctx.size), finest_resolution=ctx.size,
                log2_table_size=t, hidden=o["hidden"], rate_weight=o["rate_weight"], sinr_latents=o["sinr_latents"]))

    def __init__(self, *, levels: int = 16, base_resolution: int = 16, finest_resolution: int = 512,
                 log2_table_size: int = 12, latent_dim: int = 1, feature_dim: int = 1, hidden: int = 16,
                 hidden_layers: int = 2, dim_out: int = 3, rate_weight: float = 2e-4, mlp_bits: int = 32,
                 entropy: str = "auto", sinr_latents: bool = False, latent_init: float = 1.0,
                 decoder_scale: float = 0.05) -> None:
        if min(int(levels), int(base_resolution), int(latent_dim), int(feature_dim), int(hidden), int(dim_out)) < 1:
            raise ValueError("levels, base_resolution, latent_dim, feature_dim, hidden and dim_out must be >= 1")
        if int(finest_resolution) < int(base_resolution):
            raise ValueError("finest_resolution must be >= base_resolution")
        if not 2 <= int(log2_table_size) <= 24:
            raise ValueError(f"log2_table_size must be in 2..24, got {log2_table_size}")
        if int(hidden_layers) < 0 or float(rate_weight) < 0:
            raise ValueError("hidden_layers and rate_weight must be >= 0")
        if not (int(mlp_bits) == 32 or 2 <= int(mlp_bits) <= 16):
            raise ValueError(f"mlp_bits must be 32, 16, or 2..15 (uniform integers), got {mlp_bits}")
        if entropy not in ("auto", "rans", "brotli"):
            raise ValueError(f"entropy must be 'auto', 'rans' or 'brotli', got {entropy!r}")
        self.levels = int(levels)
        self.base_resolution = int(base_resolution)
        self.finest_resolution = int(finest_resolution)
        self.log2_table_size = int(log2_table_size)
        self.latent_dim = int(latent_dim)
        self.feature_dim = int(feature_dim)
        self.hidden = int(hidden)
        self.hidden_layers = int(hidden_layers)
        self.dim_out = int(dim_out)
        self.rate_weight = float(rate_weight)
        self.mlp_bits = int(mlp_bits)
        self.entropy = str(entropy)
        self.sinr_latents = bool(sinr_latents)
        self.latent_init = float(latent_init)
        self.decoder_scale = float(decoder_scale)

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"levels": self.levels, "base_resolution": self.base_resolution,
                "finest_resolution": self.finest_resolution, "log2_table_size": self.log2_table_size,
                "latent_dim": self.latent_dim, "feature_dim": self.feature_dim, "hidden": self.hidden,
                "hidden_layers": self.hidden_layers, "dim_out": self.dim_out, "rate_weight": self.rate_weight,
                "mlp_bits": self.mlp_bits, "entropy": self.entropy, "sinr_latents": self.sinr_latents,
                "latent_init": self.latent_init, "decoder_scale": self.decoder_scale}

    def build_model(self) -> SHACIRANet:
        return SHACIRANet(dim=2, levels=self.levels, base_resolution=self.base_resolution,
                          finest_resolution=self.finest_resolution, log2_table_size=self.log2_table_size,
                          latent_dim=self.latent_dim, feature_dim=self.feature_dim, hidden=self.hidden,
                          hidden_layers=self.hidden_layers, dim_out=self.dim_out, latent_init=self.latent_init,
                          decoder_scale=self.decoder_scale)

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        """The image on ``linspace(0, 1)`` axes (:func:`~sinr_adapters.framework.grids.unit_grid`), values in [0, 1]."""
        return image_signal(image, channels=self.dim_out, grid=unit_grid, name=name)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        return grid_of(unit_grid, shape, axes=2, method="SHACIRA")

    def tensor_names(self, model: nn.Module) -> list[str]:
        """The stored tensors in stream order (the prior is a training device and is not stored)."""
        return [k for k in model.state_dict() if not k.startswith("prior.")]

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        if model is None:
            with torch.device("meta"):
                model = self.build_model()
        names = [k for k in model.state_dict() if k.startswith("mlp.") and k.endswith(".weight")]
        return (["grid.latents"] if self.sinr_latents else []) + names

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        return ("f",) if self.mlp_bits == 32 else ("h",) if self.mlp_bits == 16 else ("q", self.mlp_bits)

    def sinr_layout(self, name: str, sinr: SINROptions) -> tuple[str, int | None]:
        """The latent tables (one long column) are cut into blocks of ``block_size`` (default 64) under
        the ``"auto"`` layout; the MLP's matrices follow ``sinr``."""
        if name == "grid.latents" and sinr.layout == "auto":
            return "blocks", sinr.block_size or 64
        return sinr.layout, sinr.block_size

    def rate_regularizer(self, model: SHACIRANet, pixels: int,
                         latents: torch.Tensor | None = None) -> Callable[[], torch.Tensor] | None:
        """``rate_weight`` times the estimated bits of the rounded latents per pixel (None at weight 0)."""
        if self.rate_weight <= 0:
            return None
        scale = self.rate_weight / float(pixels)
        return lambda: scale * model.rate_bits(latents)

    # ---- fit -------------------------------------------------------------------------------------
    def fit(self, signal: Signal, *, steps: int, lr: float | None = None, batch_size: int | None = None,
            device: str = "auto", progress: bool | None = None, seed: int = 0, latent_lr: float | None = None,
            model: nn.Module | None = None) -> tuple[SHACIRANet, training.FitLog]:
        """Train the grid, decoder, MLP and prior: Adam on MSE + ``rate_weight`` * estimated bits / pixel.

        ``lr`` (default 1e-2) drives the decoder, MLP and prior; ``latent_lr`` (default 5e-2) the
        latents, which must travel whole integers. Latents are rounded (straight-through) throughout.
        """
        dev = resolve_device(device)
        if model is None:
            torch.manual_seed(seed)
            model = self.build_model()
        if not isinstance(model, SHACIRANet):
            raise TypeError(f"SHACIRA fits a SHACIRANet, got a {type(model).__name__}")
        model = model.to(dev)
        model.round_latents = True
        sig = signal.to(dev)
        lat = model.grid.latents
        rest = [p for n, p in model.named_parameters() if n != "grid.latents"]
        groups = [{"params": [lat], "lr": self.latent_lr if latent_lr is None else float(latent_lr)},
                  {"params": rest, "lr": self.default_lr if lr is None else float(lr)}]
        gen = torch.Generator().manual_seed(seed)
        log = training.fit(model, groups, sig.coords, sig.values, steps=steps, batch_size=batch_size,
                       regularizer=self.rate_regularizer(model, signal.num_points), value_peak=signal.peak,
                       progress=progress, desc=f"{self.name} fit", generator=gen)
        return model, log

    # ---- compress --------------------------------------------------------------------------------
    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None,
                           sinr_lr: float | None = None, schedule: str = "cosine",
                           batch_size: int | None = None, progress: bool | None = None
                           ) -> tuple[bytes, dict[str, Any]]:
        """Write ``model`` as SHACIRA stores it, optionally with SINR (see the module docstring).

        Both paths get ``finetune_steps`` Adam steps: without SINR on the latents (rounded,
        straight-through, ``latent_lr / default_lr`` times the learning rate), the decoder and the MLP,
        with the rate penalty; with SINR on the sparse values (through the core's value quantizer) and
        every tensor SINR leaves alone (latents still rounded and penalised unless SINR codes them).
        """
        if not isinstance(model, SHACIRANet):
            raise TypeError(f"SHACIRA compresses a SHACIRANet, got a {type(model).__name__}")
        info: dict[str, Any] = {}
        setup = self.prepare_compression(model, sinr)
        info["omp_seconds"] = setup.omp_seconds
        dev, names, codes, trainable, specs = setup.device, setup.names, setup.codes, setup.trainable, setup.specs
        latents_coded = "grid.latents" in codes

        def materialize() -> dict[str, torch.Tensor]:
            return {k: ste_round(trainable[k]) if k == "grid.latents" and not latents_coded else setup.tensor(k)
                    for k in names}

        was_rounding = model.round_latents
        model.round_latents = False  # materialize() rounds (or decodes) the latents itself

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, materialize(), (x,))

        lr = self.finetune_learning_rate(with_sinr=bool(codes), finetune_lr=finetune_lr, sinr_lr=sinr_lr)
        groups = [{"params": [trainable[k] for k in names if k != "grid.latents" or latents_coded], "lr": lr}]
        if not latents_coded:
            groups.append({"params": [trainable["grid.latents"]], "lr": lr * self.latent_lr / self.default_lr})
        reg = None if latents_coded else self.rate_regularizer(model, signal.num_points, trainable["grid.latents"])
        sig = signal.to(dev)
        t1 = time.perf_counter()
        try:
            log = training.fit(forward, groups, sig.coords, sig.values, steps=finetune_steps, lr=lr, schedule=schedule,
                           batch_size=batch_size, regularizer=reg, value_peak=signal.peak, progress=progress,
                           desc=f"{self.name}{'+sinr' if codes else ''} fine-tune")
            info["finetune_seconds"] = time.perf_counter() - t1
            with torch.no_grad():
                info["psnr_finetuned"] = metrics.psnr_8bit(self._predict(forward, sig.coords), sig.values)
        finally:
            model.round_latents = was_rounding

        split = {"sinr_bytes": 0, "latent_bytes": 0, "float_bytes": 0}

        def store(buf: io.BytesIO, k: str, t: torch.Tensor) -> None:
            n0 = buf.tell()
            if k == "grid.latents":
                blob = self._code_latents(torch.round(t).numpy().astype(np.int64), model.grid)
                info["latent_coder"] = "rans" if blob[0] == CODERS["rans"] else "brotli"
                buf.write(blob)
                split["latent_bytes"] += buf.tell() - n0
                return
            if specs[k][0] == "q":  # per-tensor uniform integers: bits, step, Brotli section
                record, ints = stored_uniform(t, int(specs[k][1]))
                buf.write(record)
                write_section(buf, brotli.compress(ints.tobytes(), quality=11))
            else:
                buf.write(t.numpy().astype("<f4" if specs[k][0] == "f" else "<f2").tobytes())
            split["float_bytes"] += buf.tell() - n0

        buf, hlen, split["sinr_bytes"] = write_records(self, setup, signal.shape, store)
        data = container.finish_stream(buf)
        info.update(header_bytes=hlen, **split, checksum_bytes=4, finetune_log=log.to_dict(),
                    sinr_tensors=sorted(codes), num_latents=int(setup.state["grid.latents"].numel()))
        return data, info

    @staticmethod
    @torch.no_grad()
    def _predict(forward: Callable[[torch.Tensor], torch.Tensor], coords: torch.Tensor, chunk: int = 1 << 16
                 ) -> torch.Tensor:
        return torch.cat([forward(coords[i:i + chunk]) for i in range(0, coords.shape[0], chunk)]).float()

    def _code_latents(self, q: np.ndarray, grid: HashGrid) -> bytes:
        if np.abs(q).max(initial=0) > MAX_LATENT:
            raise ValueError("latents beyond +-32767 cannot be stored; lower latent_lr or raise rate_weight")
        candidates = []
        if self.entropy in ("auto", "rans"):
            per_level = [q[grid.level_slice(level)].reshape(-1) for level in range(grid.levels)]
            candidates.append(bytes([CODERS["rans"]]) + rans_encode(per_level))
        if self.entropy in ("auto", "brotli") or not candidates:
            candidates.append(bytes([CODERS["brotli"]]) + brotli_encode(q))
        return min(candidates, key=len)

    # ---- decompress ------------------------------------------------------------------------------
    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(2 * hidden_layers + 5, parameters)`` of a stream's SHACIRA network, counted from the grid
        geometry without building it. Limits beyond the constructor's: ``levels <= MAX_LEVELS``,
        resolutions ``<= MAX_RESOLUTION``, ``0 <= latent_init <= 1e6``, ``|decoder_scale| <= 1e6``."""
        levels = config_number(config, "levels", lo=1, hi=MAX_LEVELS)
        base = config_number(config, "base_resolution", lo=1, hi=MAX_RESOLUTION)
        finest = config_number(config, "finest_resolution", lo=base, hi=MAX_RESOLUTION)
        log2 = config_number(config, "log2_table_size", lo=2, hi=24)
        latent, feature = config_number(config, "latent_dim", lo=1), config_number(config, "feature_dim", lo=1)
        hidden, dim_out = config_number(config, "hidden", lo=1), config_number(config, "dim_out", lo=1)
        hidden_layers = config_number(config, "hidden_layers", lo=0)
        config_number(config, "mlp_bits", lo=2, hi=32)
        config_number(config, "latent_init", lo=0, hi=1e6)
        config_number(config, "decoder_scale", lo=-1e6, hi=1e6)
        tables = sum(min(1 << log2, (n + 1) ** 2) for n in grid_resolutions(levels, base, finest))
        dims = [levels * feature] + [hidden] * min(hidden_layers, 1) + [dim_out]
        mlp = sum((a + 1) * b for a, b in itertools.pairwise(dims)) + max(hidden_layers - 1, 0) * (hidden + 1) * hidden
        params = tables * latent + levels * feature * (latent + 1) + mlp + levels * latent  # + the prior
        return 2 * hidden_layers + 5, params

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """A SHACIRA stream holds an ``(H, W, dim_out)`` image."""
        if len(shape) != 3 or shape[2] != config["dim_out"]:
            raise StreamError(f"SHACIRA streams hold (H, W, {config['dim_out']}) images, got shape {shape}")

    def decompress(self, data: bytes, *, device: str = "cpu") -> Decoded:
        """Rebuild the model a stream describes.

        Every record is located and its length checked against the network's tensor shapes (found on
        the meta device) before the network is built or any tensor allocated.
        """
        header, pos, data, config = container.open_stream(self, data)
        adapter = container.stream_adapter(self, config)
        container.check_reference(adapter, header)
        n_tensors, _ = adapter.stream_model_size(config)
        if n_tensors > len(data) - pos:  # every record takes a byte at least
            raise StreamError(f"stream truncated: its network stores {n_tensors} tensors, only {len(data) - pos} "
                              "bytes follow the header")
        with torch.device("meta"):  # names and shapes of the tensors, nothing allocated
            probe = adapter.build_model()
        grid = probe.grid
        names = adapter.tensor_names(probe)
        shapes = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
        sinr_names = set(adapter.sinr_tensor_names(probe)) if header["sinr"] else set()

        # locate every record (lengths checked, nothing decoded)
        r = Reader(data, pos)
        records: dict[str, tuple[str, Any]] = {}
        for k in names:
            numel = math.prod(shapes[k])
            if k in sinr_names:
                records[k] = ("s", r.section(what=f"the SINR section of {k!r}"))
            elif k == "grid.latents":
                start = r.pos
                coder = r.u8("the latent coder id")
                if coder == CODERS["rans"]:
                    for level in range(grid.levels):
                        r.section(what=f"the rANS section of latent level {level}")
                elif coder == CODERS["brotli"]:
                    r.u8("the latent integer width")
                    r.section(what="the latent section")
                else:
                    raise StreamError(f"unknown latent coder id {coder}")
                records[k] = ("latents", bytes(r.data[start:r.pos]))
            elif adapter.mlp_bits < 16:
                bits, step = read_quantizer(r.take(5, f"the quantizer of {k!r}"), k)
                if bits != adapter.mlp_bits:
                    raise StreamError(f"bad quantizer parameters for {k!r}: {bits} bits, the stream says "
                                      f"mlp_bits={adapter.mlp_bits}")
                records[k] = ("q", (bits, step, r.section(what=f"the integer section of {k!r}")))
            else:
                width = 4 if adapter.mlp_bits == 32 else 2
                records[k] = ("f", r.take(width * numel, f"tensor {k!r}"))
        if r.pos != len(data):
            raise StreamError(f"{len(data) - r.pos} trailing bytes after the stream")

        # decode (allocations bounded by the network's size, checked by open_stream)
        tensors: dict[str, torch.Tensor] = {}
        for k, (kind, rec) in records.items():
            shape, numel = shapes[k], math.prod(shapes[k])
            if kind == "s":
                tensors[k] = sparse_tensor_from_bytes(rec, shape, name=k)
            elif kind == "latents":
                sub = Reader(rec, 1)
                if rec[0] == CODERS["rans"]:
                    counts = [(s.stop - s.start) * grid.features for s in map(grid.level_slice, range(grid.levels))]
                    q = np.concatenate(rans_decode(sub, counts))
                else:
                    q = brotli_decode(sub, numel)
                tensors[k] = torch.from_numpy(q.astype(np.float32)).reshape(shape)
            elif kind == "q":
                bits, step, blob = rec
                width = 1 if bits <= 8 else 2
                raw = inflate(blob, width * numel, f"integer section of {k!r}")
                ints = np.frombuffer(raw, dtype="<u1" if width == 1 else "<u2")
                tensors[k] = from_stored_uniform(ints, bits, step).reshape(shape)
            else:
                arr = np.frombuffer(rec, dtype="<f4" if adapter.mlp_bits == 32 else "<f2").astype(np.float32)
                tensors[k] = torch.from_numpy(arr).reshape(shape)
        model = adapter.build_model()
        own = model.state_dict()
        model.load_state_dict({**own, **tensors}, strict=True)
        model.round_latents = "grid.latents" not in sinr_names
        shape = tuple(int(s) for s in header["shape"])
        return Decoded(model=model.to(resolve_device(device)), shape=shape, header=dict(header))
