"""AdaRound: learned rounding of uniformly quantized tensors (Nagel et al. 2020, "Up or Down? Adaptive
Rounding for Post-Training Quantization"), as INRIC applies it before its quantization-aware retraining.

Each tensor ``w`` keeps the step ``s`` of the symmetric per-tensor quantizer
(:func:`sinr_adapters.framework.quantizers.uniform_quantize`); instead of rounding to the nearest integer, each
value is rounded *up or down*, with the choice learned::

    w_soft = s * clamp(floor(w / s) + h(V), -qmax, qmax)
    h(V)   = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1)          zeta = 1.1, gamma = -0.1
    loss   = MSE(network(w_soft), target) + reg * mse0 * mean(1 - |2 h(V) - 1| ** beta)

``V`` starts where ``h(V)`` equals the fractional part of ``w / s`` (so ``w_soft = w`` at first), Adam
trains ``V`` only; the rounding regulariser is off for the first ``warm_start`` fraction of the steps,
then ``beta`` decays from 20 to 2 by a cosine (the schedule of Nagel et al. and of AIMET, which INRIC
uses); ``mse0`` (the loss with nearest rounding) makes ``reg`` independent of the signal's scale. At the
end each value is rounded up where ``h(V) >= 0.5``, except those that nearest rounding sends to
``+-qmax`` (the largest magnitude sets the step, so it must stay on the grid's end). The hard rounding is also
measured every ``check_every`` steps after the warm start; the best one met is returned.

Nagel et al. and AIMET optimise each layer's output in turn; here the loss is the signal's MSE of the
whole quantized network (the networks are small enough to train all tensors at once), and the result is
kept only if it beats nearest rounding on that MSE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from ..framework.quantizers import uniform_quantize

__all__ = ["AdaRoundResult", "adaround"]

ZETA, GAMMA = 1.1, -0.1


@dataclass(frozen=True)
class AdaRoundResult:
    """What :func:`adaround` returns.

    Attributes
    ----------
    tensors : dict of str to torch.Tensor
        Each rounded tensor, dequantized (``q * step``; float32, its input shape): the nearest-rounded
        one when AdaRound did not lower the MSE.
    mse_nearest, mse_adaround : float
        The MSE with nearest rounding and with AdaRound's hard rounding (value units squared).
    used : bool
        Whether AdaRound's rounding was kept (``mse_adaround < mse_nearest``).
    flipped : int
        Values rounded the other way than nearest rounding would.
    steps : dict of str to float
        Each tensor's quantizer step (``tensors[k] / steps[k]`` are integers).
    """

    tensors: dict[str, torch.Tensor]
    mse_nearest: float
    mse_adaround: float
    used: bool
    flipped: int
    steps: dict[str, float]


def _h(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def adaround(forward: Callable[[Mapping[str, torch.Tensor]], torch.Tensor], tensors: Mapping[str, torch.Tensor],
             bits: Mapping[str, int], target: torch.Tensor, *, steps: int = 300, lr: float = 3e-2,
             reg: float = 1.0, beta: tuple[float, float] = (20.0, 2.0), warm_start: float = 0.2,
             check_every: int = 10) -> AdaRoundResult:
    """Learn the rounding of ``tensors`` (each at ``bits[name]`` bits) that minimises the MSE of ``forward``.

    Parameters
    ----------
    forward : callable
        ``forward(rounded) -> prediction``: the network's output with the tensors of ``rounded``
        (name -> tensor, the shapes of ``tensors``) in place of the originals; differentiable.
    tensors : mapping of str to torch.Tensor
        The values to round (float32, any shape; not modified).
    bits : mapping of str to int
        Quantizer bits per tensor (2..16); the step is :func:`~sinr_adapters.framework.quantizers.uniform_quantize`'s.
    target : torch.Tensor
        What ``forward`` should output, its shape.
    steps : int, default 300
        Adam steps on the rounding variables (0: nearest rounding).
    lr : float, default 3e-2
        Adam learning rate.
    reg : float, default 1.0
        Weight of the rounding regulariser, relative to the MSE with nearest rounding.
    beta : (float, float), default (20, 2)
        Start and end of the regulariser's exponent.
    warm_start : float, default 0.2
        Fraction of the steps without the regulariser.
    check_every : int, default 10
        After the warm start, the hard rounding is measured every this many steps and the best kept.

    Returns
    -------
    AdaRoundResult
    """
    if steps < 0 or not 0.0 <= warm_start < 1.0 or reg < 0 or check_every < 1:
        raise ValueError("steps must be >= 0, warm_start in [0, 1), reg >= 0 and check_every >= 1")
    grid: dict[str, tuple[torch.Tensor, float, int]] = {}
    nearest: dict[str, torch.Tensor] = {}
    edge: dict[str, torch.Tensor] = {}  # values at +-qmax keep them: the largest sets the step
    for k, t in tensors.items():
        t = t.detach().float()
        q, step = uniform_quantize(t, int(bits[k]))
        qmax = 2 ** (int(bits[k]) - 1) - 1
        grid[k] = (torch.floor(t / step), step, qmax)
        nearest[k] = q.to(t.device, torch.float32) * step
        edge[k] = q.abs().to(t.device) == qmax

    def mse(rounded: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.mean((forward(rounded) - target) ** 2)

    with torch.no_grad():
        mse0 = float(mse(nearest))
    if steps == 0 or not tensors:
        step_sizes = {k: g[1] for k, g in grid.items()}
        return AdaRoundResult(nearest, mse0, mse0, False, 0, step_sizes)

    alpha: dict[str, torch.Tensor] = {}
    for k, t in tensors.items():
        floor, step, _ = grid[k]
        rest = torch.clamp(t.detach().float() / step - floor, 0.01, 0.99)
        alpha[k] = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)).requires_grad_(True)

    def rounded(hard: bool) -> dict[str, torch.Tensor]:
        out = {}
        for k, (floor, step, qmax) in grid.items():
            up = (alpha[k] >= 0).float() if hard else _h(alpha[k])
            out[k] = torch.clamp(floor + up, -qmax, qmax) * step
            if hard:
                out[k] = torch.where(edge[k], nearest[k], out[k])
        return out

    n_values = sum(a.numel() for a in alpha.values())
    opt = torch.optim.Adam(list(alpha.values()), lr=lr)
    warm = int(warm_start * steps)
    scale = reg * max(mse0, 1e-12)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for i in range(steps):
        if i >= warm and (i - warm) % check_every == 0:
            with torch.no_grad():
                hard = rounded(True)
                m = float(mse(hard))
            if best is None or m < best[0]:
                best = (m, hard)
        loss = mse(rounded(False))
        if i >= warm:
            rel = (i - warm) / max(steps - warm - 1, 1)
            b = beta[1] + 0.5 * (beta[0] - beta[1]) * (1 + math.cos(rel * math.pi))
            round_loss = sum((1 - torch.abs(2 * _h(a) - 1) ** b).sum() for a in alpha.values()) / n_values
            loss = loss + scale * round_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        hard = rounded(True)
        mse1 = float(mse(hard))
        if best is not None and best[0] < mse1:
            mse1, hard = best
        flipped = sum(int((hard[k] != nearest[k]).sum()) for k in hard)
    step_sizes = {k: g[1] for k, g in grid.items()}
    if mse1 < mse0:
        return AdaRoundResult({k: v.detach() for k, v in hard.items()}, mse0, mse1, True, flipped, step_sizes)
    return AdaRoundResult(nearest, mse0, mse1, False, 0, step_sizes)
