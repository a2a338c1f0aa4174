"""The per-tensor policy: which tensors SINR codes, in which layout, and which are stored losslessly.

Each tensor gets one of two policies (see :func:`choose_policy`), which the report shows with the reason:

- ``"sinr"`` for weight matrices: floating point, ``ndim >= 2``, finite, at least
  :data:`MIN_SINR_ELEMENTS` values. The tensor is viewed as ``(shape[0], prod(shape[1:]))``: one row per
  output neuron holding its incoming weights, the SINR vectors (``layout="rows"``, ``k1 = prod(shape[1:])``).
  As in the SINR paper, a small layer with ``k1 < 50`` is flattened whole into one vector
  (``layout="flat"``) when it has at most :data:`FLAT_MAX_ELEMENTS` values, else cut into blocks; rows
  longer than :data:`MAX_K1` are cut into blocks of about :data:`BLOCK_K1` values (:func:`block_length`)
  coded over a dictionary of :data:`BLOCK_ATOMS` atoms (see below).
- ``"lossless"`` (bit-exact; see :mod:`sinr_codecs.weights` for how such tensors are stored) for
  everything else: biases and other 1-D tensors, scalars, tiny tensors, integer/bool/complex tensors and
  any tensor with NaN or infinite values.

Why long rows are cut into blocks of 32 over a dictionary of 1024 atoms: OMP's work per weight is
``s * k2`` correlations of ``k1`` products each (``s`` atoms per vector of ``k1`` weights, a quarter of
``k1`` by default), while the quality per bit depends mostly on ``k2`` and, at a given ``k2``, improves as
vectors shorten down to 32. Measured on Gaussian weights with 8-bit values (docs/benchmarks.md,
"Whole-model throughput"): at 3.3 bits/weight blocks of 32 over 1024 atoms reach a relative error of
0.240, blocks of 128 over 1024 atoms 0.251 and blocks of 256 over 2048 atoms 0.251, and blocks of 32
encode 2x faster than blocks of 128 (decoding takes 4x fewer multiply-adds: 8 atoms per 32 weights).
Rows up to :data:`MAX_K1` = 64 values keep the codec's own dictionary (8 x k1 atoms), which costs
the same per weight.

With the codec's error-bounded default the layout is what OMP sees: when a sample of the tensor codes
smaller without a dictionary (the usual case for trained weights at 2%), the encoder stores the tensor
densely and may re-cut the blocks into whole rows (:meth:`sinr_codecs.sparse.SparseCode.fit`).

``policy_overrides`` maps fnmatch patterns on tensor names to ``"sinr"``, ``"lossless"`` or a mapping
``{"policy": ..., **SINR options}``; every matching pattern applies, in order, so later ones win.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sinr_codecs.model_files import _is_float

__all__ = ["Decision", "choose_policy", "MIN_SINR_ELEMENTS", "FLAT_K1", "FLAT_MAX_ELEMENTS", "MAX_K1",
           "BLOCK_K1", "BLOCK_ATOMS", "block_length"]

MIN_SINR_ELEMENTS = 256
"""Smallest tensor (number of values) that the default policy codes with SINR."""
FLAT_K1 = 50
"""Rows shorter than this are too short to code one by one: the paper flattens such layers."""
MAX_K1 = 64
"""Longest row coded as one vector; longer rows are cut into blocks (:func:`block_length`)."""
BLOCK_K1 = 32
"""Preferred block length for rows longer than :data:`MAX_K1`."""
BLOCK_ATOMS = 1024
"""Dictionary size (``dictionary_size``, k2) for those blocks."""
FLAT_MAX_ELEMENTS = 2500
"""Largest layer flattened into one vector (the paper: k x k layers with k < 50, so <= 2401 values);
longer short-row layers are cut into blocks. The dictionary of a flat layer has 8 * numel**2 entries."""


@dataclass(frozen=True)
class Decision:
    """The policy for one tensor: ``policy`` ("sinr"/"lossless"), ``reason``, SINR ``layout`` and
    per-pattern SINR ``options`` (empty for lossless)."""

    policy: str
    reason: str
    layout: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _parse_overrides(overrides: Mapping[str, Any] | None) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for pattern, spec in (overrides or {}).items():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"policy override patterns must be non-empty strings, got {pattern!r}")
        if isinstance(spec, str):
            policy, options = spec, {}
        elif isinstance(spec, Mapping):
            options = dict(spec)
            policy = options.pop("policy", "sinr")
        else:
            raise ValueError(
                f"policy override {pattern!r}: expected 'sinr', 'lossless' or a mapping "
                f"{{'policy': ..., **codec options}}, got {type(spec).__name__}"
            )
        if policy not in ("sinr", "lossless"):
            raise ValueError(
                f"policy override {pattern!r}: policy must be 'sinr' or 'lossless', got {policy!r}")
        if policy == "lossless" and options:
            raise ValueError(
                f"policy override {pattern!r}: codec options {sorted(options)} need policy 'sinr'")
        if "dtype" in options:
            raise ValueError(f"policy override {pattern!r}: 'dtype' cannot be set (it is the tensor's)")
        out.append((pattern, policy, options))
    return out


def choose_policy(
    name: str,
    *,
    dtype: str,
    shape: tuple[int, ...],
    finite: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide how one tensor is stored (the default rules, then the matching overrides).

    Parameters
    ----------
    name : str
        Tensor name, matched against the override patterns with :func:`fnmatch.fnmatchcase`.
    dtype : str
        Dtype name (torch or numpy spelling, e.g. ``"bfloat16"``, ``"float32"``, ``"int64"``).
    shape : tuple of int
        Tensor shape.
    finite : bool, default True
        Whether every value is finite (no NaN or infinity).
    overrides : mapping, optional
        ``{pattern: "sinr" | "lossless" | {"policy": ..., **SINR options}}``.

    Returns
    -------
    Decision

    Examples
    --------
    >>> choose_policy("fc.weight", dtype="float32", shape=(64, 64)).layout
    'rows'
    >>> choose_policy("fc.bias", dtype="float32", shape=(64,)).policy
    'lossless'
    >>> choose_policy("fc.bias", dtype="float32", shape=(640,), overrides={"*.bias": "sinr"}).layout
    'flat'
    """
    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    floating = _is_float(dtype)
    if not floating:
        why = "not a float type SINR codes" if "float" in dtype else "not floating point"
        decision = Decision("lossless", f"{dtype}, {why}")
    elif numel == 0:
        decision = Decision("lossless", "empty")
    elif not finite:
        decision = Decision("lossless", "has NaN/inf")
    elif len(shape) == 0:
        decision = Decision("lossless", "scalar")
    elif len(shape) == 1:
        decision = Decision("lossless", "1-D (bias/norm)")
    elif numel < MIN_SINR_ELEMENTS:
        decision = Decision("lossless", f"tiny (< {MIN_SINR_ELEMENTS} values)")
    else:
        decision = _matrix_layout(shape)

    for pattern, policy, options in _parse_overrides(overrides):
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        if policy == "lossless":
            decision = Decision("lossless", f"override {pattern}")
            continue
        if not floating or numel == 0 or not finite:
            why = "not floating point" if not floating else "empty" if numel == 0 else "has NaN/inf"
            decision = Decision("lossless", f"override {pattern}=sinr ignored: {why}")
            continue
        if decision.policy == "sinr":
            base = decision
        elif len(shape) >= 2:
            base = _matrix_layout(shape)
        else:
            base = Decision("sinr", "", "flat" if numel <= FLAT_MAX_ELEMENTS else "blocks")
        merged = {**base.options, **options}
        decision = Decision("sinr", f"override {pattern}", merged.get("layout", base.layout), merged)
    return decision


