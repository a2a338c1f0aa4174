"""Point-cloud attributes: NIC (Pistilli et al. 2022, "Signal compression via neural implicit
representations") with and without SINR.

The method: a SIREN maps a point's position ``(x, y, z)`` to its colour (RGB in [0, 1]); the geometry is
known to the decoder (attribute coding), so a stream holds only the network. It is fitted with a weighted
squared error in YUV (BT.709; weights 0.6, 0.2, 0.2 for Y, U, V), starting from a **meta-learned
initialisation** ``theta0`` learnt on held-out clouds (the harness's preparation hook; we use Reptile, a
first-order meta-learning rule, where NIC used MAML). The update ``theta - theta0`` of every tensor is
quantized with a per-tensor uniform quantizer whose step comes from the tensor's range
(``max|.| / (2^(bits-1) - 1)``), fine-tuned quantization-aware, and the integers of all tensors are
entropy-coded together with the core's static rANS coder (:mod:`sinr_codecs.rans`). Quality is the
PSNR of the luma (Y-PSNR, BT.709, decoded colours clamped and rounded to 8 bits); the rate is in bits
per point.

With SINR, the hidden-to-hidden update matrices ``theta - theta0`` are SINR-coded (rows = neurons; the
SparseCode streams use ``--sinr-entropy``), the other tensors are stored as above.

Stream: the :mod:`sinr_adapters.framework` header (flag 2 and the fingerprint of ``theta0`` when there is
one), then per tensor in state_dict order either a SINR section (varint length + SparseCode stream) or a
5-byte quantizer record ``<Bf`` (bits, step), then one section holding the rANS stream of every
quantized integer (signed, in tensor order), then the CRC-32. The signal shape is ``(N, 3)``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from sinr_codecs import rans
from sinr_codecs.errors import StreamError
from torch import nn

from sinr_adapters.rate_coding import meta_init
from sinr_adapters.framework import nets
from sinr_adapters.framework.container import (
    MAX_FREQUENCY,
    Reader,
    config_number,
    fingerprint,
    read_quantizer,
    sparse_tensor_from_bytes,
    write_section,
)
from sinr_adapters.framework.protocol import Decoded
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.framework.checkpoints import map_state_dict
from sinr_adapters.framework.quantizers import uniform_dequantize, uniform_quantize
from sinr_adapters.framework.checkpoints import check_state_dict
from sinr_adapters.framework.fields import FieldAdapter, FieldSignal, Siren, siren_parameters
from .pointclouds import CLOUDS, HELD_OUT_CLOUDS, Cloud, load_cloud

__all__ = ["NICAdapter", "YUV_WEIGHTS", "rgb_to_yuv", "y_psnr"]

YUV_WEIGHTS = (0.6, 0.2, 0.2)
"""Weights of the Y, U and V squared errors in the fitting loss."""

_BT709 = torch.tensor([[0.2126, 0.7152, 0.0722],
                       [-0.1146, -0.3854, 0.5],
                       [0.5, -0.4542, -0.0458]])


def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    """BT.709 RGB -> YUV (Y in [0, 1], U and V in [-0.5, 0.5]); ``(..., 3)``."""
    return rgb @ _BT709.to(rgb).T


def y_psnr(decoded: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of the BT.709 luma of ``decoded`` against ``reference``'s, both RGB clamped and rounded to
    8-bit levels, peak 1."""
    def levels(a: np.ndarray) -> np.ndarray:
        return np.round(np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0) * 255.0) / 255.0

    w = _BT709[0].double().numpy()
    err = float(np.mean((levels(decoded) @ w - levels(reference) @ w) ** 2))
    return math.inf if err == 0 else -10.0 * math.log10(err)


