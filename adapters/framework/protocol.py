"""The Adapter protocol: what every INR-method adapter provides, ours and third parties' alike.

An adapter wraps one INR method end to end (docs/adapters.md):

1. ``signal_from_image(image)`` -> :class:`~sinr_adapters.framework.signals.Signal`: coordinates and values in the
   method's conventions.
2. ``fit(signal)`` -> ``(model, FitLog)``: the method's network fitted to the signal.
3. ``compress(model, signal, sinr=None | SINROptions, finetune_steps=n)`` -> ``bytes``: the method's own
   storage (COIN: half precision; INRIC: per-tensor 8-bit + Brotli), or, with ``sinr``, the tensors the
   method marks for SINR coded as :class:`sinr_codecs.sparse.SparseCode` (rows = neurons) first.
   Either way the same number of fine-tuning steps follows, through the quantizer that the stored values
   will meet (straight-through); with SINR only the sparse values (support and dictionary fixed) and the
   tensors SINR leaves alone are trained.
4. ``decompress(data)`` -> :class:`Decoded` (model + signal shape), ``render(model, shape)`` -> array.

:class:`~sinr_adapters.framework.inr.INRAdapter` implements 2-4 once for any coordinate network; a third-party
adapter may instead implement :class:`Adapter` from scratch. Adapters are found through the entry-point
group ``sinr_codecs.adapters`` (:mod:`sinr_codecs.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from torch import nn

from . import nets
from .signals import Signal
from .sinr_options import SINROptions

__all__ = ["Adapter", "Decoded"]


@dataclass
class Decoded:
    """What :meth:`Adapter.decompress` returns."""

    model: nn.Module
    shape: tuple[int, ...]
    header: dict[str, Any]


@runtime_checkable
class Adapter(Protocol):
    """What every INR-method adapter provides (found through the ``sinr_codecs.adapters`` group)."""

    name: ClassVar[str]

    def config(self) -> dict[str, Any]: ...

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal: ...

    def fit(self, signal: Signal, *, steps: int, lr: float = ..., batch_size: int | None = ...,
            device: str = ..., progress: bool | None = ..., seed: int = ...) -> tuple[nn.Module, nets.FitLog]: ...

    def compress(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = ...,
                 finetune_steps: int = ..., finetune_lr: float = ..., progress: bool | None = ...) -> bytes: ...

    def decompress(self, data: bytes, *, device: str = ...) -> Decoded: ...

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray: ...
