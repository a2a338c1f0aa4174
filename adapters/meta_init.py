"""A meta-learned initialisation ``theta0``: its ``.npz`` file and its Reptile training.

Adapters that store ``theta - theta0`` (INRIC, NIC) keep ``theta0`` as a state_dict; these functions
write it with the adapter's configuration to an ``.npz`` (no pickle), read it back, and learn it by
Reptile (first-order meta-learning).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import nets

__all__ = ["read_init", "read_init_config", "reptile", "save_init"]

CONFIG_KEY = "__config__"
"""The ``.npz`` entry holding the adapter's configuration (UTF-8 JSON as ``uint8``)."""


def read_init(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an ``.npz`` written by :func:`save_init`, as float32 (the configuration left out)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        return {k: torch.from_numpy(np.array(z[k], dtype=np.float32)) for k in z.files if k != CONFIG_KEY}


def save_init(path: str | os.PathLike, init: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> None:
    """Write the state_dict ``init`` and the JSON-safe ``config`` to an ``.npz`` (no pickle)."""
    arrays = {k: v.numpy() for k, v in init.items()}
    arrays[CONFIG_KEY] = np.frombuffer(json.dumps(config, sort_keys=True).encode(), dtype=np.uint8)
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)


def read_init_config(path: str | os.PathLike, writer: str) -> dict[str, Any]:
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
    from tqdm.auto import tqdm

    bar = tqdm(range(outer_steps), desc=desc, leave=False, file=sys.stderr,
               disable=not nets.progress_enabled(progress))
    for step in bar:
        sig = signals[step % len(signals)]
        work.load_state_dict(meta.state_dict())
        opt = torch.optim.Adam(work.parameters(), lr=inner_lr)
        for _ in range(inner_steps):
            opt.zero_grad(set_to_none=True)
            loss(work(sig.coords), sig.values).backward()
            opt.step()
        with torch.no_grad():
            for p_meta, p_work in zip(meta.parameters(), work.parameters()):
                p_meta.add_(outer_lr * (p_work - p_meta))
    bar.close()
    return {k: v.detach().cpu() for k, v in meta.state_dict().items()}
