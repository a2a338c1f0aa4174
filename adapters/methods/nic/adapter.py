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

Stream: the shared records (:mod:`sinr_adapters.framework.records`; flag 2 and the fingerprint of
``theta0`` when there is one): per tensor in state_dict order a SINR section or a 5-byte quantizer record
``<Bf`` (bits, step), then one section holding the rANS stream of every quantized integer (signed, in
tensor order). The signal shape is ``(N, 3)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import resolve_device

from ...framework import records
from ...framework.fields import FieldAdapter
from ...framework.nets import Siren
from ...framework.signals import Signal
from ...framework.spec import AdapterSpec, Context, Metric, Option, Prepared, RateUnit, SignalSource
from ...rate_coding import meta_init
from ...rate_coding.meta_init import MetaInitialised
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


class NICAdapter(MetaInitialised, FieldAdapter):
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
    >>> a.storage("net.0.linear.weight", None), a.reference() is None
    (('q', 8), True)
    """

    name: ClassVar[str] = "nic"
    dim_in: ClassVar[int] = 3
    dim_out: ClassVar[int] = 3
    frequency_keys: ClassVar[tuple[str, ...]] = ("w0", "w0_initial")

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the harness runs NIC: coloured clouds, Y-PSNR vs bits per point, widths as rate points,
        ``theta0`` meta-learnt on held-out clouds per width."""
        def prepare(adapter: NICAdapter, o: Mapping[str, Any], ctx: Context) -> Prepared:
            if o["meta_steps"] < 1:
                return Prepared(adapter)
            meta = adapter.meta_learn(ctx.held_out_signals(), outer_steps=o["meta_steps"], inner_steps=o["inner_steps"],
                                      device=ctx.device, seed=ctx.seed, progress=ctx.progress)
            return Prepared(meta, {"meta_clouds": list(ctx.held_out), "meta_steps": o["meta_steps"],
                                   "inner_steps": o["inner_steps"]},
                            save=meta.save_init, message=f"meta-learned theta0 (Reptile) on {list(ctx.held_out)}")

        unit = RateUnit("bits/point", "bits per point (bytes written × 8 / points)", "point")
        return cls.field_spec(
            summary="NIC: SIREN from position to colour, theta - theta0 quantized per tensor + rANS",
            source=SignalSource("point-cloud", CLOUDS, load_cloud, ("sphere_astronaut",), HELD_OUT_CLOUDS[:4], 4096,
                                "points per cloud", unit, 16),
            metric=Metric("Y-PSNR", "dB", True, y_psnr), layers_help="sine layers", default_bits=8,
            bits_help="quantizer bits of theta - theta0", harness_only=("meta_steps", "inner_steps"),
            options=(Option("meta_steps", int, 100, "Reptile outer steps of theta0 on held-out clouds (0: none)",
                            minimum=0),
                     Option("inner_steps", int, 8, "Adam steps per Reptile outer step", minimum=1)),
            render=lambda adapter, model, signal: adapter.predict(model, signal.coords).cpu().numpy(),
            prepare=prepare, uses_held_out=lambda o: o["meta_steps"] > 0, shared_tag="init", rate_aware=False)

    def __init__(self, *, width: int = 64, layers: int = 3, w0: float = 30.0, w0_initial: float = 30.0,
                 bits: int = 8, init: Mapping[str, torch.Tensor] | str | os.PathLike[str] | None = None) -> None:
        super().__init__(width=width, layers=layers, bits=bits)
        self.w0, self.w0_initial = self.check_frequency("w0", w0), self.check_frequency("w0_initial", w0_initial)
        if init is not None:
            self._init = self.load_init(init)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"NICAdapter({args}{', init=<theta0>' if self._init is not None else ''})"

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {**super().config(), "w0": self.w0, "w0_initial": self.w0_initial}

    def with_config(self, config: Mapping[str, Any]) -> NICAdapter:
        return NICAdapter(**config, init=self._init)

    def bare_model(self) -> Siren:
        return Siren(dim_in=3, dim_out=3, width=self.width, layers=self.layers, w0=self.w0, w0_initial=self.w0_initial)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``sum_c w_c * mean((YUV(prediction)_c - YUV(target)_c)^2)`` with :data:`YUV_WEIGHTS`."""
        d = (rgb_to_yuv(prediction) - rgb_to_yuv(target)) ** 2
        return (d.mean(dim=0) * torch.tensor(YUV_WEIGHTS, device=d.device, dtype=d.dtype)).sum()

    def signal_from(self, raw: Any, *, name: str = "") -> Signal:
        """A :class:`~sinr_adapters.methods.nic.pointclouds.Cloud` -> positions and RGB colours (reference:
        the colours)."""
        if not isinstance(raw, Cloud):
            raise TypeError(f"expected a sinr_adapters.methods.nic.pointclouds.Cloud, got {type(raw).__name__}")
        pos = torch.from_numpy(np.ascontiguousarray(raw.positions, dtype=np.float32))
        col = torch.from_numpy(np.ascontiguousarray(raw.colours, dtype=np.float32))
        n = pos.shape[0]
        return Signal(pos, col, (n, 3), (0.0, 1.0), "point-cloud", name or raw.name,
                      reference=raw.colours.astype(np.float32), elements=n)

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        raise ValueError("NIC codes attributes: decoding needs the cloud's positions (decode(data, positions=...))")

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        """Every tensor update ``theta - theta0`` as ``bits``-bit integers."""
        return ("q", self.bits)

    def code_integers(self, ints: Sequence[np.ndarray]) -> bytes:
        """The signed integers ``q`` of every tensor in one rANS stream
        (:func:`~sinr_adapters.framework.records.rans_integers`)."""
        return records.rans_integers(ints, offset=2 ** (self.bits - 1) - 1)

    def decode_integers(self, payload: bytes, tensors: Sequence[tuple[int, int]]) -> bytes:
        return records.unrans_integers(payload, tensors, offset=2 ** (self.bits - 1) - 1)

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """A NIC stream holds the colours of ``N`` points, ``(N, 3)``."""
        if len(shape) != 2 or shape[1] != 3:
            raise StreamError(f"NIC streams hold (N, 3) point colours, got shape {shape}")

    def decode(self, data: bytes, *, device: str = "cpu", positions: np.ndarray | torch.Tensor | None = None
               ) -> np.ndarray:
        """Stream + the cloud's positions ``(N, 3)`` -> decoded colours ``(N, 3)`` in [0, 1] (not clamped)."""
        if positions is None:
            raise ValueError("NIC codes a point cloud's colours: decoding needs its positions (positions=...)")
        dec = self.decompress(data, device=device)
        pos = torch.as_tensor(np.asarray(positions, dtype=np.float32))
        if tuple(pos.shape) != tuple(dec.shape):
            raise ValueError(f"the stream codes {dec.shape[0]} points' colours, got positions of shape "
                             f"{tuple(pos.shape)}")
        return self.predict(dec.model, pos).cpu().numpy()

    # ---- meta-learned initialisation ---------------------------------------------------------------
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
        dev = resolve_device(device)
        signals = [self.signal_from(c).to(dev) for c in clouds]
        theta0 = meta_init.reptile(self.bare_model, signals, self.loss, outer_steps=outer_steps,
                                   inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr, device=dev,
                                   seed=seed, desc="nic meta-learn", progress=progress)
        return NICAdapter(**self.config(), init=theta0)
