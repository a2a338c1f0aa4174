"""Shared INR building blocks: sine layers, positional encoding, a fitting loop, PSNR, devices.

Everything here is method-neutral; :mod:`sinr_adapters.methods.coin` and :mod:`sinr_adapters.methods.inric` assemble
their networks from these pieces with the state_dict key names of the methods' public code.

- :class:`Sine`, :class:`SineLayer`, :func:`siren_uniform_`: ``sin(w0 * (W x + b))`` with the SIREN
  initialisation (Sitzmann et al. 2020): first layer ``U(-1/n, 1/n)``, others ``U(-sqrt(c/n)/w0,
  sqrt(c/n)/w0)``, ``n`` the fan-in, ``c = 6``.
- :class:`PositionalEncoding`: INRIC's NeRF-style encoding, the input followed by
  ``sin(sigma**i * pi * x_j), cos(sigma**i * pi * x_j)`` for ``i < L`` and every coordinate ``j``, in
  that order (``d + 2 d L`` features).
- :func:`resolve_device` (the core's: ``"auto"`` -> CUDA when torch sees one, else CPU; ``"cuda"``
  without one is a ``ValueError``), :func:`synchronize`; ``coin_grid`` and ``linspace_grid`` are
  :mod:`sinr_adapters.framework.grids`'s, re-exported.
- :func:`fit`: Adam on MSE (+ an optional regulariser), full batch or mini-batch, CPU or GPU, a tqdm
  progress bar on stderr that is off when stderr is not a terminal, and the best full-batch state kept.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from sinr_codecs.sparse import resolve_device
from torch import nn

from .grids import coin_grid, linspace_grid

__all__ = [
    "FitLog",
    "PositionalEncoding",
    "Sine",
    "SineLayer",
    "coin_grid",
    "fit",
    "linspace_grid",
    "minibatches",
    "mse_to_psnr",
    "progress_enabled",
    "psnr",
    "psnr_8bit",
    "resolve_device",
    "restore_best",
    "siren_uniform_",
    "synchronize",
]


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (call before reading a clock); a no-op on CPU."""
    dev = resolve_device(device) if device is not None else None
    if (dev is None or dev.type == "cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(dev)


class Sine(nn.Module):
    """``sin(w0 * x)``. ``w0`` is configuration, not state: it is not in the state_dict."""

    def __init__(self, w0: float = 30.0) -> None:
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


def siren_uniform_(linear: nn.Linear, *, w0: float = 30.0, is_first: bool = False, c: float = 6.0,
                   bias: bool = True) -> nn.Linear:
    """SIREN initialisation in place: ``U(-1/n, 1/n)`` for the first layer, ``U(-sqrt(c/n)/w0, ...)``
    otherwise, ``n = in_features``; the bias too when ``bias`` (COIN does), else it keeps torch's default."""
    n = linear.in_features
    bound = (1.0 / n) if is_first else math.sqrt(c / n) / w0
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
        if bias and linear.bias is not None:
            linear.bias.uniform_(-bound, bound)
    return linear


class SineLayer(nn.Module):
    """``activation(linear(x))`` with SIREN initialisation; keys ``linear.weight``, ``linear.bias``.

    Parameters
    ----------
    dim_in, dim_out : int
        Fan-in and fan-out.
    w0 : float, default 30
        Frequency of the sine (and of the initialisation bound).
    is_first : bool, default False
        First layer of the network (initialised ``U(-1/dim_in, 1/dim_in)``).
    activation : nn.Module or None
        Defaults to :class:`Sine` ``(w0)``; ``nn.Identity()`` for a linear output layer.
    """

    def __init__(self, dim_in: int, dim_out: int, *, w0: float = 30.0, is_first: bool = False,
                 c: float = 6.0, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.linear = siren_uniform_(nn.Linear(dim_in, dim_out), w0=w0, is_first=is_first, c=c)
        self.activation = Sine(w0) if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class PositionalEncoding(nn.Module):
    """INRIC's NeRF-style positional encoding, concatenated with the input.

    ``[x, sin(s^0 pi x_0), cos(s^0 pi x_0), sin(s^0 pi x_1), cos(...), ..., cos(s^(L-1) pi x_(d-1))]``.

    Parameters
    ----------
    in_features : int
        ``d``, the coordinate dimension (2 for images, 3 for volumes, 1 for audio).
    num_frequencies : int
        ``L`` (INRIC's ``ff_dims``); 0 gives the identity.
    scale : float
        ``sigma`` (INRIC's ``encoding_scale``, 1.4 in its image experiments).

    Examples
    --------
    >>> pe = PositionalEncoding(2, num_frequencies=16, scale=1.4)
    >>> pe.out_dim
    66
    >>> tuple(pe(torch.zeros(5, 2)).shape)
    (5, 66)
    """

    def __init__(self, in_features: int, *, num_frequencies: int, scale: float) -> None:
        super().__init__()
        if in_features < 1 or num_frequencies < 0:
            raise ValueError("in_features must be >= 1 and num_frequencies >= 0")
        self.in_features = int(in_features)
        self.num_frequencies = int(num_frequencies)
        self.scale = float(scale)
        self.out_dim = self.in_features * (1 + 2 * self.num_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_frequencies == 0:
            return x
        freqs = math.pi * self.scale ** torch.arange(self.num_frequencies, dtype=x.dtype, device=x.device)
        arg = x[..., None, :] * freqs[:, None]                     # (..., L, d)
        enc = torch.stack((torch.sin(arg), torch.cos(arg)), dim=-1)  # (..., L, d, 2)
        return torch.cat((x, enc.flatten(-3)), dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_frequencies={self.num_frequencies}, scale={self.scale}"


def mse_to_psnr(mse: float | torch.Tensor, peak: float = 1.0) -> float:
    """``10 log10(peak^2 / mse)``; ``inf`` for ``mse == 0``."""
    mse = float(mse)
    if mse <= 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR in dB between two tensors of the same shape."""
    return mse_to_psnr(torch.mean((a.detach().float() - b.detach().float()) ** 2), peak)


def psnr_8bit(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of a reconstruction in [0, 1] after clamping and rounding to 8-bit levels (what a decoder
    that writes an 8-bit image delivers; COIN's ``get_clamped_psnr``), against a target in [0, 1]."""
    rec = torch.round(torch.clamp(reconstruction.detach().float(), 0.0, 1.0) * 255.0) / 255.0
    return psnr(rec, target)


@dataclass
class FitLog:
    """What :func:`fit` did: per-step loss (data term) and PSNR of the prediction it trained on."""

    steps: int = 0
    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_step: int = -1
    seconds: float = 0.0

    @property
    def final_psnr(self) -> float:
        return self.psnr[-1] if self.psnr else math.nan

    def to_dict(self) -> dict:
        return {"steps": self.steps, "best_loss": self.best_loss, "best_step": self.best_step,
                "seconds": self.seconds, "final_psnr": self.final_psnr}


def progress_enabled(progress: bool | None) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


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
    perm = None
    pos = n
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
            for p, b in zip(params, best):
                p.copy_(b)


def fit(
    forward: Callable[[torch.Tensor], torch.Tensor],
    parameters: Sequence[torch.Tensor],
    coords: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int | None = None,
    regularizer: Callable[[], torch.Tensor] | None = None,
    keep_best: bool = True,
    schedule: str = "constant",
    value_peak: float = 1.0,
    progress: bool | None = None,
    desc: str = "fit",
    generator: torch.Generator | None = None,
) -> FitLog:
    """Fit ``forward(coords) ~ target`` by Adam on the mean squared error.

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
    batch_size : int or None, default None
        ``None`` or ``>= N``: full batch. Otherwise random mini-batches (a fresh permutation per epoch).
    regularizer : callable or None
        Extra loss term ``regularizer() -> scalar`` added to the MSE (e.g. INRIC's L1 on ``theta - theta0``).
    schedule : {"constant", "cosine"}, default "constant"
        Learning-rate schedule (``"cosine"``: cosine decay to 0 over ``steps``).
    keep_best : bool, default True
        In full-batch mode, restore at the end the parameters of the step with the lowest data loss
        (the loss is that of the parameters *before* the step, so the restored state is the one that
        produced it).
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
    groups = list(parameters)
    if groups and isinstance(groups[0], dict):
        groups = [g for g in groups if len(list(g["params"]))]
        params = [p for g in groups for p in g["params"]]
    else:
        params = groups
    log = FitLog()
    if steps == 0 or not params:
        return log
    n = coords.shape[0]
    full = batch_size is None or batch_size >= n
    optimizer = torch.optim.Adam(groups, lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if schedule == "cosine" else None
    best: list[torch.Tensor] | None = None
    track = keep_best and full
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=desc, file=sys.stderr, leave=False, disable=not progress_enabled(progress),
               dynamic_ncols=True)
    try:
        for step, (xb, yb) in enumerate(minibatches(coords, target, steps, batch_size, generator)):
            optimizer.zero_grad(set_to_none=True)
            pred = forward(xb)
            data_loss = torch.mean((pred - yb) ** 2)
            loss = data_loss if regularizer is None else data_loss + regularizer()
            value = float(data_loss.detach())
            if track and value < log.best_loss:
                best = [p.detach().clone() for p in params]
            if value < log.best_loss:
                log.best_loss, log.best_step = value, step
            loss.backward()
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
                value = float(torch.mean((forward(coords) - target) ** 2))
            restore_best(log, params, best, value, steps)
    finally:
        bar.close()
    synchronize(coords.device)
    log.seconds = time.perf_counter() - t0
    return log
