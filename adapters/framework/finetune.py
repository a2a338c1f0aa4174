"""What fine-tuning trains before a stream is written: :class:`CompressionSetup`.

:func:`prepare` (:meth:`~sinr_adapters.framework.inr.INRAdapter.prepare_compression`) fits SINR's sparse
codes (OMP) and makes one trainable leaf tensor per stored tensor; :meth:`CompressionSetup.tensor`
rebuilds each tensor as the decoder will, differentiably, through the quantizer its stored values will
meet (straight-through: the core's value quantizer for sparse values, the method's storage for the rest).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sinr_codecs import options
from sinr_codecs.sparse import SparseCode

from .quantizers import fake_half, fake_uniform
from .sinr_options import SINROptions
from .training import synchronize

if TYPE_CHECKING:
    from .inr import INRAdapter

__all__ = ["CompressionSetup", "fake_storage", "prepare", "replace_code"]


def replace_code(code: Any, **changes: Any) -> Any:
    """A shallow copy of a :class:`~sinr_codecs.sparse.SparseCode` with some attributes replaced (support,
    dictionary and layout shared unless replaced; works for frozen dataclasses too)."""
    other = copy.copy(code)
    for key, value in changes.items():
        object.__setattr__(other, key, value)
    return other


class _STEQuantize(torch.autograd.Function):
    """Forward: the core's value quantizer; backward: identity."""

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, code: SparseCode, bits: int) -> torch.Tensor:
        return replace_code(code, values=values.detach()).quantized(bits).values.to(values)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad, None, None


def fake_storage(t: torch.Tensor, spec: tuple[Any, ...]) -> torch.Tensor:
    """Straight-through fake quantization of ``t`` to the storage ``spec`` of
    :meth:`~sinr_adapters.framework.inr.INRAdapter.storage`: ``("h",)`` float16, ``("f",)`` float32 (unchanged),
    ``("q", bits)`` uniform integers."""
    if spec[0] == "h":
        return fake_half(t)
    if spec[0] == "f":
        return t
    if spec[0] == "q":
        return fake_uniform(t, int(spec[1]))
    raise ValueError(f"unknown storage {spec!r}")


@dataclass
class CompressionSetup:
    """What :func:`prepare` returns: a model's stored tensors, SINR-coded where
    asked, and the leaf tensors that fine-tuning trains before the stream is written.

    All tensors are float32 on the model's device; dicts are in stream order.

    Attributes
    ----------
    names : list of str
        The stored tensors in stream order (:meth:`INRAdapter.tensor_names`).
    state : dict of str to torch.Tensor
        Copies of the model's stored tensors, each of its state_dict shape.
    reference : dict of str to torch.Tensor, or None
        The adapter's reference weights (:meth:`INRAdapter.reference`); stored and SINR-coded values
        are ``state - reference``.
    codes : dict of str to SparseCode
        The SINR code (OMP fit) of each tensor of :meth:`INRAdapter.sinr_tensor_names`, when SINR is
        used; empty otherwise. Its ``values`` ``(n_vectors, s_max)`` are ``trainable[name]``.
    trainable : dict of str to torch.Tensor
        One leaf tensor (``requires_grad=True``) per stored tensor: the sparse values of a SINR-coded
        one, else the stored values (``state - reference``, the state_dict shape).
    specs : dict of str to tuple
        The storage (:meth:`INRAdapter.storage`) of every tensor SINR leaves alone.
    fake : callable
        ``fake(name, tensor)``: the straight-through rounding of a tensor SINR leaves alone to what its
        storage keeps (:meth:`INRAdapter.fake_storage`).
    sinr : SINROptions or None
        The options the codes were fitted with.
    device : torch.device
        The model's device.
    omp_seconds : float
        Wall-clock seconds of the OMP fits (device synchronised).
    """

    names: list[str]
    state: dict[str, torch.Tensor]
    reference: dict[str, torch.Tensor] | None
    codes: dict[str, SparseCode]
    trainable: dict[str, torch.Tensor]
    specs: dict[str, tuple[Any, ...]]
    fake: Callable[[str, torch.Tensor], torch.Tensor]
    sinr: SINROptions | None
    device: torch.device
    omp_seconds: float

    @property
    def value_bits(self) -> int:
        """Bits per stored sparse value (0 without SINR)."""
        return int(self.sinr.value_bits) if self.sinr is not None else 0

    def tensor(self, name: str, *, quantized: bool = True) -> torch.Tensor:
        """Tensor ``name`` as the decoder will rebuild it, differentiable w.r.t. ``trainable[name]``.

        A SINR-coded tensor is reconstructed from its trainable sparse values (support and dictionary
        fixed), the others are their trainable values; with ``quantized`` both go through the quantizer
        the stored values will meet, straight-through (the core's value quantizer, or :attr:`fake`).
        The reference, if any, is added back. Shape: the state_dict shape.
        """
        if name in self.codes:
            code, v = self.codes[name], self.trainable[name]
            if quantized:
                v = _STEQuantize.apply(v, code, self.value_bits)  # type: ignore[no-untyped-call]
            t = code.reconstruct(v).to(self.device)
        else:
            t = self.trainable[name]
            if quantized:
                t = self.fake(name, t)
        return t + self.reference[name] if self.reference is not None else t

    def code_bytes(self, name: str) -> bytes:
        """The SINR section of the SINR-coded tensor ``name`` with its current (fine-tuned) values: a
        :class:`sinr_codecs.sparse.SparseCode` stream (``value_bits``, entropy and index coding of
        :attr:`sinr`); read back by :func:`~sinr_adapters.framework.container.sparse_tensor_from_bytes`."""
        if self.sinr is None:
            raise ValueError(f"{name!r} is not SINR-coded: the set-up was prepared without SINR")
        code = self.codes[name]
        code = replace_code(code, values=self.trainable[name].detach().cpu(), indices=code.indices.cpu())
        return code.to_bytes(value_bits=self.value_bits, entropy=self.sinr.entropy,
                             index_coding=self.sinr.index_coding)


