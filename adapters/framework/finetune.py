"""What fine-tuning trains before a stream is written: :class:`CompressionSetup`.

:meth:`~sinr_adapters.framework.inr.INRAdapter.prepare_compression` fits SINR's sparse codes (OMP) and makes one
trainable leaf tensor per stored tensor; :meth:`CompressionSetup.tensor` rebuilds each tensor as the
decoder will, differentiably, through the quantizer its stored values will meet (straight-through: the
core's value quantizer for sparse values, the method's storage for the rest).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from .quantizers import fake_half, fake_uniform
from .sinr_options import SINROptions

__all__ = ["CompressionSetup", "fake_storage", "replace_code"]


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
    def forward(ctx, values, code, bits):  # noqa: D401
        return replace_code(code, values=values.detach()).quantized(bits).values.to(values)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def fake_storage(t: torch.Tensor, spec: tuple) -> torch.Tensor:
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
    """What :meth:`INRAdapter.prepare_compression` returns: a model's stored tensors, SINR-coded where
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
    codes: dict[str, Any]
    trainable: dict[str, torch.Tensor]
    specs: dict[str, tuple]
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
        the stored values will meet, straight-through (the core's value quantizer, or the ``specs``
        storage). The reference, if any, is added back. Shape: the state_dict shape.
        """
        if name in self.codes:
            code, v = self.codes[name], self.trainable[name]
            if quantized:
                v = _STEQuantize.apply(v, code, self.value_bits)
            t = code.reconstruct(v).to(self.device)
        else:
            t = self.trainable[name]
            if quantized:
                t = fake_storage(t, self.specs[name])
        return t + self.reference[name] if self.reference is not None else t

    def code_bytes(self, name: str) -> bytes:
        """The SINR section of the SINR-coded tensor ``name`` with its current (fine-tuned) values: a
        :class:`sinr_codecs.sparse.SparseCode` stream (``value_bits``, entropy and index coding of
        :attr:`sinr`); read back by :func:`~sinr_adapters.framework.container.sparse_tensor_from_bytes`."""
        code = self.codes[name]
        code = replace_code(code, values=self.trainable[name].detach().cpu(), indices=code.indices.cpu())
        return code.to_bytes(value_bits=self.value_bits, entropy=self.sinr.entropy,
                             index_coding=self.sinr.index_coding)
