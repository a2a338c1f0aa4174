"""Rate-aware compression of a fitted coordinate network: train the stored values while coding them.

Any :class:`~sinr_adapters.framework.inr.INRAdapter` (with or without SINR) is compressed by minimising

    loss = MSE(decoded signal, signal) + lam * (estimated bits) / (pixels)

over the stored values (the dense tensors, or SINR's sparse values with the support fixed), one
quantizer step per tensor (log-parametrised) and one rate-model scale per tensor
(:func:`sinr_adapters.rate_coding.rate.laplace_bits`), with straight-through rounding. ``lam`` sweeps the rate.

*Seeded residuals* (``seed`` given to :func:`seeded_init` and :func:`compress`): the network is fitted
from an initialisation ``theta0`` drawn from the library's own counter-based Gaussian generator
(:func:`sinr_codecs.dictionary.gaussian_stream`, one float16 standard deviation per tensor in the stream),
and the stream codes ``theta - theta0``; the decoder regenerates ``theta0``.

The stream holds, per stored tensor, its step and its integers (dense tensors: rANS with the rate
model's own table when that is smaller, :func:`sinr_adapters.rate_coding.stream.code_values`) or a SINR
stream written by the core (support, integers and step); :mod:`sinr_adapters.rate_coding.stream` writes
and reads it (docs/format-adapters.md, "Rate-aware streams").
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sinr_codecs.sparse import SparseCode

from ..framework import metrics
from ..framework.finetune import replace_code
from ..framework.inr import INRAdapter
from ..framework.quantizers import ste_round
from ..framework.signals import Signal
from ..framework.sinr_options import SINROptions
from .rate import laplace_bits
from .sensitivity import diagonal_fisher, high_rate_steps
from .stream import TensorRecord, seeded_tensor, write

__all__ = ["STEP_INITS", "RateAwareOptions", "compress", "seeded_init"]

STEP_INITS = ("max", "fisher", "fisher-relative")
"""How :class:`RateAwareOptions` may start the steps."""


@dataclass(frozen=True, kw_only=True)
class RateAwareOptions:
    """How :func:`compress` trains.

    Attributes
    ----------
    lam : float
        Rate weight: bits per pixel against the mean squared error of the values (the adapter's value
        units). Larger: smaller streams.
    steps : int, default 300
        Adam steps.
    lr : float, default 1e-4
        Learning rate of the stored values (dense tensors); SINR's sparse values use ``sinr_lr``.
    sinr_lr : float, default 1e-3
    step_lr : float, default 1e-2
        Learning rate of the log quantizer steps and log rate-model scales.
    init_bits : int, default 8
        Initial step ``max|v| / (2**(init_bits-1) - 1)`` per tensor (``step_init="max"``, and the level
        ``"fisher-relative"`` keeps).
    step_init : {"max", "fisher", "fisher-relative"}, default "fisher-relative"
        How the steps start. ``"fisher"``: the high-rate optimal steps for ``lam``
        (:func:`sinr_adapters.rate_coding.sensitivity.high_rate_steps` of each tensor's mean diagonal Fisher), so
        ``step**2 * Fisher`` is equal across tensors; ``"fisher-relative"``: the same ratios between tensors
        at the overall level of ``init_bits`` (measured 0.0-1.2% fewer bits than ``"max"`` at equal PSNR on
        64-px COIN SIRENs; ``"fisher"`` was +-1%). Steps stay within ``[max|v| / 2**15, 2 max|v|]``.
    fisher_probes : int, default 16
        Probes of the Fisher estimate (:func:`sinr_adapters.rate_coding.sensitivity.diagonal_fisher`).
    refine_every : int, default 0
        SINR support refinement: dense shadow weights of each SINR-coded tensor are trained with the
        gradient its sparse reconstruction receives (straight-through, learning rate ``lr``), and every
        ``refine_every`` steps OMP re-fits the support to them; the new support and values are kept when
        the loss (with the current steps) drops. 0: the support stays the one OMP found first.
    refine_accept : {"better", "always"}, default "better"
        ``"always"``: take every re-fitted support (projected training; the step with the lowest loss is
        still the one kept).
    """

    lam: float
    steps: int = 300
    lr: float = 1e-4
    sinr_lr: float = 1e-3
    step_lr: float = 1e-2
    init_bits: int = 8
    step_init: str = "fisher-relative"
    fisher_probes: int = 16
    refine_every: int = 0
    refine_accept: str = "better"

    def __post_init__(self) -> None:
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam}")
        if self.steps < 0 or not 2 <= self.init_bits <= 16:
            raise ValueError("steps must be >= 0 and init_bits in 2..16")
        if self.step_init not in STEP_INITS:
            raise ValueError(f"step_init must be one of {STEP_INITS}, got {self.step_init!r}")
        if self.refine_accept not in ("better", "always"):
            raise ValueError(f"refine_accept must be 'better' or 'always', got {self.refine_accept!r}")
        if self.refine_every < 0:
            raise ValueError(f"refine_every must be >= 0, got {self.refine_every}")
        if self.fisher_probes < 1:
            raise ValueError(f"fisher_probes must be >= 1, got {self.fisher_probes}")


# ---- seeded initialisation ---------------------------------------------------------------------
def seeded_init(adapter: INRAdapter, seed: int) -> tuple[nn.Module, dict[str, float]]:
    """A fresh network of ``adapter`` whose stored tensors are regenerable from ``seed``.

    Each stored tensor (the ``i``-th in stream order) is ``std_i * gaussian_stream(seed * 4099 + i)``
    where ``std_i`` is the float16-rounded standard deviation of the adapter's own initialisation of it
    (``torch.manual_seed(seed)``; written to the stream).

    Returns
    -------
    (model, stds)
        The network to fit from, and ``{name: std}``.
    """
    torch.manual_seed(seed)
    model = adapter.build_model()
    names = adapter.tensor_names(model)
    sd = model.state_dict()
    if any(k not in sd for k in names):
        raise ValueError(f"seeded residuals apply to methods that store their network's own weights; {adapter.name} "
                         f"stores {sorted(set(names) - set(sd))}, which its network does not initialise")
    stds: dict[str, float] = {}
    new = {}
    for i, k in enumerate(names):
        t = sd[k].float()
        std = float(np.float16(t.std().item() if t.numel() > 1 else t.abs().mean().item()))
        stds[k] = std
        new[k] = seeded_tensor(seed, i, std, tuple(t.shape))
    model.load_state_dict({**sd, **new}, strict=True)
    return model, stds


# ---- training -----------------------------------------------------------------------------------
class _Coded:
    """The trainable state of one stored tensor: values, log step, log rate scale (and its code)."""

    def __init__(self, values: torch.Tensor, code: Any, init_bits: int) -> None:
        self.values = values
        self.code = code
        self.mask = None if code is None else (code.indices >= 0).to(values.device, values.dtype)
        self.amax = float(values.detach().abs().max()) if values.numel() else 0.0
        self.log_step = torch.tensor(0.0, device=values.device, requires_grad=True)
        self.log_scale = torch.tensor(0.0, device=values.device, requires_grad=True)
        self.set_step(self.amax / (2 ** (init_bits - 1) - 1) if self.amax > 0 else 1e-3)

    def set_step(self, step: float) -> None:
        """Start from quantizer step ``step`` (clamped to ``[max|v| / 2**15, 2 max|v|]``) and the rate-model
        scale of the values at that step."""
        if self.amax > 0:
            step = min(max(step, self.amax / 2 ** 15), 2 * self.amax)
        with torch.no_grad():
            self.log_step.fill_(math.log(step))
            v = self.values.detach().abs() / step
            used = v if self.mask is None else v[self.mask > 0]
            self.log_scale.fill_(math.log(float(used.mean()) + 0.5 if used.numel() else 1.0))

    def set_code(self, code: Any, values: torch.Tensor) -> None:
        """Take another support (``code``) and its values (same shape)."""
        self.code = code
        if code is not None:
            self.mask = (code.indices >= 0).to(self.values.device, self.values.dtype)
        with torch.no_grad():
            self.values.copy_(values)

    def n_values(self) -> int:
        return self.values.numel() if self.mask is None else int(self.mask.sum())

    def step(self) -> torch.Tensor:
        # the decoder uses the float32 step: the forward pass sees it
        s = torch.exp(self.log_step)
        return s + (s.detach().float() - s).detach()

    def integers(self) -> torch.Tensor:
        q = ste_round(self.values / self.step())
        return q if self.mask is None else q * self.mask

    def bits(self, q: torch.Tensor) -> torch.Tensor:
        b = laplace_bits(q, self.log_scale)
        return b.sum() if self.mask is None else (b * self.mask).sum()

    def tensor(self, q: torch.Tensor) -> torch.Tensor:
        v = q * self.step()
        return v if self.code is None else self.code.reconstruct(v)


def compress(adapter: INRAdapter, model: nn.Module, signal: Signal, options: RateAwareOptions, *,
             sinr: SINROptions | None = None, seed: int | None = None, stds: dict[str, float] | None = None,
             progress: bool | None = None) -> tuple[bytes, dict[str, Any]]:
    """Rate-aware fine-tuning of ``model`` and its stream (layout: module docstring).

    Parameters
    ----------
    adapter : INRAdapter
        The method (its :meth:`~INRAdapter.reference`, if any, is subtracted as usual).
    model : nn.Module
        The fitted network (not modified).
    signal : Signal
        The signal it was fitted to.
    options : RateAwareOptions
    sinr : SINROptions or None
        SINR-code the adapter's :meth:`~INRAdapter.sinr_tensor_names` (their sparse values are trained,
        the support stays fixed); ``None``: every tensor dense.
    seed, stds : int and dict, or None
        Code ``theta - theta0`` with ``theta0`` of :func:`seeded_init` (``model`` should have been fitted
        from it); ``stds`` is what :func:`seeded_init` returned.

    Returns
    -------
    (bytes, dict)
        The stream, and what happened: ``estimated_bits`` (rate model, final integers),
        ``actual_bits`` (the dense tensors' values sections), ``sinr_bits`` (the SINR records: support,
        values and steps), ``psnr_finetuned``, ``seconds``, byte split.
    """
    if (seed is None) != (stds is None):
        raise ValueError("give both seed and stds (from seeded_init), or neither")
    if seed is not None and adapter.reference() is not None:
        raise ValueError(f"{adapter.name} already stores values relative to its reference weights; "
                         "seeded residuals apply to adapters without one")
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    names = adapter.tensor_names(model)
    theta0: dict[str, torch.Tensor] = {}
    work = model
    if seed is not None and stds is not None:
        sd = model.state_dict()
        theta0 = {k: seeded_tensor(seed, i, stds[k], tuple(sd[k].shape)).to(dev) for i, k in enumerate(names)}
        work = copy.deepcopy(model)
        work.load_state_dict({**sd, **{k: sd[k] - theta0[k] for k in names}}, strict=True)
    setup = adapter.prepare_compression(work, sinr)
    ref = setup.reference
    coded = {k: _Coded(setup.trainable[k], setup.codes.get(k), options.init_bits) for k in names}

    def forward(x: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        full = {}
        for k in names:
            t = tensors[k]
            if ref is not None:
                t = t + ref[k]
            if k in theta0:
                t = t + theta0[k]
            full[k] = t
        return torch.func.functional_call(model, full, (x,))

    sig = signal.to(dev)
    pixels = int(np.prod(signal.shape[:-1]))
    mean_fisher: dict[str, float] = {}
    if options.step_init != "max":
        mean_fisher = _init_steps(coded, options, pixels,
                                  lambda vs: forward(sig.coords, {k: v if c.code is None else c.code.reconstruct(v)
                                                                  for (k, c), v in zip(coded.items(), vs,
                                                                                       strict=True)}))
    groups = [{"params": [c.values for k, c in coded.items() if k not in setup.codes], "lr": options.lr},
              {"params": [c.values for k, c in coded.items() if k in setup.codes], "lr": options.sinr_lr},
              {"params": [p for c in coded.values() for p in (c.log_step, c.log_scale)], "lr": options.step_lr}]
    refine = options.refine_every > 0 and bool(setup.codes)
    shadow: dict[str, torch.Tensor] = {}
    if refine:  # dense weights trained through the sparse projection (straight-through), re-projected by OMP
        for k in setup.codes:
            dense = setup.state[k] - ref[k] if ref is not None else setup.state[k]
            shadow[k] = dense.detach().clone().requires_grad_(True)
        groups.append({"params": list(shadow.values()), "lr": options.lr})
    opt = torch.optim.Adam([g for g in groups if g["params"]])
    Snapshot = dict[str, tuple[torch.Tensor, torch.Tensor, Any]]
    best: tuple[float, Snapshot] | None = None
    refined = {"tried": 0, "accepted": 0}

    def snapshot() -> Snapshot:
        return {k: (c.values.detach().clone(), c.log_step.detach().clone(), c.code) for k, c in coded.items()}

    def objective() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        qs = {k: c.integers() for k, c in coded.items()}
        tensors = {k: c.tensor(qs[k]) for k, c in coded.items()}
        for k in shadow:
            if tensors[k].requires_grad:
                tensors[k].retain_grad()
        out = forward(sig.coords, tensors)
        mse = torch.mean((out - sig.values) ** 2)
        bits = sum(c.bits(qs[k]) for k, c in coded.items())
        return mse + options.lam * bits / pixels, tensors

    for it in range(options.steps + 1):
        loss, tensors = objective()
        if refine and setup.sinr is not None and it and it % options.refine_every == 0:
            loss = _refine(adapter, coded, shadow, setup.sinr, objective, loss, opt, refined,
                           always=options.refine_accept == "always")
            loss, tensors = objective()
        if best is None or float(loss.detach()) < best[0]:  # the forward pass is the decoder's: keep the best step
            best = (float(loss.detach()), snapshot())
        if it == options.steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for k, sh in shadow.items():
            sh.grad = tensors[k].grad
        opt.step()
    assert best is not None  # step 0 is always measured
    with torch.no_grad():
        for k, (v, ls, code) in best[1].items():
            coded[k].set_code(code, v)
            coded[k].log_step.copy_(ls)
        # refit the rate-model scales to the final integers is not needed: the coder uses its own table
        qs = {k: c.integers().detach() for k, c in coded.items()}
        steps = {k: float(np.float32(c.step().item())) for k, c in coded.items()}
        est_bits = float(sum(c.bits(qs[k]) for k, c in coded.items()))
        tensors = {k: c.tensor(qs[k]) for k, c in coded.items()}
        out = adapter.values_to_unit(forward(sig.coords, tensors))
        psnr_ft = metrics.psnr_8bit(out, adapter.values_to_unit(sig.values))

    records = {k: TensorRecord(q=qs[k].cpu().round().to(torch.int64).numpy(), step=steps[k], code=coded[k].code)
               for k in names}
    data, split = write(adapter, signal.shape, records, seed=seed, stds=stds)
    info = {"estimated_bits": est_bits, "actual_bits": split["value_bits_actual"], "psnr_finetuned": psnr_ft,
            "seconds": time.perf_counter() - t0, "omp_seconds": setup.omp_seconds, "lam": options.lam,
            "steps": {k: steps[k] for k in names}, "mean_fisher": mean_fisher, "support_refinements": refined, **split}
    return data, info


def _refine(adapter: INRAdapter, coded: dict[str, _Coded], shadow: dict[str, torch.Tensor], sinr: SINROptions,
            objective: Any, loss: torch.Tensor, opt: torch.optim.Optimizer, counts: dict[str, int], *,
            always: bool = False) -> torch.Tensor:
    """Support refinement: per SINR-coded tensor, OMP on its dense shadow weights; keep the new support and
    values when the loss (distortion + rate, current steps) drops. Returns the loss after."""
    current = float(loss.detach())
    for k, sh in shadow.items():
        c = coded[k]
        layout, block_size = adapter.sinr_layout(k, sinr)
        with torch.no_grad():
            new = SparseCode.fit(sh.detach(), sparsity=sinr.sparsity, dictionary_ratio=sinr.dictionary_ratio,
                                 seed=c.code.seed, layout=layout, block_size=block_size, device=sinr.device)
        if tuple(new.values.shape) != tuple(c.values.shape) or new.k2 != c.code.k2:
            continue
        counts["tried"] += 1
        old_code, old_values = c.code, c.values.detach().clone()
        dev = c.values.device
        c.set_code(replace_code(new, indices=new.indices.to(dev), values=new.values.to(dev)), new.values.to(dev))
        with torch.no_grad():
            trial = float(objective()[0].detach())
        if trial < current or always:
            counts["accepted"] += 1
            current = trial
            state = opt.state.get(c.values)
            if state:  # the moments belonged to the old support
                state["exp_avg"].zero_()
                state["exp_avg_sq"].zero_()
        else:
            c.set_code(old_code, old_values)
    return loss


def _init_steps(coded: dict[str, _Coded], options: RateAwareOptions, pixels: int, output: Any) -> dict[str, float]:
    """Set the steps from the mean diagonal Fisher of each tensor's values (``options.step_init``)."""
    fisher = diagonal_fisher(output, [c.values for c in coded.values()], probes=options.fisher_probes)
    mean = {}
    for (k, c), f in zip(coded.items(), fisher, strict=True):
        n = c.n_values()
        mean[k] = float((f if c.mask is None else f * c.mask).sum()) / max(n, 1)
    floor = max([m for m in mean.values() if m > 0], default=1.0) * 1e-12
    fbar = [max(m, floor) for m in mean.values()]
    if options.step_init == "fisher" and options.lam > 0:
        steps = high_rate_steps(fbar, options.lam, pixels)
    else:  # the ratios of the high-rate allocation at the level of init_bits (geometric mean, value-weighted)
        cs = list(coded.values())
        counts = [max(c.n_values(), 1) for c in cs]
        level = sum(ni * float(c.log_step.detach()) for ni, c in zip(counts, cs, strict=True)) / sum(counts)
        rel = [-0.5 * math.log(f) for f in fbar]
        shift = level - sum(ni * r for ni, r in zip(counts, rel, strict=True)) / sum(counts)
        steps = [math.exp(r + shift) for r in rel]
    for c, st in zip(coded.values(), steps, strict=True):
        c.set_step(st)
    return mean