class NICAdapter(FieldAdapter):
    """NIC for point-cloud colours, end to end (see the module docstring).

    Parameters
    ----------
    width : int, default 64
        Hidden width.
    layers : int, default 3
        Sine layers; ``layers - 1`` hidden-to-hidden matrices.
    w0, w0_initial : float, default 30
        SIREN frequencies.
    bits : int, default 8
        Quantizer bits of every stored tensor update (2..16).
    init : mapping of str to tensor, path, or None
        The meta-learned initialisation ``theta0`` (a state_dict of the SIREN, or an ``.npz`` written by
        :meth:`save_init`); None: updates are relative to zero.

    Examples
    --------
    >>> a = NICAdapter(width=8, layers=3)
    >>> a.sinr_tensor_names(a.build_model())
    ['net.1.linear.weight', 'net.2.linear.weight']
    """

    name: ClassVar[str] = "nic"
    default_lr: ClassVar[float] = 1e-3
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-3

    @classmethod
    def describe(cls):
        """How the harness runs NIC: coloured clouds, Y-PSNR vs bits per point, widths as rate points,
        ``theta0`` meta-learnt on held-out clouds per width."""
        from sinr_adapters.framework.spec import AdapterSpec, Metric, Option, Prepared, RateUnit, SignalSource

        def prepare(adapter, o, ctx):
            if o["meta_steps"] < 1:
                return Prepared(adapter)
            clouds = ctx.held_out_signals()
            meta = adapter.meta_learn(clouds, outer_steps=o["meta_steps"], inner_steps=o["inner_steps"],
                                      device=ctx.device, seed=ctx.seed, progress=ctx.progress)
            return Prepared(meta, {"meta_clouds": list(ctx.held_out), "meta_steps": o["meta_steps"],
                                   "inner_steps": o["inner_steps"]},
                            save=meta.save_init, message=f"meta-learned theta0 (Reptile) on {list(ctx.held_out)}")

        source = SignalSource("point-cloud", CLOUDS, load_cloud, ("sphere_astronaut",), HELD_OUT_CLOUDS[:4], 4096,
                              "points per cloud", RateUnit("bits/point", "bits per point (bytes written × 8 / points)",
                                                           "point"), 16)
        return AdapterSpec(
            summary="NIC: SIREN from position to colour, theta - theta0 quantized per tensor + rANS", rate="widths",
            rate_key="width", bits="bits", source=source, metric=Metric("Y-PSNR", "dB", True, y_psnr),
            render=lambda adapter, model, signal: adapter.predict(model, signal.coords).cpu().numpy(),
            prepare=prepare, uses_held_out=lambda o: o["meta_steps"] > 0, shared_tag="init", rate_aware=False,
            options=(Option("widths", int, [32, 64], "hidden widths (the rate points)", multiple=True, minimum=1),
                     Option("layers", int, 3, "sine layers", minimum=2),
                     Option("bits", int, 8, "quantizer bits of theta - theta0", minimum=2, maximum=16),
                     Option("meta_steps", int, 100, "Reptile outer steps of theta0 on held-out clouds (0: none)",
                            minimum=0),
                     Option("inner_steps", int, 8, "Adam steps per Reptile outer step", minimum=1)),
            build=lambda cls, o, width, ctx: cls(width=width, layers=o["layers"], bits=o["bits"]))

    def __init__(self, *, width: int = 64, layers: int = 3, w0: float = 30.0, w0_initial: float = 30.0,
                 bits: int = 8, init: Mapping[str, torch.Tensor] | str | os.PathLike | None = None) -> None:
        if int(width) < 1 or int(layers) < 2:
            raise ValueError("width must be >= 1 and layers >= 2")
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        for k, v in (("w0", w0), ("w0_initial", w0_initial)):
            if not 1 / MAX_FREQUENCY <= float(v) <= MAX_FREQUENCY:
                raise ValueError(f"{k} must be in [{1 / MAX_FREQUENCY:g}, {MAX_FREQUENCY:g}], got {v}")
        self.width, self.layers, self.bits = int(width), int(layers), int(bits)
        self.w0, self.w0_initial = float(w0), float(w0_initial)
        self._init: dict[str, torch.Tensor] | None = None
        if init is not None:
            sd = meta_init.read_init(init) if not isinstance(init, Mapping) else dict(init)
            with torch.device("meta"):  # refuse an init of another shape before allocating the network
                check_state_dict(self._bare_model().state_dict(), sd, strict=True, what="NIC initialisation")
            model = self._bare_model()
            map_state_dict(model, sd, strict=True, what="NIC initialisation")
            self._init = {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"NICAdapter({args}{', init=<theta0>' if self._init is not None else ''})"

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"width": self.width, "layers": self.layers, "w0": self.w0, "w0_initial": self.w0_initial,
                "bits": self.bits}

    def with_config(self, config: Mapping[str, Any]) -> NICAdapter:
        return NICAdapter(**config, init=self._init)

    def _bare_model(self) -> Siren:
        return Siren(dim_in=3, dim_out=3, width=self.width, layers=self.layers, w0=self.w0, w0_initial=self.w0_initial)

    def build_model(self) -> Siren:
        model = self._bare_model()
        if self._init is not None:
            model.load_state_dict(self._init, strict=True)
        return model

    def reference(self) -> dict[str, torch.Tensor] | None:
        return self._init

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``sum_c w_c * mean((YUV(prediction)_c - YUV(target)_c)^2)`` with :data:`YUV_WEIGHTS`."""
        d = (rgb_to_yuv(prediction) - rgb_to_yuv(target)) ** 2
        return (d.mean(dim=0) * torch.tensor(YUV_WEIGHTS, device=d.device, dtype=d.dtype)).sum()

    def signal_from(self, raw: Cloud, *, name: str = "") -> FieldSignal:
        """A :class:`~sinr_adapters.methods.nic.pointclouds.Cloud` -> positions and RGB colours (reference: the colours)."""
        if not isinstance(raw, Cloud):
            raise TypeError(f"expected a sinr_adapters.methods.nic.pointclouds.Cloud, got {type(raw).__name__}")
        pos = torch.from_numpy(np.ascontiguousarray(raw.positions, dtype=np.float32))
        col = torch.from_numpy(np.ascontiguousarray(raw.colours, dtype=np.float32))
        n = pos.shape[0]
        return FieldSignal(pos, col, (n, 3), (0.0, 1.0), "point-cloud", name or raw.name,
                           reference=raw.colours.astype(np.float32), elements=n)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        raise ValueError("NIC codes attributes: decoding needs the cloud's positions (decode(data, positions=...))")

    def sinr_tensor_names(self, model: nn.Module) -> list[str]:
        return [f"net.{i}.linear.weight" for i in range(1, self.layers)]

    def storage(self, name: str, tensor: torch.Tensor) -> tuple:
        return ("q", self.bits)

    # ---- meta-learned initialisation ---------------------------------------------------------------
    @property
    def init(self) -> dict[str, torch.Tensor] | None:
        """``theta0`` (a copy), or ``None``."""
        return None if self._init is None else {k: v.clone() for k, v in self._init.items()}

    def save_init(self, path: str | os.PathLike) -> None:
        """Write ``theta0`` and the configuration to an ``.npz`` (no pickle)."""
        if self._init is None:
            raise ValueError("this adapter has no meta-learned initialisation to save")
        meta_init.save_init(path, self._init, self.config())

    @classmethod
    def from_init_file(cls, path: str | os.PathLike) -> NICAdapter:
        """The adapter (configuration and ``theta0``) saved by :meth:`save_init`."""
        return cls(**meta_init.read_init_config(path, "NICAdapter.save_init"), init=path)

    def meta_learn(self, clouds: Sequence[Cloud], *, outer_steps: int = 100, inner_steps: int = 8,
                   inner_lr: float = 1e-3, outer_lr: float = 0.1, device: str = "auto", seed: int = 0,
                   progress: bool | None = None) -> NICAdapter:
        """Learn ``theta0`` over held-out ``clouds`` by Reptile (first-order meta-learning).

        Each outer step takes the next cloud, runs ``inner_steps`` Adam steps of :meth:`loss` from
        ``theta0`` on it and moves ``theta0`` by ``outer_lr * (theta - theta0)``. Returns a new adapter
        holding ``theta0``.
        """
        if not clouds:
            raise ValueError("meta_learn needs at least one cloud")
        dev = nets.resolve_device(device)
        signals = [self.signal_from(c).to(dev) for c in clouds]
        theta0 = meta_init.reptile(self._bare_model, signals, self.loss, outer_steps=outer_steps,
                                   inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr, device=dev,
                                   seed=seed, desc="nic meta-learn", progress=progress)
        return NICAdapter(**self.config(), init=theta0)

    # ---- compress ----------------------------------------------------------------------------------
    def compress_with_info(self, model: nn.Module, signal: FieldSignal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None,
                           sinr_lr: float | None = None, schedule: str = "cosine",
                           batch_size: int | None = None, progress: bool | None = None
                           ) -> tuple[bytes, dict[str, Any]]:
        """Write ``model`` as NIC stores it (module docstring), optionally with SINR on ``theta - theta0``."""
        info: dict[str, Any] = {}
        setup = self.prepare_compression(model, sinr)
        info["omp_seconds"] = setup.omp_seconds
        _, _, log = self.finetune(model, setup, signal, info, steps=finetune_steps, finetune_lr=finetune_lr,
                                  sinr_lr=sinr_lr, schedule=schedule, batch_size=batch_size, progress=progress)
        ints: list[np.ndarray] = []

        def store(buf: io.BytesIO, k: str, t: torch.Tensor) -> None:
            q, step = uniform_quantize(t, self.bits)
            buf.write(bytes([self.bits]) + np.float32(step).astype("<f4").tobytes())
            ints.append(q.numpy().reshape(-1))

        buf, hlen, sinr_bytes = self.write_records(setup, signal.shape, store)
        symbols = np.concatenate(ints) if ints else np.zeros(0, np.int64)
        int_bytes = write_section(buf, rans.encode(symbols) if symbols.size else b"")
        data = self.finish_stream(buf)
        info.update(header_bytes=hlen, sinr_bytes=sinr_bytes, int_bytes=int_bytes, checksum_bytes=4,
                    finetune_log=log.to_dict(), sinr_tensors=sorted(setup.codes))
        return data, info

    # ---- decompress --------------------------------------------------------------------------------
    def decompress(self, data: bytes, *, device: str = "cpu") -> Decoded:
        """Rebuild the network a stream describes (needs the ``theta0`` it was written with, if any).

        Every record is located and checked against the network's tensor shapes (found on the meta
        device) before any tensor is allocated; the rANS section must hold exactly one integer per
        quantized value, each within its quantizer's range.
        """
        header, pos, body, config = self.open_stream(data)
        n_tensors, _ = self.stream_model_size(config)
        if n_tensors >= len(body) - pos:
            raise StreamError(f"stream truncated: its network stores {n_tensors} tensors, only "
                              f"{len(body) - pos} bytes follow the header")
        adapter = self.stream_adapter(config)
        ref = adapter.reference()
        if (header["ref"] is None) != (ref is None) or (ref is not None and header["ref"] != fingerprint(ref)[:8]):
            raise StreamError("the stream's reference weights (meta-learned initialisation) differ from this "
                              "adapter's: decode with the adapter (and init file) that wrote it")
        with torch.device("meta"):
            probe = adapter._bare_model()
        meta = probe.state_dict()
        names = list(meta)
        shapes = {k: tuple(meta[k].shape) for k in names}
        sinr_names = set(adapter.sinr_tensor_names(probe)) if header["sinr"] else set()
        r = Reader(body, pos)
        records: list[tuple[str, bool, Any]] = []
        for k in names:
            if k in sinr_names:
                records.append((k, True, r.section(what=f"the SINR section of {k!r}")))
            else:
                bits, step = read_quantizer(r.take(5, f"the quantizer of {k!r}"), k)
                if bits != adapter.bits:
                    raise StreamError(f"quantizer of {k!r} has {bits} bits, the configuration says {adapter.bits}")
                records.append((k, False, step))
        payload = r.section(what="the rANS section")
        if r.pos != len(body):
            raise StreamError(f"{len(body) - r.pos} trailing bytes after the stream")
        count = sum(math.prod(shapes[k]) for k, s, _ in records if not s)
        qmax = 2 ** (adapter.bits - 1) - 1
        symbols = rans.decode(payload, count, max_alphabet=2 * qmax + 1) if count else np.zeros(0, np.int64)
        if count == 0 and payload:
            raise StreamError("unexpected rANS section")
        if symbols.size and int(np.abs(symbols).max()) > qmax:
            raise StreamError(f"a quantized value lies outside the {adapter.bits}-bit quantizer's range")
        tensors: dict[str, torch.Tensor] = {}
        off = 0
        for k, is_sinr, rec in records:
            if is_sinr:
                tensors[k] = sparse_tensor_from_bytes(rec, shapes[k], name=k)
            else:
                n = math.prod(shapes[k])
                tensors[k] = uniform_dequantize(torch.from_numpy(symbols[off:off + n]), rec).reshape(shapes[k])
                off += n
        if ref is not None:
            tensors = {k: tensors[k] + ref[k].cpu().float() for k in names}
        model = adapter._bare_model()
        model.load_state_dict(tensors, strict=True)
        return Decoded(model=model.to(nets.resolve_device(device)), shape=tuple(header["shape"]), header=header)

    def decode(self, data: bytes, *, positions: np.ndarray | torch.Tensor, device: str = "cpu") -> np.ndarray:
        """Stream + the cloud's positions ``(N, 3)`` -> decoded colours ``(N, 3)`` in [0, 1] (not clamped)."""
        dec = self.decompress(data, device=device)
        pos = torch.as_tensor(np.asarray(positions, dtype=np.float32))
        if tuple(pos.shape) != tuple(dec.shape):
            raise ValueError(f"the stream codes {dec.shape[0]} points' colours, got positions of shape "
                             f"{tuple(pos.shape)}")
        return self.predict(dec.model, pos).cpu().numpy()

    # ---- stream checks (decoding) ------------------------------------------------------------------
    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(2 * (layers + 1), parameters)`` from the configuration alone."""
        width, layers = config_number(config, "width", lo=1), config_number(config, "layers", lo=2)
        for k in ("w0", "w0_initial"):
            config_number(config, k, lo=1 / MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "bits", lo=2, hi=16)
        return 2 * (layers + 1), siren_parameters(3, 3, width, layers)

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """A NIC stream holds the colours of ``N`` points, ``(N, 3)``."""
        if len(shape) != 2 or shape[1] != 3:
            raise StreamError(f"NIC streams hold (N, 3) point colours, got shape {shape}")
