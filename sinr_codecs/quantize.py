"""Uniform scalar quantizers for the sparse values.

A symmetric mid-tread quantizer with ``bits`` bits maps a value ``v`` to the integer
``q = round(v / step)`` with ``|q| <= qmax = 2**(bits-1) - 1`` and ``step = max|v| / qmax``; the
reconstruction is ``q * step``. The step is chosen per tensor (``granularity="tensor"``, one float64)
or per vector (``granularity="vector"``, one float32 per vector, used by the error-bounded mode so
that a small vector is not drowned by a large one's step).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MIN_BITS", "MAX_BITS", "qmax", "quantize", "dequantize", "int_dtype"]

MIN_BITS = 2
MAX_BITS = 24


def qmax(bits: int) -> int:
    """Largest quantized magnitude for ``bits`` (``2**(bits-1) - 1``)."""
    check_bits(bits)
    return (1 << (bits - 1)) - 1


def check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"value_bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def int_dtype(bits: int) -> np.dtype:
    """Smallest signed little-endian integer dtype that holds ``bits``-bit values."""
    check_bits(bits)
    return np.dtype("<i1") if bits <= 8 else np.dtype("<i2") if bits <= 16 else np.dtype("<i4")


def quantize(values: torch.Tensor, bits: int, granularity: str = "tensor") -> tuple[np.ndarray, np.ndarray]:
    """Quantize ``values`` of shape (n, s) to integers.

    Returns
    -------
    q : numpy.ndarray
        Shape (n, s), dtype :func:`int_dtype` (bits).
    steps : numpy.ndarray
        float64 of shape (1,) for ``"tensor"`` or float32 of shape (n,) for ``"vector"``; a zero
        step means all values of that scope are zero.
    """
    m = qmax(bits)
    v = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    if granularity == "tensor":
        amax = float(np.max(np.abs(v))) if v.size else 0.0
        steps = np.array([amax / m], dtype=np.float64)
        step_b = steps[0]
        safe = step_b if step_b > 0 else 1.0
        q = np.rint(v / safe)
    elif granularity == "vector":
        amax = np.max(np.abs(v), axis=1) if v.shape[1] else np.zeros(v.shape[0])
        with np.errstate(over="ignore"):
            steps = (amax / m).astype(np.float32)
        if not np.all(np.isfinite(steps)):
            raise ValueError(f"values of magnitude up to {float(np.max(amax)):.3g} overflow the float32 per-vector "
                             "quantizer steps of the error-bounded mode; use a fixed sparsity instead")
        # the stored (float32) step is what the decoder uses: quantize with it
        safe = np.where(steps > 0, steps, 1).astype(np.float64)[:, None]
        q = np.rint(v / safe)
    else:
        raise ValueError(f"unknown quantizer granularity {granularity!r}; use 'tensor' or 'vector'")
    np.clip(q, -m, m, out=q)
    return q.astype(int_dtype(bits)), steps


def dequantize(q: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quantize`: float64 array of q's shape."""
    s = np.asarray(steps, dtype=np.float64)
    return q.astype(np.float64) * (s if s.shape == (1,) else s[:, None])
