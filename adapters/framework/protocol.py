"""The Adapter protocol: what every INR-method adapter provides, ours and third parties' alike.

An adapter wraps one INR method end to end (docs/adapters.md):

1. ``signal_from_image(image)`` -> :class:`~sinr_adapters.framework.signals.Signal`: coordinates and values in the
   method's conventions.
2. ``fit(signal)`` -> ``(model, FitLog)``: the method's network fitted to the signal; ``config()`` holds its
   constructor's arguments (JSON-safe; every stream stores them) and ``with_config(config)`` rebuilds it.
3. ``compress(model, signal, sinr=None | SINROptions, finetune_steps=n)`` -> ``bytes``: the method's own
   storage (COIN: half precision; INRIC: per-tensor 8-bit + Brotli), or, with ``sinr``, the tensors the
   method marks for SINR coded as :class:`sinr_codecs.sparse.SparseCode` (rows = neurons) first.
   ``compress_with_info`` returns the stream and what happened (the harness records it).
   Either way the same number of fine-tuning steps follows, through the quantizer that the stored values
   will meet (straight-through); with SINR only the sparse values (support and dictionary fixed) and the
   tensors SINR leaves alone are trained.
4. ``decompress(data)`` -> :class:`Decoded` (model + signal shape), ``render(model, shape)`` -> a float
   array of exactly ``shape`` (the signal's grid shape followed by its channels), finite.

A method that stores no network (a classic image codec: JPEG, WebP, JPEG 2000, AVIF) implements the smaller
protocol :class:`SignalCodec` instead: ``signal_from_image``, ``encode(signal) -> bytes`` (the whole file a
user would store) and ``decode(data) -> array``, with ``config()`` / ``with_config()`` as above. It has
nothing to fit or fine-tune and no path with SINR; its description says so (``AdapterSpec(weights=False)``,
:mod:`sinr_adapters.framework.spec`), and the harness measures it as a reference curve for the INR paths.

:class:`~sinr_adapters.framework.inr.INRAdapter` implements 2-4 once for any coordinate network; a third-party
adapter may instead implement :class:`Adapter` from scratch. Adapters are found through the entry-point
group ``sinr_codecs.adapters`` (:mod:`sinr_codecs.registry`); the class's ``name`` is its entry-point name.
:func:`check_rendering` is how the harness holds an adapter's output to the contract, and
:mod:`sinr_adapters.framework.testing` checks a whole adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from torch import nn

from .signals import Signal
from .sinr_options import SINROptions
from .training import FitLog

__all__ = ["Adapter", "ContractError", "Decoded", "SignalCodec", "check_rendering"]


class ContractError(ValueError):
    """An adapter broke the protocol (the message names the adapter, the method and what to fix)."""


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
            device: str = ..., progress: bool | None = ..., seed: int = ...) -> tuple[nn.Module, FitLog]: ...

    def compress(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = ...,
                 finetune_steps: int = ..., finetune_lr: float = ..., progress: bool | None = ...) -> bytes: ...

    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = ...,
                           finetune_steps: int = ..., finetune_lr: float | None = ..., sinr_lr: float | None = ...,
                           batch_size: int | None = ..., progress: bool | None = ...
                           ) -> tuple[bytes, dict[str, Any]]: ...

    def with_config(self, config: Mapping[str, Any]) -> Adapter: ...

    def decompress(self, data: bytes, *, device: str = ...) -> Decoded: ...

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray: ...


@runtime_checkable
class SignalCodec(Protocol):
    """What a method without a network provides: it codes the signal itself (found through the same
    ``sinr_codecs.adapters`` group; its description has ``weights=False``).

    ``encode(signal)`` returns the whole file a user would store (every container header counted);
    ``decode(data)`` returns the decoded signal as a float array in [0, 1] of the signal's shape (grid shape
    followed by channels), finite, and raises :class:`~sinr_codecs.errors.StreamError` for bytes it cannot
    read. ``config()`` holds the constructor's arguments (JSON-safe) and ``with_config(config)`` rebuilds it.
    Optional: ``stream_info(data) -> dict`` of JSON-safe facts about a file the harness records with the
    result (e.g. ``header_bytes``).
    """

    name: ClassVar[str]

    def config(self) -> dict[str, Any]: ...

    def with_config(self, config: Mapping[str, Any]) -> SignalCodec: ...

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal: ...

    def encode(self, signal: Signal) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray: ...


def check_rendering(out: Any, shape: Sequence[int], *, adapter: str, method: str) -> np.ndarray:
    """``out`` if it is what ``render`` (or ``decode``) must return for a signal of ``shape``: a numpy array
    of a floating dtype and exactly that shape, every value finite; else :class:`ContractError`.

    Parameters
    ----------
    out : object
        What the adapter returned.
    shape : sequence of int
        The signal's shape (grid shape, then channels), e.g. ``(H, W, 3)``.
    adapter, method : str
        The adapter's name and the method that returned ``out`` (for the message).

    Examples
    --------
    >>> check_rendering(np.zeros((4, 5, 3), np.float32), (4, 5, 3), adapter="mine", method="render").shape
    (4, 5, 3)
    >>> check_rendering(np.zeros((4, 5, 1), np.float32), (4, 5, 3), adapter="mine", method="render")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sinr_adapters.framework.protocol.ContractError: adapter 'mine': render returned shape (4, 5, 1), expected ...
    """
    where = f"adapter {adapter!r}: {method}"
    want = tuple(int(s) for s in shape)
    if not isinstance(out, np.ndarray):
        raise ContractError(f"{where} returned a {type(out).__name__}, not a numpy array of shape {want}")
    if tuple(out.shape) != want:
        raise ContractError(f"{where} returned shape {tuple(out.shape)}, expected {want} (the signal's grid shape "
                            "followed by its channels); return one value per sample and channel, not a "
                            "broadcastable or flattened array")
    if not np.issubdtype(out.dtype, np.floating):
        raise ContractError(f"{where} returned dtype {out.dtype}, expected a floating dtype (float32)")
    if not np.all(np.isfinite(out)):
        raise ContractError(f"{where} returned non-finite values (NaN or infinity)")
    return out
