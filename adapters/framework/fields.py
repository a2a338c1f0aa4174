"""Shared parts of the adapters for signals other than images: a signal that carries its own reference,
fitting with a method's own loss, and the per-tensor stream records of :class:`~sinr_adapters.framework.inr.INRAdapter`.

:class:`FieldSignal` is a :class:`~sinr_adapters.framework.signals.Signal` with two more fields the harness reads:
``reference`` (the array its metric compares a rendering with, e.g. a dense occupancy grid while the
network is trained on sampled points) and ``elements`` (what the rate divides by: samples, points).

:class:`FieldAdapter` is an :class:`~sinr_adapters.framework.inr.INRAdapter` whose fitting and fine-tuning minimise
its :meth:`FieldAdapter.loss` (binary cross-entropy for occupancy, a weighted YUV error for point-cloud
colours) instead of the mean squared error; its streams are the ``INRAdapter`` container (module docstring
of :mod:`sinr_adapters.framework`), so :meth:`~sinr_adapters.framework.inr.INRAdapter.decompress` reads them unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import nets
from .inr import INRAdapter
from .signals import Signal
from .sinr_options import SINROptions
from .finetune import CompressionSetup

__all__ = ["FieldAdapter", "FieldSignal", "Siren", "siren_parameters", "train"]


@dataclass(frozen=True)
class FieldSignal(Signal):
    """A :class:`~sinr_adapters.framework.signals.Signal` with its own reference and element count.

    Attributes
    ----------
    reference : numpy.ndarray or None
        What the metric compares a rendering with (shape of what the adapter renders); None: the values
        in [0, 1] of ``shape``.
    elements : int or None
        What the rate divides by (samples, points); None: ``prod(shape[:-1])``.
    """

    reference: np.ndarray | None = None
    elements: int | None = None

    def to(self, device: torch.device | str) -> FieldSignal:
        return dataclasses.replace(self, coords=self.coords.to(device), values=self.values.to(device))


def train(forward: Callable[[torch.Tensor], torch.Tensor], parameters: Sequence[torch.Tensor], coords: torch.Tensor,
          target: torch.Tensor, *, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], steps: int,
          lr: float, batch_size: int | None = None, schedule: str = "constant", keep_best: bool = True,
          progress: bool | None = None, desc: str = "fit", generator: torch.Generator | None = None
          ) -> nets.FitLog:
    """Adam on ``loss(forward(coords), target)``: :func:`sinr_adapters.framework.nets.fit` with another loss.

    Parameters
    ----------
    forward : callable
        ``forward(coords_batch) -> prediction`` ``(n, c)``.
    parameters : sequence of torch.Tensor
        Leaf tensors trained.
    coords, target : torch.Tensor
        ``(N, d)`` inputs and ``(N, c)`` targets.
    loss : callable
        ``loss(prediction, target) -> scalar``.
    steps : int
        Optimizer steps (0 returns at once).
    lr : float
        Adam learning rate.
    batch_size : int or None
        None or ``>= N``: full batch (the best step is restored with ``keep_best``); else random
        mini-batches, a fresh permutation per epoch.
    schedule : {"constant", "cosine"}
    generator : torch.Generator or None
        Source of the mini-batch permutations.

    Returns
    -------
    FitLog
        Its ``psnr`` list holds ``-10 log10(loss)`` per step (a loss in dB, for progress only).
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    params = list(parameters)
    log = nets.FitLog()
    if steps == 0 or not params:
        return log
    n = coords.shape[0]
    full = batch_size is None or batch_size >= n
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if schedule == "cosine" else None
    best: list[torch.Tensor] | None = None
    track = keep_best and full
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=desc, file=sys.stderr, leave=False, disable=not nets.progress_enabled(progress),
               dynamic_ncols=True)
    try:
        for xb, yb in nets.minibatches(coords, target, steps, batch_size, generator):
            opt.zero_grad(set_to_none=True)
            value_t = loss(forward(xb), yb)
            value = float(value_t.detach())
            if track and value < log.best_loss:
                best = [p.detach().clone() for p in params]
            if value < log.best_loss:
                log.best_loss, log.best_step = value, log.steps
            value_t.backward()
            opt.step()
            if sched is not None:
                sched.step()
            log.loss.append(value)
            log.psnr.append(-10.0 * math.log10(max(value, 1e-30)))
            log.steps += 1
            bar.update(1)
        if track:
            with torch.no_grad():
                value = float(loss(forward(coords), target))
            nets.restore_best(log, params, best, value, steps)
    finally:
        bar.close()
    nets.synchronize(coords.device)
    log.seconds = time.perf_counter() - t0
    return log