def _matrix_layout(shape: tuple[int, ...]) -> Decision:
    """The SINR decision for a float tensor of ndim >= 2: rows, flat, or blocks."""
    k1 = math.prod(shape[1:])
    if FLAT_K1 <= k1 <= MAX_K1:
        return Decision("sinr", f"matrix, rows of {k1}", "rows")
    if k1 > MAX_K1:  # OMP's cost per weight grows as k1**2: cut long rows into short blocks
        block = block_length(k1)
        return Decision("sinr", f"rows of {k1} > {MAX_K1}: blocks of {block}, {BLOCK_ATOMS} atoms", "blocks",
                        {"block_size": block, "dictionary_size": BLOCK_ATOMS})
    if math.prod(shape) <= FLAT_MAX_ELEMENTS:
        return Decision("sinr", f"rows of {k1} < {FLAT_K1}: flattened", "flat")
    return Decision("sinr", f"rows of {k1} < {FLAT_K1}: blocks", "blocks")


def block_length(k1: int) -> int:
    """Block length for rows of ``k1`` > :data:`MAX_K1` values.

    The divisor of ``k1`` in [24, 48] nearest to :data:`BLOCK_K1` (the larger on a tie), so that every
    block lies inside one row; :data:`BLOCK_K1` when there is none (blocks then straddle rows).

    Examples
    --------
    >>> block_length(4096), block_length(576), block_length(100), block_length(80), block_length(147)
    (32, 32, 25, 40, 32)
    """
    divisors = [d for d in range(24, 49) if k1 % d == 0]
    return min(divisors, key=lambda d: (abs(d - BLOCK_K1), -d), default=BLOCK_K1)