def prepare(adapter: INRAdapter, model: nn.Module, sinr: SINROptions | None) -> CompressionSetup:
    """The compression set-up shared by every adapter: SINR's OMP fit and the tensors to fine-tune.

    Copies the stored tensors (``adapter.tensor_names(model)``) of ``model`` as float32 on its device,
    makes them relative to ``adapter.reference()`` (if any), fits a :class:`sinr_codecs.sparse.SparseCode`
    to each tensor of ``adapter.sinr_tensor_names(model)`` (with ``sinr``; the ``i``-th in stream order with
    seed ``sinr.seed + i`` and the layout of ``adapter.sinr_layout``), and makes one trainable leaf tensor
    per stored tensor: the sparse values of a SINR-coded one, the stored values of the others.

    Parameters
    ----------
    adapter : INRAdapter
        The method (its hooks say what is stored and how).
    model : nn.Module
        The fitted network (not modified).
    sinr : SINROptions or None
        ``None``: nothing is SINR-coded.

    Returns
    -------
    CompressionSetup
        Codes, trainable tensors, storage specs and the OMP time (``omp_seconds``).

    Raises
    ------
    ValueError
        If the coded tensors would need dictionary seeds beyond the largest one.
    """
    dev = next(model.parameters()).device
    names = adapter.tensor_names(model)
    stored = set(names)
    state = {k: v.detach().to(dev, torch.float32).clone() for k, v in model.state_dict().items() if k in stored}
    own_ref = adapter.reference()
    ref = None if own_ref is None else {k: own_ref[k].to(dev, torch.float32) for k in names}
    coded = {k: state[k] - ref[k] if ref is not None else state[k] for k in names}

    sinr_names = set(adapter.sinr_tensor_names(model)) if sinr is not None else set()
    codes: dict[str, SparseCode] = {}
    t0 = time.perf_counter()
    if sinr is not None and sinr_names:
        last = sinr.seed + len(sinr_names) - 1
        if last > options.MAX_SEED:
            raise ValueError(f"SINR seed {sinr.seed}: the {len(sinr_names)} coded tensors use seeds up to "
                             f"seed + {len(sinr_names) - 1} = {last}, above the largest seed {options.MAX_SEED}; "
                             f"use a seed <= {options.MAX_SEED - len(sinr_names) + 1}")
        for i, k in enumerate(n for n in names if n in sinr_names):
            layout, block_size = adapter.sinr_layout(k, sinr)
            codes[k] = SparseCode.fit(coded[k], sparsity=sinr.sparsity, dictionary_ratio=sinr.dictionary_ratio,
                                      seed=sinr.seed + i, layout=layout, block_size=block_size, device=sinr.device)
    synchronize(dev)
    omp_seconds = time.perf_counter() - t0

    trainable: dict[str, torch.Tensor] = {}  # sparse values of SINR-coded tensors, the coded tensors of the others
    for k in names:
        if k in codes:
            v = codes[k].values.detach().to(dev, torch.float32).clone()
            codes[k] = replace_code(codes[k], values=v, indices=codes[k].indices.to(dev))
            trainable[k] = v.requires_grad_(True)
        else:
            trainable[k] = coded[k].clone().requires_grad_(True)
    specs = {k: adapter.storage(k, state[k]) for k in names if k not in codes}
    return CompressionSetup(names=names, state=state, reference=ref, codes=codes, trainable=trainable,
                            specs=specs, fake=adapter.fake_storage, sinr=sinr, device=dev, omp_seconds=omp_seconds)
