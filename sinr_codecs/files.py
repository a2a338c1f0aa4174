"""``save_file`` / ``load_file`` / ``safe_open``: the tensor-dict API of safetensors, over compressed stores.

A store written by :func:`save_file` is the same Zarr group ``sinr compress`` writes (a folder, or a
``.zip``): ``sinr info`` describes it, ``sinr decompress`` restores it to any model file format, and
:func:`safe_open` reads one tensor without decoding the others.

Examples
--------
>>> import numpy as np, tempfile, os, torch
>>> from sinr_codecs import save_file, load_file
>>> w = {"fc.weight": torch.randn(256, 128, generator=torch.Generator().manual_seed(0)), "fc.bias": torch.zeros(256)}
>>> path = os.path.join(tempfile.mkdtemp(), "model.zip")
>>> report = save_file(w, path, max_rel_error=0.01)
>>> back = load_file(path)
>>> back["fc.weight"].dtype, float((back["fc.weight"] - w["fc.weight"]).norm() / w["fc.weight"].norm()) < 0.011
(torch.float32, True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import WeightsError
from sinr_codecs.model_files import ModelSource, _Tensor, constant
from sinr_codecs.report import Report
from sinr_codecs.store import StoreReader

__all__ = ["save_file", "load_file", "safe_open"]


def save_file(tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None,
              *, max_rel_error: float | None = None, lossy: str = "global", step: float | None = None,
              sensitivities: Mapping[str, float] | None = None, overwrite: bool = False,
              progress: bool = False, **options: Any) -> Report:
    """Compress a dict of tensors into a store at ``path`` (a folder, or a ``.zip``).

    Parameters
    ----------
    tensors : mapping
        ``{name: torch.Tensor or numpy.ndarray}`` (any dtype; floating-point tensors are coded lossily).
    path : path
        The store to create.
    metadata : mapping, optional
        String metadata kept with the store (restored into a ``.safetensors`` file's header).
    max_rel_error, lossy, step, sensitivities
        As :func:`sinr_codecs.weights.compress_weights` (``max_rel_error`` defaults to 0.02).
    overwrite : bool, default False
        Replace a store that sinr-codecs wrote at ``path``.
    progress : bool, default False
        Show progress bars.
    **options
        SINR options for ``lossy="sinr"`` or ``"best"`` (e.g. ``sparsity=0.25``).

    Returns
    -------
    Report
    """
    import torch

    from sinr_codecs.weights import _compress

    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("metadata must map strings to strings")
    entries = []
    kinds = set()
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, got {name!r}")
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            entries.append(_Tensor(name, str(t.dtype).removeprefix("torch."), tuple(t.shape), constant(t)))
            kinds.add("torch")
        elif isinstance(value, np.ndarray):
            if value.dtype.kind not in "biufc":
                raise TypeError(f"tensor {name!r} has dtype {value.dtype}: numeric arrays only")
            a = np.ascontiguousarray(value)
            entries.append(_Tensor(name, a.dtype.str if a.dtype.byteorder == ">" else a.dtype.name, a.shape,
                                   constant(a)))
            kinds.add("npz")
        else:
            raise TypeError(f"tensor {name!r} is a {type(value).__name__}: give torch tensors or numpy arrays")
    fmt = "torch" if kinds != {"npz"} else "npz"
    source = ModelSource(Path(path).with_suffix(".safetensors"), fmt, entries,
                         dict(metadata) if metadata else None)
    config = dict(options)
    if max_rel_error is not None:
        config["max_rel_error"] = max_rel_error
    dst = Path(path)
    return _compress(source, dst, codec_config=config, policy_overrides=None, device=options.pop("device", "auto"),
                     progress=progress, overwrite=overwrite, lossy=lossy, step=step, sensitivities=sensitivities,
                     scheduler=None)


def load_file(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, Any]:
    """Every tensor of a store, as ``{name: torch.Tensor}`` with the original dtypes and shapes.

    Raises
    ------
    FileNotFoundError, WeightsError
        A missing, truncated or damaged store.
    """
    with StoreReader(path, framework="pt", device=device) as f:
        return dict(f.tensors())


def safe_open(path: str | os.PathLike[str], framework: str = "pt", device: str = "cpu") -> StoreReader:
    """Open a store for lazy reading: ``keys()``, ``get_tensor(name)`` (decodes that tensor alone),
    ``metadata()``; use it as a context manager, as ``safetensors.safe_open``.

    Raises
    ------
    FileNotFoundError, WeightsError
        A missing or damaged store.
    """
    try:
        return StoreReader(path, framework=framework, device=device)
    except WeightsError:
        raise
