"""A meta-learned initialisation ``theta0``: its ``.npz`` file and its training (Reptile or Meta-SGD).

Adapters that store ``theta - theta0`` (INRIC, NIC) keep ``theta0`` as a state_dict and share what they
do with it through :class:`MetaInitialised` (checking, loading, saving and reading it back); these
functions write it with the adapter's configuration (and, for Meta-SGD, its learned inner-loop learning
rates) to an ``.npz`` (no pickle), read it back, and learn it:

- :func:`reptile`: first-order meta-learning (Nichol et al. 2018); NIC's initialisation;
- :func:`meta_sgd`: MAML (Finn et al. 2017) with a learned learning rate per parameter and inner step
  (Meta-SGD, Li et al. 2017, with one rate per step as in MetaSDF), as INRIC's paper meta-learns;
  :func:`inner_loop` runs its inner loop, during meta-learning and again when a signal is fitted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self, cast

import numpy as np
import torch
from torch import nn

from ..framework import training
from ..framework.checkpoints import check_state_dict, map_state_dict

__all__ = ["MetaInitialised", "inner_loop", "meta_sgd", "read_init", "read_init_config", "read_lrs", "reptile",
           "save_init"]

CONFIG_KEY = "__config__"
"""The ``.npz`` entry holding the adapter's configuration (UTF-8 JSON as ``uint8``)."""

LR_PREFIX = "__lr__"
"""Prefix of the ``.npz`` entries holding Meta-SGD's learning rates: ``__lr__NAME``, shape
``(inner steps, *shape of NAME)``."""


def read_init(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of an ``.npz`` written by :func:`save_init`, as float32 (the configuration and the
    learning rates left out: every entry whose name starts with ``__``)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        return {k: torch.from_numpy(np.array(z[k], dtype=np.float32)) for k in z.files if not k.startswith("__")}


def read_lrs(path: str | os.PathLike[str]) -> dict[str, torch.Tensor] | None:
    """Meta-SGD's learning rates saved by :func:`save_init` (name -> ``(steps, *shape)`` float32), or
    ``None`` when the file has none."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        lrs = {k[len(LR_PREFIX):]: torch.from_numpy(np.array(z[k], dtype=np.float32))
               for k in z.files if k.startswith(LR_PREFIX)}
    return lrs or None


def save_init(path: str | os.PathLike[str], init: Mapping[str, torch.Tensor], config: Mapping[str, Any],
              lrs: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write the state_dict ``init``, the JSON-safe ``config`` and, if given, Meta-SGD's learning rates
    ``lrs`` (name -> ``(steps, *shape)``) to an ``.npz`` (no pickle)."""
    arrays: dict[str, Any] = {k: v.numpy() for k, v in init.items()}
    for k, v in (lrs or {}).items():
        arrays[LR_PREFIX + k] = v.detach().cpu().float().numpy()
    arrays[CONFIG_KEY] = np.frombuffer(json.dumps(config, sort_keys=True).encode(), dtype=np.uint8)
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)


