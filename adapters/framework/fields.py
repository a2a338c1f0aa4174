"""The skeleton of adapters for signals other than images: :class:`FieldAdapter`.

Occupancy fields, audio and point-cloud attributes share it: a coordinate network of ``layers`` layers of
width ``width`` (the rate knob) whose hidden-to-hidden weight matrices ``net.{1..layers-1}.linear.weight``
SINR codes, stored without SINR as per-tensor uniform ``bits``-bit integers (the storage-bits knob of the
fair baseline), everything else in float16 unless a method says otherwise. Fitting and fine-tuning
minimise the method's :meth:`~sinr_adapters.framework.inr.INRAdapter.loss`; streams are the shared
records (:mod:`sinr_adapters.framework.records`). A method fills in ``name``, ``dim_in``, ``dim_out``,
:meth:`build_model`, :meth:`signal_from`, :meth:`coordinates`, :meth:`check_stream_shape` and
``describe()`` (through :meth:`FieldAdapter.field_spec`), and the hooks it needs beyond these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .container import MAX_FREQUENCY, config_number
from .inr import INRAdapter
from .nets import siren_parameters
from .signals import Signal
from .spec import AdapterSpec, Metric, Option, SignalSource

__all__ = ["FieldAdapter"]


class FieldAdapter(INRAdapter):
    """The shared part of the field adapters (module docstring).

    Parameters
    ----------
    width : int
        Hidden width (the rate knob).
    layers : int
        Layers; ``layers - 1`` hidden-to-hidden matrices, which SINR codes.
    bits : int
        Storage bits of the hidden-to-hidden matrices without SINR (2..16).
    """

    dim_in: ClassVar[int] = 1
    """Coordinate dimension."""
    dim_out: ClassVar[int] = 1
    """Channels."""
    frequency_keys: ClassVar[tuple[str, ...]] = ()
    """Configuration keys of frequencies or scales, each within ``[1 / MAX_FREQUENCY, MAX_FREQUENCY]``."""

    def __init__(self, *, width: int, layers: int, bits: int) -> None:
        if int(width) < 1 or int(layers) < 2:
            raise ValueError(f"width must be >= 1 and layers >= 2, got width={width}, layers={layers}")
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        self.width, self.layers, self.bits = int(width), int(layers), int(bits)

    @staticmethod
    def check_frequency(key: str, value: float) -> float:
        """``value`` as a float if it lies in ``[1 / MAX_FREQUENCY, MAX_FREQUENCY]``, else ``ValueError``."""
        if not 1 / MAX_FREQUENCY <= float(value) <= MAX_FREQUENCY:
            raise ValueError(f"{key} must be in [{1 / MAX_FREQUENCY:g}, {MAX_FREQUENCY:g}], got {value}")
        return float(value)

    @classmethod
    def field_spec(cls, *, summary: str, source: SignalSource, metric: Metric, layers_help: str,
                   bits_help: str, default_bits: int = 16, options: Sequence[Option] = (),
                   harness_only: Sequence[str] = (), **hooks: Any) -> AdapterSpec:
        """The harness's description of a field adapter: the options ``widths`` (the rate points, 32 and
        64 by default), ``layers``, ``bits`` and ``options``; each rate point is
        ``cls(width=w, **options)`` without the ``harness_only`` ones (those its ``prepare`` reads).

        Parameters
        ----------
        summary, source, metric
            As :class:`~sinr_adapters.framework.spec.AdapterSpec` takes them.
        layers_help, bits_help : str
            The help of ``layers`` and ``bits``.
        default_bits : int, default 16
            The default of ``bits``.
        **hooks
            Further :class:`~sinr_adapters.framework.spec.AdapterSpec` fields (``prepare``, ``render``, ...).
        """
        skip = {"widths", *harness_only}

        def build(cls: type[FieldAdapter], o: Mapping[str, Any], width: int, ctx: Any) -> FieldAdapter:
            return cls(width=width, **{k: v for k, v in o.items() if k not in skip})

        return AdapterSpec(
            summary=summary, rate="widths", rate_key="width", bits="bits", source=source, metric=metric, build=build,
            options=(Option("widths", int, [32, 64], "hidden widths (the rate points)", multiple=True, minimum=1),
                     Option("layers", int, 3, layers_help, minimum=2), *options,
                     Option("bits", int, default_bits, bits_help, minimum=2, maximum=16)),
            **hooks)

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "layers": self.layers, "bits": self.bits}

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        raise TypeError(f"{self.name} does not encode images; the harness builds its signals with signal_from()")

    def signal_from(self, raw: Any, *, name: str = "") -> Signal:
        """The signal of one raw signal of the adapter's source (e.g. a waveform, a shape)."""
        raise NotImplementedError

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        return [f"net.{i}.linear.weight" for i in range(1, self.layers)]

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        """The hidden-to-hidden matrices as ``bits``-bit integers, everything else float16."""
        return ("q", self.bits) if name in self.sinr_tensor_names(None) else ("h",)

    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(2 * (layers + 1), parameters)`` from the configuration alone (``width >= 1``, ``layers >= 2``,
        ``2 <= bits <= 16``, each of :attr:`frequency_keys` within ``[1 / MAX_FREQUENCY, MAX_FREQUENCY]``)."""
        width, layers = config_number(config, "width", lo=1), config_number(config, "layers", lo=2)
        for k in self.frequency_keys:
            config_number(config, k, lo=1 / MAX_FREQUENCY, hi=MAX_FREQUENCY)
        config_number(config, "bits", lo=2, hi=16)
        return 2 * (layers + 1), siren_parameters(self.dim_in, self.dim_out, width, layers)
