"""The fitting loop every adapter trains with: :func:`fit` (Adam on a loss, full batch or mini-batch).

Fitting a network to a signal, quantization-aware fine-tuning before a stream is written, and a method's
own loss (binary cross-entropy for occupancy, a weighted YUV error for point-cloud colours) all run
through this one loop; only ``forward``, the trained tensors and ``loss`` differ.

- :func:`fit`: Adam on ``loss(forward(coords), target)`` (+ an optional regulariser), a constant or
  cosine schedule, the best full-batch state kept, a tqdm progress bar on stderr that is off when stderr
  is not a terminal; returns a :class:`FitLog`.
- :func:`minibatches`: the batch of each step (full batch, or permutations without replacement).
- :func:`progress_bar`, :func:`progress_enabled`: the progress bar every loop of the adapters shows.
- :func:`synchronize`: wait for queued GPU work before a clock is read.

Examples
--------
>>> import torch
>>> w = torch.zeros(1, requires_grad=True)
>>> x = torch.linspace(-1, 1, 8)[:, None]
>>> log = fit(lambda c: c * w, [w], x, 2 * x, steps=200, lr=0.05, progress=False)
>>> round(float(w.detach()), 2), log.steps
(2.0, 200)
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sinr_codecs.sparse import resolve_device

from .metrics import mse_to_psnr

__all__ = ["FitLog", "Loss", "fit", "minibatches", "mse", "progress_bar", "progress_enabled", "restore_best",
           "synchronize"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(prediction, target) -> scalar``: the data term a fit minimises."""


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean squared error, the default :data:`Loss`."""
    return torch.mean((prediction - target) ** 2)


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (call before reading a clock); a no-op on CPU."""
    dev = resolve_device(device) if device is not None else None
    if (dev is None or dev.type == "cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(dev)


@dataclass
class FitLog:
    """What :func:`fit` did: per-step loss (data term) and its PSNR (``mse_to_psnr(loss, value_peak)``:
    the PSNR of the prediction for the mean squared error, a loss in dB for any other)."""

    steps: int = 0
    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_step: int = -1
    seconds: float = 0.0

    @property
    def final_psnr(self) -> float:
        return self.psnr[-1] if self.psnr else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "best_loss": self.best_loss, "best_step": self.best_step,
                "seconds": self.seconds, "final_psnr": self.final_psnr}


def progress_enabled(progress: bool | None) -> bool:
    """``progress``, or (None) whether standard error is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def progress_bar(total: int, desc: str, progress: bool | None) -> Any:
    """A tqdm bar on standard error that disappears when done (disabled unless :func:`progress_enabled`)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, disable=not progress_enabled(progress),
                dynamic_ncols=True)


