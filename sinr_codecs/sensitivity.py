"""How much a network's outputs move per unit of noise in each of its tensors, from calibration inputs.

Quantization adds noise ``d`` to a weight tensor ``w``; to first order the outputs move by ``J d``, ``J``
the Jacobian of the outputs with respect to ``w``. For noise of the same variance everywhere, the expected
squared change of the outputs is proportional to ``sum(J**2)``: the tensor's *sensitivity* (the diagonal
of the Gauss-Newton matrix, as in Hessian-aware quantization). :func:`estimate` measures it per parameter
tensor on calibration inputs, with random-sign probes (``E[(u^T J)**2] = sum(J**2)`` for ``u`` of random
signs), each output normalised by its mean square so that no output dominates by its units.
:func:`sinr_codecs.allocation.steps` then gives sensitive tensors finer steps.

Sensitivities are plain numbers per tensor name: :func:`save` writes them as JSON and :func:`load` reads
them back (``sinr compress --sensitivities FILE``).

Examples
--------
>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
>>> sens = estimate(net, [torch.randn(32, 8)], probes=4)
>>> sorted(sens), all(v > 0 for v in sens.values())
(['0.bias', '0.weight', '2.bias', '2.weight'], True)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["estimate", "save", "load"]


def _heads(out: Any) -> list[Any]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [v for v in out.values() if isinstance(v, torch.Tensor)]
    if isinstance(out, Sequence):
        return [v for v in out if isinstance(v, torch.Tensor)]
    raise TypeError(f"the model returned {type(out).__name__}; give `outputs` to pick its output tensors")


def estimate(model: Any, inputs: Iterable[Any], *, outputs: Callable[[Any], Sequence[Any]] | None = None,
             probes: int = 8, seed: int = 0) -> dict[str, float]:
    """Each parameter tensor's mean sensitivity on calibration inputs.

    Parameters
    ----------
    model : torch.nn.Module
        The network, in the state it will be used in (``eval()`` for batch norm). Its parameters' gradients
        are overwritten.
    inputs : iterable
        Calibration batches, each passed to ``model`` as is (a tuple is unpacked into arguments). A few
        hundred samples in all are usually enough; they should look like the inputs the network will see.
    outputs : callable, optional
        Picks the output tensors that matter from what ``model`` returns (default: every tensor of the
        returned tensor, tuple, list or dict). Give it to weigh the outputs of one task.
    probes : int, default 8
        Random-sign probes per batch: more probes, less noise.
    seed : int, default 0
        Seed of the probes.

    Returns
    -------
    dict
        ``{parameter name: mean over its values of E[sum_o (d out_o / d w)**2 / ms_o]}``, positive floats
        (``ms_o`` the mean square of output ``o`` over the inputs). Names are ``model.named_parameters()``'s,
        the state_dict's names for parameters; buffers (batch norm statistics) get none.

    Raises
    ------
    ValueError
        No inputs, or ``probes < 1``.
    """
    import torch

    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ValueError(f"probes must be an integer >= 1, got {probes!r}")
    pick = outputs or _heads
    batches = list(inputs)
    if not batches:
        raise ValueError("estimating sensitivities needs at least one calibration batch")

    def run(b: Any) -> list[Any]:
        return list(pick(model(*b) if isinstance(b, tuple) else model(b)))

    with torch.no_grad():
        first = [run(b) for b in batches]
    n_heads = len(first[0])
    sizes = [sum(int(o[h].numel()) for o in first) for h in range(n_heads)]
    ms = [max(sum(float(o[h].double().pow(2).sum()) for o in first) / max(sizes[h], 1), 1e-30)
          for h in range(n_heads)]
    norm = [1.0 / math.sqrt(ms[h] * sizes[h]) for h in range(n_heads)]
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    acc = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in params.items()}
    gen = torch.Generator().manual_seed(seed)
    for b in batches:
        for _ in range(probes):
            model.zero_grad(set_to_none=True)
            loss = torch.zeros((), dtype=torch.float64)
            for h, o in enumerate(run(b)):
                u = torch.randint(0, 2, o.shape, generator=gen).to(o.dtype) * 2 - 1
                loss = loss + (u * o).sum() * norm[h]
            loss.backward()
            for k, p in params.items():
                if p.grad is not None:
                    acc[k] += p.grad.detach().double() ** 2
    model.zero_grad(set_to_none=True)
    count = probes  # each probe estimates the sum over the batches
    return {k: max(float(v.mean()) / count, 1e-300) for k, v in acc.items()}


def save(sensitivities: Mapping[str, float], path: str | os.PathLike[str]) -> None:
    """Write ``{tensor name: sensitivity}`` to a JSON file."""
    data = {str(k): float(v) for k, v in sensitivities.items()}
    Path(path).write_text(json.dumps({"format": "sinr-sensitivities", "version": 1, "tensors": data}, indent=1))


def load(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read a file written by :func:`save`.

    Raises
    ------
    ValueError
        Not such a file, or a sensitivity that is not a positive finite number.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read sensitivities from {path}: {exc}") from None
    if (not isinstance(doc, dict) or doc.get("format") != "sinr-sensitivities"
            or not isinstance(doc.get("tensors"), dict)):
        raise ValueError(f"{path} is not a sensitivities file (write one with sinr_codecs.sensitivity.save)")
    out = {}
    for k, v in doc["tensors"].items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{path}: the sensitivity of {k!r} must be a positive finite number, got {v!r}")
        out[str(k)] = float(v)
    return out
