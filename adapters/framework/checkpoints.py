"""Reading the methods' own checkpoints: plain state_dicts, mapped onto our networks key by key.

Files are read with ``torch.load(weights_only=True)``: tensors only, no code unpickled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["LoadReport", "check_state_dict", "map_state_dict", "read_state_dict"]


@dataclass
class LoadReport:
    """How a checkpoint's keys were mapped onto the model (safetensors-style)."""

    mapped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def read_state_dict(source: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state_dict from a file (``torch.load(weights_only=True)``: tensors only, no code unpickled) or
    a mapping; a ``{"state_dict": ...}`` wrapper and a DataParallel ``module.`` prefix are unwrapped."""
    if isinstance(source, Mapping):
        sd = dict(source)
    else:
        sd = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
        if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
            sd = dict(sd["state_dict"])
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("a checkpoint must be a state_dict: a mapping of names to tensors")
    # models saved from nn.DataParallel carry a "module." prefix
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def map_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], *, strict: bool, what: str,
                   rename: Mapping[str, str] | None = None) -> LoadReport:
    """Copy ``sd`` into ``model`` key by key (``rename`` maps checkpoint keys to model keys); shapes must
    agree; with ``strict`` every model key must be filled and every checkpoint key used."""
    own = model.state_dict()
    report = check_state_dict(own, sd, strict=strict, what=what, rename=rename)
    loaded = {target: sd[key].detach().to(torch.float32) for key, target in report.mapped.items()}
    model.load_state_dict({**{k: v for k, v in own.items()}, **loaded}, strict=True)
    return report


def check_state_dict(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], *, strict: bool, what: str,
                     rename: Mapping[str, str] | None = None) -> LoadReport:
    """The checks of :func:`map_state_dict` without loading anything: ``own`` may be the state_dict of a
    model built on the ``meta`` device, so a checkpoint that does not fit a configuration is refused
    before a network of that configuration is allocated.

    Raises
    ------
    ValueError
        For a tensor of another shape, or (``strict``) a missing or unexpected key.
    """
    report = LoadReport()
    for key, value in sd.items():
        target = rename.get(key, key) if rename else key
        if target not in own:
            report.unexpected.append(key)
            continue
        if tuple(own[target].shape) != tuple(value.shape):
            raise ValueError(f"{what} checkpoint tensor {key!r} has shape {tuple(value.shape)}, the model "
                             f"expects {tuple(own[target].shape)}: the checkpoint's layers are inconsistent")
        report.mapped[key] = target
    filled = set(report.mapped.values())
    report.missing = [k for k in own if k not in filled]
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"{what} checkpoint does not match the model: missing {report.missing}, unexpected "
                         f"{report.unexpected}; pass strict=False to load the rest")
    return report
