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

Stream: the shared records (:mod:`sinr_adapters.framework.records`); the signal shape in the header is
``(T, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_codecs.errors import StreamError

from ...framework.container import MAX_FREQUENCY
from ...framework.fields import FieldAdapter
from ...framework.grids import grid_of, linspace_grid
from ...framework.nets import Siren
from ...framework.signals import Signal
from ...framework.spec import AdapterSpec, Metric, Option, RateUnit, SignalSource
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
    >>> [a.storage(k, None) for k in ("net.0.linear.weight", "net.1.linear.weight", "last.linear.bias")]
    [('f',), ('q', 16), ('h',)]
    """

    name: ClassVar[str] = "audio"
    default_lr: ClassVar[float] = 1e-4
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-4
    frequency_keys: ClassVar[tuple[str, ...]] = ("w0", "w0_initial")

    @classmethod
    def describe(cls) -> AdapterSpec:
        """How the harness runs audio: synthesized waveforms, SNR vs bits per sample, widths as rate points."""
        unit = RateUnit("bits/sample", "bits per sample (bytes written × 8 / samples)", "sample")
        return cls.field_spec(
            summary="a 1-D SIREN on a synthesized waveform (SNR vs bits per sample)",
            source=SignalSource("audio", tuple(WAVEFORMS), load_waveform, ("chord",), (), RATE,
                                f"samples at {RATE} Hz", unit, 16),
            metric=Metric("SNR", "dB", True, snr), layers_help="sine layers",
            bits_help="storage bits of the hidden matrices without SINR",
            options=(Option("w0_initial", float, 3000.0, "first-layer SIREN frequency (SIREN's audio: 3000)",
                            minimum=1e-3, maximum=MAX_FREQUENCY),))

    def __init__(self, *, width: int = 64, layers: int = 3, w0: float = 30.0, w0_initial: float = 3000.0,
                 bits: int = 16) -> None:
        super().__init__(width=width, layers=layers, bits=bits)
        self.w0, self.w0_initial = self.check_frequency("w0", w0), self.check_frequency("w0_initial", w0_initial)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "w0": self.w0, "w0_initial": self.w0_initial}

    def build_model(self) -> Siren:
        return Siren(dim_in=1, dim_out=1, width=self.width, layers=self.layers, w0=self.w0,
                     w0_initial=self.w0_initial)

    def signal_from(self, raw: Any, *, name: str = "") -> Signal:
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
        return Signal(linspace_grid(w.size), values, (w.size, 1), (-1.0, 1.0), "audio", name,
                      reference=values.numpy().copy())

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        return grid_of(linspace_grid, shape, axes=1, method="audio")

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        return values / 2.0 + 0.5

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray:
        """The decoded waveform in [-1, 1] (not clamped), shape ``shape`` = ``(T, 1)``."""
        shape = tuple(int(s) for s in shape)
        return self.predict(model, self.coordinates(shape[:-1])).reshape(shape).cpu().numpy()

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        """The first layer in float32 (its weights are multiplied by ``w0_initial = 3000``: float16 would
        shift phases by up to about a radian), the hidden matrices as integers, the rest float16."""
        return ("f",) if name.startswith("net.0.") else super().storage(name, tensor)

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """An audio stream holds ``(T >= 2, 1)``."""
        if len(shape) != 2 or shape[1] != 1 or shape[0] < 2:
            raise StreamError(f"audio streams hold (T >= 2, 1) waveforms, got shape {shape}")
