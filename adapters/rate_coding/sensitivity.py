"""How much each stored value matters: the diagonal Fisher (Gauss-Newton) information of the image MSE.

For a network output ``f(theta)`` (``N`` elements: pixels times channels) and the error
``MSE = mean((f - y)**2)``, a small perturbation ``delta`` of the values raises the error by about
``delta^T H delta / 2`` with the Gauss-Newton Hessian ``H = (2 / N) J^T J`` (``J = df/dtheta``). Its diagonal

    F_w = (2 / N) * sum_e J_ew**2

is what :func:`diagonal_fisher` estimates, without per-element Jacobians: for Rademacher probes ``u``
(``+-1`` per output element), ``E[(u^T J)_w**2] = sum_e J_ew**2``, so ``probes`` backward passes of
``sum(u * f)`` give an unbiased estimate.

Uniform quantization with step ``step`` adds noise of variance ``step**2 / 12`` to each value, so a tensor
``i`` with mean ``Fbar_i`` over its ``n_i`` values costs about ``n_i Fbar_i step_i**2 / 24`` of MSE; with
ideal entropy coding it costs ``n_i (h_i - log2 step_i)`` bits. Minimising
``MSE + lam * bits / pixels`` over the steps gives the classic high-rate allocation
(:func:`high_rate_steps`): ``step_i**2 * Fbar_i`` equal across tensors,
``step_i**2 = 12 lam / (pixels ln 2 Fbar_i)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["diagonal_fisher", "high_rate_steps"]


def diagonal_fisher(output: Callable[[Sequence[torch.Tensor]], torch.Tensor], params: Sequence[torch.Tensor], *,
                    probes: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """Diagonal Gauss-Newton Hessian of ``mean((output - y)**2)`` with respect to ``params``.

    Parameters
    ----------
    output : callable
        ``output(params) -> tensor`` of any shape (``N`` elements); differentiable in ``params``.
    params : sequence of torch.Tensor
        The values (each any shape); detached copies are differentiated, the tensors are not modified.
    probes : int, default 16
        Rademacher probes (backward passes); the estimate's relative standard error is about
        ``sqrt(2 / probes)`` per value and far less for a tensor's mean.
    seed : int, default 0
        Seed of the probes (CPU generator: the same on every device).

    Returns
    -------
    list of torch.Tensor
        ``F`` per tensor, the shape of ``params[i]``, in units of MSE per squared value unit.
    """
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    out = output(leaves)
    n = out.numel()
    gen = torch.Generator().manual_seed(int(seed))
    acc = [torch.zeros_like(p) for p in leaves]
    for i in range(probes):
        u = (torch.randint(0, 2, out.shape, generator=gen, dtype=torch.int8).to(out.device, out.dtype) * 2 - 1)
        grads = torch.autograd.grad((u * out).sum(), leaves, retain_graph=i + 1 < probes, allow_unused=True)
        for a, g in zip(acc, grads, strict=True):
            if g is not None:
                a += g.detach() ** 2
    return [a * (2.0 / (n * probes)) for a in acc]


def high_rate_steps(mean_fisher: Sequence[float], lam: float, pixels: int) -> list[float]:
    """Quantizer steps minimising ``MSE + lam * bits / pixels`` at high rate: ``sqrt(12 lam / (pixels ln2 F))``.

    Parameters
    ----------
    mean_fisher : sequence of float
        Mean diagonal Fisher ``Fbar_i`` of each tensor's values (:func:`diagonal_fisher`), > 0.
    lam : float
        Rate weight (bits per pixel against MSE), > 0.
    pixels : int
        What the rate divides by.

    Returns
    -------
    list of float
        One step per tensor, in value units; ``step_i**2 * Fbar_i`` is the same for every tensor.
    """
    if lam <= 0 or pixels <= 0:
        raise ValueError("lam and pixels must be > 0")
    c = 12.0 * lam / (pixels * math.log(2.0))
    return [math.sqrt(c / f) if f > 0 else math.inf for f in mean_fisher]
