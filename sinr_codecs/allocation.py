"""How whole-model compression spreads its error over the tensors: one quantizer step for all of them.

A network's outputs move with the *absolute* noise added to its weights, not with each tensor's or each
row's relative error: a bound per row spends bits on rows that matter little. The ``"global"`` coding of
:func:`sinr_codecs.weights.compress_weights` therefore quantizes every lossily coded tensor with one step
``s`` (MPEG's Neural Network Coding standard does the same), chosen so that the relative error of all
the weight tensors (2 or more dimensions) together,

    E = sqrt( sum_t S_t ||w_t - w_hat_t||**2 / sum_t S_t ||w_t||**2 ),

meets a target (``max_rel_error``); or set directly (``step``). ``S_t = 1`` unless per-tensor
sensitivities are given (:mod:`sinr_codecs.sensitivity`: how much the outputs move per unit of noise in
each tensor, from calibration inputs); a tensor then gets the step ``s * (S_t / S_mean) ** -1/4``
(:data:`SENSITIVITY_EXPONENT`), ``S_mean`` the geometric mean over the tensors. Two guards keep one step
from erasing a tensor whose values are much smaller than the rest: no tensor's step exceeds
:data:`RELATIVE_CAP` times the step that would give it the target's relative error on its own (so no tensor
ends up more than about 4 x ``max_rel_error`` off; on the benchmark's networks the guard never cost a
byte); and the small tensors, 1-D ones (biases, norm weights, running statistics) and matrices of fewer than
:data:`FINE_BELOW` values (the first and last layers of small networks), few values and sensitive, get
``s / 8``, or the step that keeps them within a relative error of 1e-3 if that is finer.

:func:`tensor_stats` summarises one tensor (its size, squared norm and an evenly spaced sample of its
values); :func:`solve_step` finds ``s`` for a target from those summaries; :func:`steps` gives each
tensor's step for a given ``s``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stats = [tensor_stats(rng.standard_normal((64, 64)) * 0.1), tensor_stats(rng.standard_normal(64) * 0.5)]
>>> s = solve_step(stats, 0.02)
>>> bool(0.005 < s < 0.01), steps(stats, s, 0.02)[1] < s / 7
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_REL_ERROR", "SENSITIVITY_EXPONENT", "RELATIVE_CAP", "FINE_BELOW", "FINE_FRACTION", "FINE_REL_ERROR",
           "TensorStats", "tensor_stats", "solve_step", "steps", "relative_error"]

DEFAULT_REL_ERROR = 0.02
"""The global relative error of ``sinr compress`` when none is given (docs/real-checkpoints.md measures
what it does to real networks' outputs)."""
SENSITIVITY_EXPONENT = 0.25
"""How strongly sensitivities change a tensor's step: ``(S_t / S_mean) ** -SENSITIVITY_EXPONENT``. The
high-rate optimum for the sensitivity-weighted error is 1/2; sensitivities estimated from a few calibration
inputs are noisy, and 1/4 gave fewer bytes at equal task error on the benchmark's networks
(benchmarks/weights_vs_nncodec.py)."""
RELATIVE_CAP = 4.0
"""A tensor's step is at most ``RELATIVE_CAP * E * sqrt(12) * rms_t``, ``E`` the global target: its relative
error stays within about this multiple of the global one."""
FINE_BELOW = 256
"""Matrices (2 or more dimensions) of fewer values are coded finely, as 1-D tensors are."""
FINE_FRACTION = 1 / 8
"""Step of a finely coded tensor (1-D, or a matrix under :data:`FINE_BELOW` values) relative to the global
step (at most)."""
FINE_REL_ERROR = 1e-3
"""Relative error a finely coded tensor's step keeps it within (at most)."""
SAMPLE_VALUES = 1 << 15
"""Values per tensor the step search looks at."""


@dataclass(frozen=True)
class TensorStats:
    """What the step search needs of one tensor.

    Attributes
    ----------
    size : int
        Number of values.
    sumsq : float
        ``||w||**2`` (float64).
    sample : numpy.ndarray
        Up to :data:`SAMPLE_VALUES` of its values, evenly spaced (float64).
    fine : bool
        A 1-D tensor or a matrix under :data:`FINE_BELOW` values: its step is a fraction of the global
        one, and its error is not counted in the global target.
    sensitivity : float
        ``S_t`` (1 when none is known).
    """

    size: int
    sumsq: float
    sample: np.ndarray
    fine: bool = False
    sensitivity: float = 1.0

    @property
    def rms(self) -> float:
        return math.sqrt(self.sumsq / self.size) if self.size else 0.0


def tensor_stats(values: np.ndarray, *, fine: bool | None = None, sensitivity: float = 1.0) -> TensorStats:
    """The :class:`TensorStats` of a finite float tensor (``fine`` defaults to ``values.ndim <= 1`` or fewer
    than :data:`FINE_BELOW` values)."""
    flat = np.asarray(values).reshape(-1)
    x = flat.astype(np.float64) if flat.size <= SAMPLE_VALUES else flat[
        np.linspace(0, flat.size - 1, SAMPLE_VALUES).astype(np.int64)].astype(np.float64)
    sumsq = float(sum(np.dot(c, c) for c in (flat[i:i + (1 << 18)].astype(np.float64)
                                             for i in range(0, flat.size, 1 << 18))))
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise ValueError(f"a sensitivity must be a positive finite number, got {sensitivity!r}")
    if fine is None:
        fine = np.asarray(values).ndim <= 1 or flat.size < FINE_BELOW
    return TensorStats(int(flat.size), sumsq, x, fine,
                       float(sensitivity))


def _factors(stats: Sequence[TensorStats]) -> np.ndarray:
    """Each tensor's step as a multiple of the global step, before the fine rule's relative cap."""
    sens = np.array([t.sensitivity for t in stats], dtype=np.float64)
    if sens.size:  # a tensor the outputs barely see must not drag the mean down: floor at 1e-6 x median
        sens = np.maximum(sens, 1e-6 * float(np.median(sens)))
    mean = math.exp(float(np.mean(np.log(sens)))) if sens.size else 1.0
    factors = (sens / mean) ** -SENSITIVITY_EXPONENT
    return np.where([t.fine for t in stats], factors * FINE_FRACTION, factors)


def steps(stats: Sequence[TensorStats], step: float, target: float | None = None) -> list[float]:
    """Each tensor's quantizer step when the global step is ``step``.

    ``target``: the global relative error the step was chosen for (:func:`solve_step`); a tensor's step is
    at most the one that would leave it :data:`RELATIVE_CAP` times that far off on its own. Without it, the
    noise model's estimate of the global error at ``step`` stands in.
    """
    factors = _factors(stats)
    if target is None:
        wide = any(not t.fine for t in stats)
        counted = [(t, f) for t, f in zip(stats, factors, strict=True) if not (wide and t.fine)]
        weight = sum(t.sensitivity * t.sumsq for t, _ in counted)
        noise = sum(t.sensitivity * t.size * float(f) ** 2 / 12.0 for t, f in counted)
        target = step * math.sqrt(noise / weight) if weight > 0 else 0.0
    out = []
    for t, f in zip(stats, factors, strict=True):
        s = step * float(f)
        if t.fine and t.rms > 0:
            s = min(s, FINE_REL_ERROR * t.rms * math.sqrt(12.0))
        elif target > 0 and t.rms > 0:
            s = min(s, RELATIVE_CAP * target * t.rms * math.sqrt(12.0))
        out.append(s if s > 0 else step)
    return out


def relative_error(stats: Sequence[TensorStats], step: float, target: float | None = None) -> float:
    """The (sensitivity-weighted) relative error of the tensors not coded finely (all of them if every one
    is) with global step ``step`` (and the cap of ``target``, as :func:`steps`), estimated on each tensor's
    sample. Finely coded tensors follow their own rule and are not counted: their norms (biases, norm
    weights near 1) would otherwise lend the weight matrices error they are not coded with."""
    wide = any(not t.fine for t in stats)
    num = den = 0.0
    for t, s in zip(stats, steps(stats, step, target), strict=True):
        if t.size == 0 or t.sumsq == 0 or (wide and t.fine):
            continue
        err = t.sample - np.rint(t.sample / s) * s
        num += t.sensitivity * float(np.dot(err, err)) * t.size / t.sample.size
        den += t.sensitivity * t.sumsq
    return math.sqrt(num / den) if den > 0 else 0.0


def solve_step(stats: Sequence[TensorStats], target: float) -> float:
    """The global step whose (estimated) relative error is ``target``, within 0.5%.

    Raises
    ------
    ValueError
        ``target`` outside (0, 1), or no tensor with a nonzero value.
    """
    if not 0.0 < float(target) < 1.0:
        raise ValueError(f"max_rel_error must lie in (0, 1), got {target!r}")
    live = [t for t in stats if t.sumsq > 0]
    if not live:
        raise ValueError("no tensor to quantize has a nonzero value")
    f = _factors(stats)
    wide = any(not t.fine for t in stats)
    counted = [(t, fi) for t, fi in zip(stats, f, strict=True) if not (wide and t.fine)]
    weight = sum(t.sensitivity * t.sumsq for t, _ in counted)
    noise = sum(t.sensitivity * t.size * float(fi) ** 2 / 12.0 for t, fi in counted)
    guess = target * math.sqrt(weight / noise) if noise > 0 else max(t.rms for t in live)
    lo, hi = guess / 2, guess * 2
    while relative_error(stats, lo, target) > target and lo > 1e-300:
        lo /= 4
    while relative_error(stats, hi, target) <= target and hi < 1e300:
        hi *= 4
    while hi / lo > 1.005:  # relative_error(lo) <= target < relative_error(hi)
        mid = math.sqrt(lo * hi)
        if relative_error(stats, mid, target) <= target:
            lo = mid
        else:
            hi = mid
    return lo
