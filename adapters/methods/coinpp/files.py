"""COIN++'s files: the base-network file (``.npz``, no pickle) and official COIN++ checkpoints.

- :func:`write_base_file` / :func:`read_base_file`: what :meth:`COINppAdapter.save_base
  <sinr_adapters.methods.coinpp.adapter.COINppAdapter.save_base>` writes: one float32 array per state_dict tensor of
  the base network and, under ``__config__``, JSON bytes ``{"format": BASE_FORMAT, "config", "inner_steps",
  "inner_lr", "quantizer", "meta"}``; read with ``allow_pickle=False``.
- :func:`read_checkpoint`: an official ``model.pt = {"args": argparse.Namespace, "state_dict"}``,
  read with ``torch.load(weights_only=True)``, only ``argparse.Namespace`` allowed (the adapter module's
  :func:`~sinr_adapters.methods.coinpp.adapter.load_coinpp_checkpoint` builds an adapter from it).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["BASE_FORMAT", "read_base_file", "read_checkpoint", "write_base_file"]

BASE_FORMAT = "sinr_adapters.coinpp.base/1"
"""The ``format`` of a base-network file (kept when the code moved: files written before still load)."""


def write_base_file(path: str | os.PathLike[str], state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write a base network (``state``, float32 tensors) and ``meta`` (JSON-safe; ``"format"`` is set to
    :data:`BASE_FORMAT`) to an ``.npz`` at ``path``."""
    arrays: dict[str, Any] = {k: v.numpy() for k, v in state.items()}
    meta = {"format": BASE_FORMAT, **meta}
    arrays["__config__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)


def read_base_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(state, meta)`` of an ``.npz`` (``allow_pickle=False``): float32 tensors, and the JSON under
    ``__config__`` (``None`` without one)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: torch.from_numpy(np.array(z[k], dtype=np.float32)) for k in z.files if k != "__config__"}
        meta = json.loads(bytes(z["__config__"].astype(np.uint8)).decode()) if "__config__" in z.files else None
    return state, meta


def _torch_load_coinpp(path: str | os.PathLike[str]) -> Any:
    """``torch.load(weights_only=True)`` allowing ``argparse.Namespace`` and nothing else."""
    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is not None:
        with safe([argparse.Namespace]):
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    torch.serialization.add_safe_globals([argparse.Namespace])  # pragma: no cover - torch < 2.5
    return torch.load(os.fspath(path), map_location="cpu", weights_only=True)  # pragma: no cover


def read_checkpoint(source: str | os.PathLike[str] | Mapping[str, Any]
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(args, state_dict)`` of an official COIN++ checkpoint, ``model.pt = {"args": argparse.Namespace,
    "state_dict": ...}``, read with ``torch.load(weights_only=True)`` allowing ``argparse.Namespace`` only (no
    code is unpickled); a DataParallel ``module.`` prefix is removed. ``source`` may also be the dict the
    file holds (``args`` a Namespace or a dict).

    Raises
    ------
    ValueError
        If it is not such a dict, or the state_dict does not map names to tensors.
    """
    ckpt = dict(source) if isinstance(source, Mapping) else _torch_load_coinpp(source)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise ValueError("not a COIN++ checkpoint: expected a dict with 'args' and 'state_dict' (coinpp main.py)")
    args = ckpt.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    sd = {k.removeprefix("module."): v for k, v in dict(ckpt["state_dict"]).items()}
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("the checkpoint's state_dict must map names to tensors")
    return args, sd
