"""How an array is cut into the vectors that SINR codes, and put back together.

Three layouts (ids as stored in the stream):

- 0 ``"rows"``: vectors along the last axis, ``k1 = shape[-1]`` (for a ``(out, in)`` weight matrix: the
  incoming weights of each neuron);
- 1 ``"blocks"``: the C-order flattened array cut into vectors of ``block_size``; the tail vector is
  zero-padded (the padding is implied by the shape and never returned);
- 2 ``"flat"``: the whole array is one vector, ``k1 = size`` (the paper's rule for ``k x k`` layers with
  ``k < 50``).

``"auto"`` picks ``rows`` when the array has >= 2 dimensions and a last axis of at least
:data:`AUTO_MIN_ROW` (50) elements; else ``flat`` for arrays of at most :data:`AUTO_MAX_FLAT` (2500,
a 50 x 50 layer) elements; else ``blocks`` of :data:`AUTO_BLOCK` (64) elements. A row or flat vector too
long for the dictionary limit (:mod:`sinr_codecs.limits`) is cut into blocks instead. A flattened vector is
long (up to 2500) and OMP cost grows with k1 * k2 * s: tiny layers cost more per weight than rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["LAYOUTS", "AUTO_MIN_ROW", "AUTO_MAX_FLAT", "AUTO_BLOCK", "Layout", "choose_layout"]

LAYOUTS: dict[str, int] = {"rows": 0, "blocks": 1, "flat": 2}
AUTO_MIN_ROW = 50
AUTO_MAX_FLAT = 2500
AUTO_BLOCK = 64


@dataclass(frozen=True)
class Layout:
    """A vector layout resolved for one array shape.

    Attributes
    ----------
    kind : str
        "rows", "blocks" or "flat".
    shape : tuple of int
        The array's shape.
    k1 : int
        Vector length (0 only for an empty array).
    """

    kind: str
    shape: tuple[int, ...]
    k1: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def n_vectors(self) -> int:
        if self.size == 0:
            return 0
        return -(-self.size // self.k1)

    def check(self) -> None:
        """Raise ValueError if ``k1`` does not fit ``kind`` and ``shape``."""
        size = self.size
        if self.kind not in LAYOUTS:
            raise ValueError(f"unknown layout {self.kind!r}; use one of {sorted(LAYOUTS)} or 'auto'")
        if size == 0:
            if self.k1 < 0:
                raise ValueError("negative vector length")
            return
        if self.k1 < 1:
            raise ValueError(f"vector length must be >= 1, got {self.k1}")
        if self.kind == "rows" and self.k1 != (self.shape[-1] if self.shape else 1):
            raise ValueError(f"rows layout of shape {self.shape} needs k1 = last axis, got {self.k1}")
        if self.kind == "flat" and self.k1 != size:
            raise ValueError(f"flat layout of shape {self.shape} needs k1 = {size}, got {self.k1}")

    def to_vectors(self, a: torch.Tensor) -> torch.Tensor:
        """(n_vectors, k1) view/copy of ``a`` (which has ``self.shape``), zero-padded for blocks."""
        flat = a.reshape(-1)
        pad = self.n_vectors * self.k1 - flat.numel()
        if pad:
            flat = torch.cat([flat, flat.new_zeros(pad)])
        return flat.reshape(self.n_vectors, self.k1)

    def from_vectors(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_vectors`: a tensor of ``self.shape``."""
        return v.reshape(-1)[: self.size].reshape(self.shape)


def choose_layout(shape: tuple[int, ...], layout: str = "auto", block_size: int | None = None, *,
                  max_k1: int | None = None) -> Layout:
    """Resolve ``layout`` (one of :data:`LAYOUTS` or ``"auto"``) for an array of ``shape``.

    ``max_k1`` (``"auto"`` only): the longest vector allowed (its dictionary must fit the dictionary
    limit). Rows longer than that are cut into blocks of the largest divisor of the row length in
    ``[AUTO_BLOCK, max_k1]`` (else ``AUTO_BLOCK``), and a too-long flat vector into blocks of ``AUTO_BLOCK``.
    """
    shape = tuple(int(d) for d in shape)
    size = math.prod(shape)
    if layout == "auto":
        longest = size if max_k1 is None else max_k1
        if len(shape) >= 2 and shape[-1] >= AUTO_MIN_ROW:
            layout = "rows"
            if shape[-1] > longest:
                layout = "blocks"
                fits = [d for d in range(min(longest, shape[-1]), AUTO_BLOCK - 1, -1) if shape[-1] % d == 0]
                block_size = fits[0] if fits else min(AUTO_BLOCK, longest)
        elif size <= min(AUTO_MAX_FLAT, longest):
            layout = "flat"
        else:
            layout = "blocks"
            block_size = block_size or min(AUTO_BLOCK, longest)
    if size == 0:
        k1 = 0
    elif layout == "rows":
        k1 = shape[-1] if shape else 1
    elif layout == "flat":
        k1 = size
    elif layout == "blocks":
        if block_size is None or isinstance(block_size, bool) or int(block_size) < 1:
            raise ValueError(f"layout 'blocks' needs block_size >= 1, got {block_size!r}")
        k1 = int(block_size)
    else:
        raise ValueError(f"unknown layout {layout!r}; use one of {sorted(LAYOUTS)} or 'auto'")
    out = Layout(layout, shape, k1)
    out.check()
    return out


