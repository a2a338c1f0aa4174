"""Audio: a 1-D SIREN fitted to a waveform, with and without SINR.

The method (SIREN's audio experiment, as the SINR paper uses it): a SIREN ``t -> amplitude`` with
coordinates ``linspace(-1, 1, T)`` over the clip and a first-layer frequency ``w0_initial = 3000`` (the
SIREN paper's choice for audio; the hidden layers use 30) is fitted to a mono waveform in [-1, 1] by the
mean squared error. Quality is the signal-to-noise ratio of the decoded waveform,
``10 log10(sum x^2 / sum (x - x_hat)^2)`` in dB; the rate is in bits per sample.

Storage without SINR (the SINR paper's baselines): the hidden-to-hidden matrices as per-tensor uniform
``bits``-bit integers (16 by default) + Brotli, the first layer in float32 (its weights are multiplied by
``w0_initial = 3000``: float16 rounding would shift their phases by up to about a radian), the rest in
float16; ``bits`` is the fair baseline's knob.
With SINR the hidden-to-hidden matrices are SINR-coded (rows = neurons).

Signals are synthesized (:mod:`sinr_adapters.methods.audio.waveforms`): ``--size`` is the number of samples at 16 kHz
(16000, one second, by default).

Stream: the :mod:`sinr_adapters.framework` container; the signal shape in the header is ``(T, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from sinr_codecs.errors import StreamError
from torch import nn

from sinr_adapters.framework import nets
from sinr_adapters.framework.container import MAX_FREQUENCY, config_number
from sinr_adapters.framework.fields import FieldAdapter, FieldSignal, Siren, siren_parameters
from .waveforms import RATE, WAVEFORMS, load_waveform

__all__ = ["AudioAdapter", "snr"]


_PCM_SCALE = {np.dtype(np.int16): 2.0 ** 15, np.dtype(np.int32): 2.0 ** 31}


def _waveform_array(raw: np.ndarray) -> np.ndarray:
    """A mono waveform as float32 ``(T,)`` in [-1, 1] (see :meth:`AudioAdapter.signal_from`)."""
    w = np.asarray(raw)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1:
        raise ValueError(f"expected a mono waveform (T,) or (T, 1), got shape {w.shape}: mix the channels or pick one")
    if w.dtype in _PCM_SCALE:
        w = w.astype(np.float64) / _PCM_SCALE[w.dtype]
    elif not np.issubdtype(w.dtype, np.floating):
        raise ValueError(f"waveform samples must be floats in [-1, 1] or int16/int32 PCM, got dtype {w.dtype}")
    if w.size < 2:
        raise ValueError(f"a waveform needs at least 2 samples, got {w.size}")
    if not np.all(np.isfinite(w)):
        raise ValueError("waveform samples must be finite")
    peak = float(np.abs(w).max())
    if peak > 1.0:
        raise ValueError(f"waveform samples must lie in [-1, 1], the peak is {peak:g}: divide by the peak")
    return w.astype(np.float32)


def snr(decoded: np.ndarray, reference: np.ndarray) -> float:
    """Signal-to-noise ratio in dB of ``decoded`` against ``reference`` (inf when equal)."""
    ref = np.asarray(reference, dtype=np.float64)
    err = float(np.sum((np.asarray(decoded, dtype=np.float64) - ref) ** 2))
    sig = float(np.sum(ref ** 2))
    return math.inf if err == 0 else 10.0 * math.log10(max(sig, 1e-300) / err)


class AudioAdapter(FieldAdapter):
    """Audio SIREN, end to end (see the module docstring).

    Parameters
    ----------
    width : int, default 64
        Hidden width.
    layers : int, default 3
        Sine layers; ``layers - 1`` hidden-to-hidden matrices.
    w0, w0_initial : float, default 30, 3000
        SIREN frequencies of the hidden layers and of the first layer.
    bits : int, default 16
        Storage bits of the hidden-to-hidden matrices without SINR (2..16).

    Examples
    --------
    >>> a = AudioAdapter(width=8, layers=3)
    >>> a.sinr_tensor_names(a.build_model())
    ['net.1.linear.weight', 'net.2.linear.weight']
    """

    name: ClassVar[str] = "audio"
    default_lr: ClassVar[float] = 1e-4
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-4

    @classmethod
    def describe(cls):
        """How the harness runs audio: synthesized waveforms, SNR vs bits per sample, widths as rate points."""
        from sinr_adapters.framework.spec import AdapterSpec, Metric, Option, RateUnit, SignalSource

        source = SignalSource("audio", tuple(WAVEFORMS), load_waveform, ("chord",), (), RATE,
                              f"samples at {RATE} Hz", RateUnit("bits/sample", "bits per sample (bytes written × 8 / "
                                                                "samples)", "sample"), 16)
        return AdapterSpec(
            summary="a 1-D SIREN on a synthesized waveform (SNR vs bits per sample)", rate="widths", rate_key="width",
            bits="bits", source=source, metric=Metric("SNR", "dB", True, snr),
            options=(Option("widths", int, [32, 64], "hidden widths (the rate points)", multiple=True, minimum=1),
                     Option("layers", int, 3, "sine layers", minimum=2),
                     Option("w0_initial", float, 3000.0, "first-layer SIREN frequency (SIREN's audio: 3000)",
                            minimum=1e-3, maximum=MAX_FREQUENCY),
                     Option("bits", int, 16, "storage bits of the hidden matrices without SINR", minimum=2,
                            maximum=16)),
            build=lambda cls, o, width, ctx: cls(width=width, layers=o["layers"], w0_initial=o["w0_initial"],
                                                 bits=o["bits"]))

    def __init__(self, *, width: int = 64, layers: int = 3, w0: float = 30.0, w0_initial: float = 3000.0,
                 bits: int = 16) -> None:
        if int(width) < 1 or int(layers) < 2:
            raise ValueError("width must be >= 1 and layers >= 2")
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        for k, v in (("w0", w0), ("w0_initial", w0_initial)):
            if not 1 / MAX_FREQUENCY <= float(v) <= MAX_FREQUENCY:
                raise ValueError(f"{k} must be in [{1 / MAX_FREQUENCY:g}, {MAX_FREQUENCY:g}], got {v}")
        self.width, self.layers, self.bits = int(width), int(layers), int(bits)
        self.w0, self.w0_initial = float(w0), float(w0_initial)

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "layers": self.layers, "w0": self.w0, "w0_initial": self.w0_initial,
                "bits": self.bits}

    def build_model(self) -> Siren:
        return Siren(dim_in=1, dim_out=1, width=self.width, layers=self.layers, w0=self.w0,
                     w0_initial=self.w0_initial)

    def signal_from(self, raw: np.ndarray, *, name: str = "") -> FieldSignal:
        """A mono waveform -> a signal of ``T`` samples.

        Parameters
        ----------
        raw : numpy.ndarray
            ``(T,)`` or ``(T, 1)``, ``T >= 2``: floats in [-1, 1], or 16- / 32-bit integer PCM (divided by
            ``2^15`` / ``2^31``, as WAV readers return it).

        Raises
        ------
        ValueError
            Another shape (several channels: mix them or pick one first), fewer than 2 samples,
            non-finite values, floats outside [-1, 1] (divide by the peak), another integer type.
        """
        w = _waveform_array(raw)
        values = torch.from_numpy(w[:, None].copy())
        return FieldSignal(nets.linspace_grid(w.size), values, (w.size, 1), (-1.0, 1.0), "audio", name,
                           reference=values.numpy().copy())

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        if len(shape) != 1:
            raise ValueError(f"audio renders 1-D signals, got grid shape {tuple(shape)}")
        return nets.linspace_grid(int(shape[0]))

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        return values / 2.0 + 0.5

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray:
        """The decoded waveform in [-1, 1] (not clamped), shape ``shape`` = ``(T, 1)``."""
        shape = tuple(int(s) for s in shape)
        return self.predict(model, self.coordinates(shape[:-1])).reshape(shape).cpu().numpy()

    def sinr_tensor_names(self, model: nn.Module) -> list[str]:
        return [f"net.{i}.linear.weight" for i in range(1, self.layers)]

    def storage(self, name: str, tensor: torch.Tensor) -> tuple:
        if name.startswith("net.0."):   # multiplied by w0_initial = 3000: float16 would shift phases by ~1 rad
            return ("f",)
        return ("q", self.bits) if name in self.sinr_tensor_names(None) else ("h",)

    # ---- stream checks (decoding) ------------------------------------------------------------------
    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(2 * (layers + 1), parameters)`` from the configuration alone (frequencies within
        ``[1 / MAX_FREQUENCY, MAX_FREQUENCY]``, ``2 <= bits <= 16``)."""
        width, layers = config_number(config, "width", lo=1), config_number(config, "layers", lo=2)
        for k in ("w0", "w0_initial"):
            config_number(config, k, lo=1 / MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "bits", lo=2, hi=16)
        return 2 * (layers + 1), siren_parameters(1, 1, width, layers)

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """An audio stream holds ``(T >= 2, 1)``."""
        if len(shape) != 2 or shape[1] != 1 or shape[0] < 2:
            raise StreamError(f"audio streams hold (T >= 2, 1) waveforms, got shape {shape}")