class FieldAdapter(INRAdapter):
    """An :class:`~sinr_adapters.framework.inr.INRAdapter` fitted and fine-tuned with its own :meth:`loss`.

    Subclasses fill the ``INRAdapter`` hooks, ``signal_from(raw, name=)`` (the harness's signal
    constructor for non-image kinds) and, when the loss is not the mean squared error, :meth:`loss`.
    Streams are the ``INRAdapter`` container with ``h``, ``f``, ``q`` and ``s`` records.
    """

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss (default: mean squared error)."""
        return torch.mean((prediction - target) ** 2)

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        raise TypeError(f"{self.name} does not encode images; the harness builds its signals with signal_from()")

    def signal_from(self, raw: Any, *, name: str = "") -> Signal:
        """The signal of one raw signal of the adapter's source (e.g. a waveform, a shape)."""
        raise NotImplementedError

    def fit(self, signal: Signal, *, steps: int, lr: float | None = None, batch_size: int | None = None,
            device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: nn.Module | None = None) -> tuple[nn.Module, nets.FitLog]:
        """Fit a fresh network (seeded by ``seed``) or continue fitting ``model`` on :meth:`loss`."""
        dev = nets.resolve_device(device)
        if model is None:
            torch.manual_seed(seed)
            model = self.build_model()
        model = model.to(dev)
        sig = signal.to(dev)
        gen = torch.Generator().manual_seed(seed)
        log = train(model, list(model.parameters()), sig.coords, sig.values, loss=self.loss, steps=steps,
                    lr=self.default_lr if lr is None else lr, batch_size=batch_size, progress=progress,
                    desc=f"{self.name} fit", generator=gen)
        return model, log

    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None,
                           sinr_lr: float | None = None, schedule: str = "cosine",
                           batch_size: int | None = None, progress: bool | None = None
                           ) -> tuple[bytes, dict[str, Any]]:
        """:meth:`~sinr_adapters.framework.inr.INRAdapter.compress_with_info`, fine-tuned on :meth:`loss`."""
        info: dict[str, Any] = {}
        setup = self.prepare_compression(model, sinr)
        info["omp_seconds"] = setup.omp_seconds
        forward, sig, log = self.finetune(model, setup, signal, info, steps=finetune_steps, finetune_lr=finetune_lr,
                                          sinr_lr=sinr_lr, schedule=schedule, batch_size=batch_size,
                                          progress=progress)
        with torch.no_grad():
            info["loss_finetuned"] = float(self.loss(forward(sig.coords), sig.values))
        return self.write_stream(setup, signal.shape, log, info), info

    def finetune(self, model: nn.Module, setup: CompressionSetup, signal: Signal, info: dict[str, Any], *,
                 steps: int, finetune_lr: float | None, sinr_lr: float | None, schedule: str,
                 batch_size: int | None, progress: bool | None
                 ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Signal, nets.FitLog]:
        """Fine-tune ``setup``'s tensors on :meth:`loss` before they are written (:func:`train`, mini-batch
        permutations from a generator seeded 0); adds ``finetune_seconds`` to ``info``.

        Returns
        -------
        forward : callable
            ``forward(coords) -> prediction`` through ``setup``'s tensors (quantizers and SINR codes).
        signal : Signal
            ``signal`` on ``setup.device``.
        log : FitLog
        """
        names, codes = setup.names, setup.codes

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, {k: setup.tensor(k) for k in names}, (x,))

        sig = signal.to(setup.device)
        t1 = time.perf_counter()
        lr = self.finetune_learning_rate(with_sinr=bool(codes), finetune_lr=finetune_lr, sinr_lr=sinr_lr)
        log = train(forward, list(setup.trainable.values()), sig.coords, sig.values, loss=self.loss,
                    steps=steps, lr=lr, batch_size=batch_size, schedule=schedule, progress=progress,
                    desc=f"{self.name}{'+sinr' if codes else ''} fine-tune",
                    generator=torch.Generator().manual_seed(0))
        info["finetune_seconds"] = time.perf_counter() - t1
        return forward, sig, log


class Siren(nn.Module):
    """A SIREN: ``layers`` sine layers of width ``width`` and a linear output.

    State_dict keys ``net.{i}.linear.weight`` / ``.bias`` and ``last.linear.weight`` / ``.bias``.

    Parameters
    ----------
    dim_in, dim_out : int
        Coordinate dimension and channels.
    width, layers : int
        Hidden width and number of sine layers.
    w0, w0_initial : float
        Sine frequency of the hidden layers and of the first layer (SIREN: 30; 3000 for audio's first).
    """

    def __init__(self, *, dim_in: int, dim_out: int, width: int, layers: int, w0: float = 30.0,
                 w0_initial: float = 30.0) -> None:
        super().__init__()
        self.net = nn.Sequential(*[
            nets.SineLayer(dim_in if i == 0 else width, width, w0=w0_initial if i == 0 else w0, is_first=i == 0)
            for i in range(layers)])
        self.last = nets.SineLayer(width, dim_out, w0=w0, activation=nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.net(x))


def siren_parameters(dim_in: int, dim_out: int, width: int, layers: int) -> int:
    """Parameters of :class:`Siren` (counted without building it)."""
    return (dim_in + 1) * width + (layers - 1) * (width + 1) * width + (width + 1) * dim_out