def read_init_config(path: str | os.PathLike[str], writer: str) -> dict[str, Any]:
    """The configuration saved in an ``.npz`` by :func:`save_init`; ``writer`` names the saving method in
    the error raised when the file has none."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        if CONFIG_KEY not in z.files:
            raise ValueError(f"{path} has no '{CONFIG_KEY}' entry: not written by {writer}")
        return json.loads(bytes(z[CONFIG_KEY].astype(np.uint8)).decode())


def reptile(make_model: Callable[[], nn.Module], signals: Sequence[Any],
            loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, outer_steps: int, inner_steps: int,
            inner_lr: float, outer_lr: float, device: torch.device | str, seed: int, desc: str,
            progress: bool | None) -> dict[str, torch.Tensor]:
    """Learn ``theta0`` by Reptile and return it as a CPU state_dict.

    ``torch.manual_seed(seed)``, then ``make_model()`` builds ``theta0`` and a working copy on ``device``.
    Outer step ``i`` takes ``signals[i % len(signals)]`` (each with ``coords`` ``(N, d)`` and ``values``
    ``(N, c)`` on ``device``), runs ``inner_steps`` Adam steps (learning rate ``inner_lr``) of
    ``loss(model(coords), values)`` from ``theta0``, and moves ``theta0`` by ``outer_lr * (theta - theta0)``.
    """
    torch.manual_seed(seed)
    meta = make_model().to(device)
    work = make_model().to(device)
    bar = training.progress_bar(outer_steps, desc, progress)
    for step in range(outer_steps):
        sig = signals[step % len(signals)]
        work.load_state_dict(meta.state_dict())
        opt = torch.optim.Adam(work.parameters(), lr=inner_lr)
        for _ in range(inner_steps):
            opt.zero_grad(set_to_none=True)
            loss(work(sig.coords), sig.values).backward()
            opt.step()
        with torch.no_grad():
            for p_meta, p_work in zip(meta.parameters(), work.parameters(), strict=True):
                p_meta.add_(outer_lr * (p_work - p_meta))
        bar.update(1)
    bar.close()
    return {k: v.detach().cpu() for k, v in meta.state_dict().items()}


def inner_loop(model: nn.Module, params: Mapping[str, torch.Tensor], lrs: Mapping[str, torch.Tensor],
               coords: torch.Tensor, values: torch.Tensor,
               loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
               create_graph: bool = False) -> dict[str, torch.Tensor]:
    """Meta-SGD's inner loop: ``steps`` plain gradient steps with a learning rate per parameter and step.

    Step ``j`` sets ``p <- p - lrs[name][j] * grad`` for every parameter, the gradient of
    ``loss(model(coords), values)`` with the current parameters (through
    :func:`torch.func.functional_call`; ``model``'s own parameters are not used or changed).

    Parameters
    ----------
    model : nn.Module
        The network whose forward pass is called.
    params : mapping of str to torch.Tensor
        The starting parameters (named as ``model.named_parameters()``), ``requires_grad=True``.
    lrs : mapping of str to torch.Tensor
        ``(steps, *shape)`` learning rates per parameter.
    coords, values : torch.Tensor
        ``(N, d)`` inputs and ``(N, c)`` targets.
    loss : callable
        ``loss(prediction, target) -> scalar``.
    create_graph : bool, default False
        Keep the graph of each step (second-order MAML: the outer gradient flows through the inner
        gradients); ``False`` is the first-order approximation (and what fitting uses).

    Returns
    -------
    dict of str to torch.Tensor
        The adapted parameters.
    """
    steps = {int(v.shape[0]) for v in lrs.values()}
    if len(steps) != 1 or set(lrs) != set(params):
        raise ValueError("lrs must hold one (steps, *shape) tensor per parameter, all with the same steps")
    fast = dict(params)
    for j in range(steps.pop()):
        out = torch.func.functional_call(model, fast, (coords,))
        grads = torch.autograd.grad(loss(out, values), list(fast.values()), create_graph=create_graph)
        fast = {k: p - lrs[k][j] * g for (k, p), g in zip(fast.items(), grads, strict=True)}
    return fast


def meta_sgd(make_model: Callable[[], nn.Module], signals: Sequence[Any],
             loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, outer_steps: int, inner_steps: int,
             init_lr: float, outer_lr: float, first_order: bool, device: torch.device | str, seed: int, desc: str,
             progress: bool | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Learn ``theta0`` and per-parameter, per-step inner learning rates by MAML (Meta-SGD).

    ``torch.manual_seed(seed)``, then ``make_model()`` gives the starting ``theta0``; every learning rate
    starts at ``init_lr``. Outer step ``i`` takes ``signals[i % len(signals)]`` (``coords`` ``(N, d)``,
    ``values`` ``(N, c)`` on ``device``), adapts ``theta0`` to it by :func:`inner_loop`
    (``inner_steps`` steps), and takes one Adam step (learning rate ``outer_lr``) on ``theta0`` and the
    learning rates against ``loss`` of the adapted network on the same signal. With ``first_order`` the
    inner gradients are treated as constants (first-order MAML; the learning rates are still learned).

    Returns
    -------
    (theta0, lrs)
        ``theta0`` as a CPU state_dict; ``lrs`` name -> ``(inner_steps, *shape)`` CPU tensor.
    """
    if inner_steps < 1:
        raise ValueError("Meta-SGD needs inner_steps >= 1")
    torch.manual_seed(seed)
    model = make_model().to(device)
    theta = {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters()}
    lrs = {k: torch.full((inner_steps, *p.shape), float(init_lr), device=device, requires_grad=True)
           for k, p in theta.items()}
    opt = torch.optim.Adam([*theta.values(), *lrs.values()], lr=outer_lr)
    bar = training.progress_bar(outer_steps, desc, progress)
    for step in range(outer_steps):
        sig = signals[step % len(signals)]
        fast = inner_loop(model, theta, lrs, sig.coords, sig.values, loss, create_graph=not first_order)
        outer = loss(torch.func.functional_call(model, fast, (sig.coords,)), sig.values)
        opt.zero_grad(set_to_none=True)
        outer.backward()
        opt.step()
        bar.update(1)
    bar.close()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state.update({k: v.detach().cpu() for k, v in theta.items()})
    return state, {k: v.detach().cpu() for k, v in lrs.items()}


class _Configured(Protocol):
    _init: dict[str, torch.Tensor] | None
    _lrs: dict[str, torch.Tensor] | None

    def config(self) -> dict[str, Any]: ...


class MetaInitialised:
    """What an adapter whose stored values are ``theta - theta0`` does with its meta-learned ``theta0``.

    Mixed in before :class:`~sinr_adapters.framework.inr.INRAdapter` (INRIC, NIC); the adapter defines
    :meth:`bare_model` (a network of its architecture, ``theta0`` not loaded) and its ``config()``, and its
    constructor takes ``init`` (a state_dict or a file of :meth:`save_init`). ``theta0`` is the adapter's
    reference (streams hold its fingerprint) and the start of every fit.
    """

    _init: dict[str, torch.Tensor] | None = None
    _lrs: dict[str, torch.Tensor] | None = None

    def bare_model(self) -> nn.Module:
        """A freshly initialised network of this adapter's architecture (``theta0`` not loaded)."""
        raise NotImplementedError

    def load_init(self, init: Mapping[str, torch.Tensor] | str | os.PathLike[str]) -> dict[str, torch.Tensor]:
        """``init`` (a state_dict, or the ``.npz`` of :meth:`save_init`) as CPU float32 tensors, refused
        (``ValueError``) unless it holds exactly the tensors of :meth:`bare_model`; a network of another shape
        is refused before one of this architecture is allocated."""
        sd = read_init(init) if not isinstance(init, Mapping) else dict(init)
        what = f"{type(self).__name__} initialisation"
        with torch.device("meta"):
            check_state_dict(self.bare_model().state_dict(), sd, strict=True, what=what)
        model = self.bare_model()
        map_state_dict(model, sd, strict=True, what=what)
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}

    def build_model(self) -> nn.Module:
        """:meth:`bare_model` starting at ``theta0`` (when there is one)."""
        model = self.bare_model()
        if self._init is not None:
            model.load_state_dict(self._init, strict=True)
        return model

    def reference(self) -> dict[str, torch.Tensor] | None:
        """``theta0``: what the stored values are relative to."""
        return self._init

    @property
    def init(self) -> dict[str, torch.Tensor] | None:
        """``theta0`` (a copy), or ``None``."""
        return None if self._init is None else {k: v.clone() for k, v in self._init.items()}

    def save_init(self: _Configured, path: str | os.PathLike[str]) -> None:
        """Write ``theta0``, the configuration and any learned inner-loop rates to an ``.npz`` (no pickle)."""
        if self._init is None:
            raise ValueError("this adapter has no meta-learned initialisation to save")
        save_init(path, self._init, self.config(), self._lrs)

    @classmethod
    def from_init_file(cls, path: str | os.PathLike[str]) -> Self:
        """The adapter (configuration and ``theta0``) saved by :meth:`save_init`."""
        config = read_init_config(path, f"{cls.__name__}.save_init")
        return cast(Self, cast(Any, cls)(**config, init=path))

    @classmethod
    def from_shared_file(cls, path: str | os.PathLike[str]) -> Self:
        """:meth:`from_init_file` (the file the harness's preparation saves)."""
        return cls.from_init_file(path)