def minibatches(coords: torch.Tensor, target: torch.Tensor, steps: int, batch_size: int | None,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(coords, target)`` batch of each of ``steps`` optimizer steps.

    ``batch_size`` None or ``>= N``: the full ``(N, d)`` and ``(N, c)`` tensors every step. Otherwise
    ``batch_size`` rows without replacement from a permutation drawn (from ``generator``, on the CPU)
    when the current one has fewer than ``batch_size`` rows left.
    """
    n = coords.shape[0]
    if batch_size is None or batch_size >= n:
        for _ in range(steps):
            yield coords, target
        return
    perm = torch.randperm(n, generator=generator).to(coords.device)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm = torch.randperm(n, generator=generator).to(coords.device)
            pos = 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        yield coords[idx], target[idx]


def restore_best(log: FitLog, params: Sequence[torch.Tensor], best: Sequence[torch.Tensor] | None,
                 final_loss: float, steps: int) -> None:
    """End of a full-batch fit that kept its best step: record ``final_loss`` (that of the parameters after
    the last step) as step ``steps`` if it is the lowest, else copy ``best`` back into ``params``."""
    if final_loss < log.best_loss:
        log.best_loss, log.best_step = final_loss, steps
    elif best is not None:
        with torch.no_grad():
            for p, b in zip(params, best, strict=True):
                p.copy_(b)


def fit(
    forward: Callable[[torch.Tensor], torch.Tensor],
    parameters: Sequence[torch.Tensor] | Sequence[dict[str, Any]],
    coords: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    loss: Loss | None = None,
    batch_size: int | None = None,
    regularizer: Callable[[], torch.Tensor] | None = None,
    keep_best: bool = True,
    schedule: str = "constant",
    value_peak: float = 1.0,
    progress: bool | None = None,
    desc: str = "fit",
    generator: torch.Generator | None = None,
) -> FitLog:
    """Fit ``forward(coords) ~ target`` by Adam on ``loss`` (the mean squared error by default).

    Parameters
    ----------
    forward : callable
        ``forward(coords_batch) -> prediction`` of shape ``(n, channels)``; may use the tensors of
        ``parameters`` in any way (e.g. straight-through fake quantization, sparse reconstruction).
    parameters : sequence of torch.Tensor, or of dict
        Leaf tensors with ``requires_grad=True``, on the same device as ``coords`` and ``target``; or
        torch optimizer parameter groups (``{"params": [...], "lr": ...}``) for per-group learning rates.
    coords, target : torch.Tensor
        ``(N, d)`` inputs and ``(N, channels)`` values.
    steps : int
        Optimizer steps (0 returns at once).
    lr : float, default 1e-3
        Adam learning rate.
    loss : callable or None
        ``loss(prediction, target) -> scalar``, the data term (None: :func:`mse`).
    batch_size : int or None, default None
        ``None`` or ``>= N``: full batch. Otherwise random mini-batches (a fresh permutation per epoch).
    regularizer : callable or None
        Extra loss term ``regularizer() -> scalar`` added to the data term (e.g. INRIC's L1 on
        ``theta - theta0``); not part of the logged loss.
    keep_best : bool, default True
        In full-batch mode, restore at the end the parameters of the step with the lowest data loss
        (the loss is that of the parameters *before* the step, so the restored state is the one that
        produced it).
    schedule : {"constant", "cosine"}, default "constant"
        Learning-rate schedule (``"cosine"``: cosine decay to 0 over ``steps``).
    value_peak : float, default 1
        Peak of the value range for the logged PSNR (2 for values in [-1, 1]).
    progress : bool or None
        tqdm bar on stderr; ``None``: only when stderr is a terminal.
    desc : str
        Label of the progress bar.
    generator : torch.Generator or None
        Source of the mini-batch permutations (on the CPU).

    Returns
    -------
    FitLog
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    data_term = mse if loss is None else loss
    groups: list[Any] = list(parameters)
    if groups and isinstance(groups[0], dict):
        groups = [g for g in groups if len(list(g["params"]))]
        params = [p for g in groups for p in g["params"]]
    else:
        params = groups
    log = FitLog()
    if steps == 0 or not params:
        return log
    full = batch_size is None or batch_size >= coords.shape[0]
    optimizer = torch.optim.Adam(groups, lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if schedule == "cosine" else None
    best: list[torch.Tensor] | None = None
    track = keep_best and full
    t0 = time.perf_counter()
    bar = progress_bar(steps, desc, progress)
    try:
        for step, (xb, yb) in enumerate(minibatches(coords, target, steps, batch_size, generator)):
            optimizer.zero_grad(set_to_none=True)
            data_loss = data_term(forward(xb), yb)
            total = data_loss if regularizer is None else data_loss + regularizer()
            value = float(data_loss.detach())
            if track and value < log.best_loss:
                best = [p.detach().clone() for p in params]
            if value < log.best_loss:
                log.best_loss, log.best_step = value, step
            total.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            log.loss.append(value)
            log.psnr.append(mse_to_psnr(value, value_peak))
            log.steps += 1
            bar.update(1)
            if step % 25 == 0 or step == steps - 1:
                bar.set_postfix(psnr=f"{log.psnr[-1]:.2f}", refresh=False)
        if track:
            # one more evaluation: the state after the last step may be the best
            with torch.no_grad():
                value = float(data_term(forward(coords), target))
            restore_best(log, params, best, value, steps)
    finally:
        bar.close()
    synchronize(coords.device)
    log.seconds = time.perf_counter() - t0
    return log
