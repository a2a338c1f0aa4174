"""COIN++'s files: the base-network file (``.npz``, no pickle) and official COIN++ checkpoints.

- :func:`write_base_file` / :func:`read_base_file`: what :meth:`COINppAdapter.save_base
  <sinr_adapters.methods.coinpp.adapter.COINppAdapter.save_base>` writes: one float32 array per state_dict tensor of
  the base network and, under ``__config__``, JSON bytes ``{"format": BASE_FORMAT, "config", "inner_steps",
  "inner_lr", "quantizer", "meta"}``; read with ``allow_pickle=False``.
- :func:`load_coinpp_checkpoint`: an official ``model.pt = {"args": argparse.Namespace, "state_dict"}``,
  read with ``torch.load(weights_only=True)``, only ``argparse.Namespace`` allowed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sinr_adapters.framework.checkpoints import LoadReport, map_state_dict

if TYPE_CHECKING:
    from .adapter import COINppAdapter

__all__ = ["BASE_FORMAT", "load_coinpp_checkpoint", "read_base_file", "write_base_file"]

BASE_FORMAT = "sinr_adapters.methods.coinpp.adapter.base/1"
"""The ``format`` of a base-network file (kept when the code moved: files written before still load)."""


def write_base_file(path: str | os.PathLike, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write a base network (``state``, float32 tensors) and ``meta`` (JSON-safe; ``"format"`` is set to
    :data:`BASE_FORMAT`) to an ``.npz`` at ``path``."""
    arrays = {k: v.numpy() for k, v in state.items()}
    meta = {"format": BASE_FORMAT, **meta}
    arrays["__config__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)


def read_base_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(state, meta)`` of an ``.npz`` (``allow_pickle=False``): float32 tensors, and the JSON under
    ``__config__`` (``None`` without one)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: torch.from_numpy(np.array(z[k], dtype=np.float32)) for k in z.files if k != "__config__"}
        meta = json.loads(bytes(z["__config__"].astype(np.uint8)).decode()) if "__config__" in z.files else None
    return state, meta


def _torch_load_coinpp(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` allowing ``argparse.Namespace`` and nothing else."""
    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is not None:
        with safe([argparse.Namespace]):
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    torch.serialization.add_safe_globals([argparse.Namespace])  # pragma: no cover - torch < 2.5
    return torch.load(os.fspath(path), map_location="cpu", weights_only=True)  # pragma: no cover


def load_coinpp_checkpoint(source: str | os.PathLike | Mapping[str, Any], *, patch: int | Sequence[int] | None = None,
                           bits: int = 5, std_range: float = 3.0, quantizer: Sequence[float] | None = None,
                           strict: bool = True) -> tuple[COINppAdapter, LoadReport]:
    """Load an official COIN++ checkpoint: ``model.pt = {"args": argparse.Namespace, "state_dict": ...}``.

    The file is read with ``torch.load(weights_only=True)``, allowing ``argparse.Namespace`` only (no code
    is unpickled). Width, layers, ``w0``, latent size, patch shape and the inner loop come from ``args``
    (``w0_initial = w0`` as COIN++ builds its model); input and output dims from the tensor shapes.
    Only what COIN++ uses for its results is supported: shift modulations (``modulate_scale=0``,
    ``modulate_shift=1``) from a latent by a linear map (``use_latent=1``, ``modulation_net_num_layers=1``).
    COIN++ does not store the quantizer's statistics: pass ``quantizer=(mean, std)`` or call
    ``adapter.calibrate(images)`` before compressing.

    Parameters
    ----------
    source : path or mapping
        The ``model.pt`` file, or the dict it holds (``args`` may be a Namespace or a dict).
    patch : int, pair or None
        Patch size when ``args.patch_shape`` is ``[-1]`` (no patching) or missing.
    strict : bool, default True
        Raise when a key is missing or unexpected (else see the report).

    Returns
    -------
    (COINppAdapter, LoadReport)
    """
    from .adapter import COINppAdapter  # the adapter module imports this one

    ckpt = dict(source) if isinstance(source, Mapping) else _torch_load_coinpp(source)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise ValueError("not a COIN++ checkpoint: expected a dict with 'args' and 'state_dict' (coinpp main.py)")
    args = ckpt.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    sd = {k.removeprefix("module."): v for k, v in dict(ckpt["state_dict"]).items()}
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("the checkpoint's state_dict must map names to tensors")
    for key, want in (("modulate_scale", 0), ("modulate_shift", 1), ("use_latent", 1), ("modulation_net_num_layers", 1)):
        if key in args and int(args[key]) != want:
            raise ValueError(f"unsupported COIN++ model: {key}={args[key]} (this adapter implements {key}={want}: "
                             "shift modulations from a latent by one linear map, COIN++'s published setting)")
    if "net.0.linear.weight" not in sd or "modulation_net.net.weight" not in sd or "last_layer.linear.weight" not in sd:
        raise ValueError("not a COIN++ ModulatedSiren state_dict: expected keys 'net.0.linear.weight', "
                         "'last_layer.linear.weight' and 'modulation_net.net.weight'")
    width, dim_in = sd["net.0.linear.weight"].shape
    if dim_in != 2:
        raise ValueError(f"this adapter handles images (2-D coordinates); the checkpoint takes {dim_in}-D inputs")
    n_sine = 0
    while f"net.{n_sine}.linear.weight" in sd:
        n_sine += 1
    latent_dim = sd["modulation_net.net.weight"].shape[1]
    dim_out = sd["last_layer.linear.weight"].shape[0]
    layers = int(args.get("num_layers", n_sine + 1))
    if layers != n_sine + 1 or int(args.get("dim_hidden", width)) != width or int(args.get("latent_dim", latent_dim)) != latent_dim:
        raise ValueError(f"the checkpoint's args (num_layers={args.get('num_layers')}, dim_hidden={args.get('dim_hidden')}, "
                         f"latent_dim={args.get('latent_dim')}) disagree with its tensors ({n_sine + 1} layers, width "
                         f"{width}, latent {latent_dim})")
    shape = list(args.get("patch_shape") or [-1])
    if patch is None:
        if shape == [-1] or len(shape) != 2:
            raise ValueError("the checkpoint was trained without 2-D patches (patch_shape=[-1]): pass patch=")
        patch = shape
    w0 = float(args.get("w0", 30.0))
    inner = args.get("inner_steps", 3)
    adapter = COINppAdapter(width=width, layers=layers, latent_dim=latent_dim, w0=w0, w0_initial=w0, dim_out=dim_out,
                            patch=patch, bits=bits, std_range=std_range, inner_steps=int(inner),
                            inner_lr=float(args.get("inner_lr", 1e-2)), quantizer=quantizer)
    net = adapter._fresh_base()
    report = map_state_dict(net, sd, strict=strict, what="COIN++")
    adapter._base = {k: v.detach().to("cpu", torch.float32).clone() for k, v in net.state_dict().items()}
    adapter.meta_info = {"source": "official COIN++ checkpoint", "args": {k: v for k, v in args.items()
                                                                        if isinstance(v, (int, float, str, bool, list))}}
    return adapter, report
