"""Auto-tuning: the smallest stream that reaches a target PSNR.

:func:`compress_to_target` searches SINR's operating points (sparsity, value bits, dictionary ratio) for
one fitted network and returns the smallest stream whose decoded image reaches ``target_psnr``; with
``sinr=False`` it searches the method's own storage bits instead (the fair baseline of the harness).
:func:`smallest_meeting` does the same selection over results the harness already measured
(``sinr evaluate --target-psnr``).

Every candidate is compressed for real (fine-tuning included) and decoded; its PSNR is the decoded 8-bit
image's, as everywhere in the harness. For a fixed value-bits and dictionary ratio, streams grow with the
sparsity, so the search stops raising the sparsity at the first one that meets the target.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..framework import metrics
from ..framework.inr import INRAdapter
from ..framework.results import Result
from ..framework.signals import Signal
from ..framework.sinr_options import SINROptions

__all__ = ["TuneResult", "compress_to_target", "smallest_meeting"]


@dataclass
class TuneResult:
    """What :func:`compress_to_target` found.

    Attributes
    ----------
    data : bytes or None
        The smallest stream meeting the target (``None`` if no candidate did).
    options : dict or None
        Its settings (``SINROptions.to_dict()`` with SINR, ``{"bits": b}`` without).
    psnr : float or None
        Its decoded PSNR (dB).
    tried : list of dict
        Every candidate: settings, ``bytes``, ``psnr``, ``meets``.
    """

    data: bytes | None
    options: dict[str, Any] | None
    psnr: float | None
    tried: list[dict[str, Any]] = field(default_factory=list)


def _measure(adapter: INRAdapter, data: bytes, signal: Signal) -> float:
    decoded = adapter.decode(data)
    return metrics.psnr_8bit(torch.from_numpy(decoded), signal.unit_values().cpu())


def compress_to_target(adapter: INRAdapter, model: torch.nn.Module, signal: Signal, *, target_psnr: float,
                       sinr: bool = True, sparsities: Sequence[int | float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
                       value_bits: Sequence[int] = (6, 8, 10), dictionary_ratios: Sequence[float] = (8.0,),
                       bits: Sequence[int] = (4, 6, 8, 10, 12, 16), finetune_steps: int = 0,
                       seed: int = 0, device: str = "auto", progress: bool | None = None,
                       **compress_kw: Any) -> TuneResult:
    """Compress ``model`` with the smallest stream whose decoded image reaches ``target_psnr`` (dB).

    Parameters
    ----------
    sinr : bool, default True
        Search SINR's ``sparsities`` × ``value_bits`` × ``dictionary_ratios``; ``False``: the method's own
        storage over ``bits`` (the storage-bits knob its description names: ``bits`` of COIN, INRIC,
        COIN++; SHACIRA's ``mlp_bits``).
    finetune_steps, compress_kw
        Passed to ``adapter.compress`` for every candidate (the same budget for each).

    Returns
    -------
    TuneResult
        ``data is None`` when nothing met the target (``tried`` says how close each came).
    """
    tried: list[dict[str, Any]] = []
    best: tuple[bytes, dict[str, Any], float] | None = None

    def attempt(coder: INRAdapter, opts: SINROptions | None, record: dict[str, Any]) -> bool:
        nonlocal best
        data = coder.compress(copy.deepcopy(model), signal, sinr=opts, finetune_steps=finetune_steps,
                              progress=progress, **compress_kw)
        psnr = _measure(coder, data, signal)
        meets = psnr >= target_psnr
        tried.append({**record, "bytes": len(data), "psnr": psnr, "meets": meets})
        if meets and (best is None or len(data) < len(best[0])):
            best = (data, record, psnr)
        return meets

    if sinr:
        for ratio in dictionary_ratios:
            for vb in value_bits:
                for s in sorted(sparsities):
                    opts = SINROptions(sparsity=s, value_bits=vb, dictionary_ratio=ratio, seed=seed, device=device)
                    if attempt(adapter, opts, opts.to_dict()):
                        break  # more atoms at these bits only cost more
    else:
        key = _bits_key(adapter)
        if key is None or (key not in adapter.config() and not hasattr(adapter, key)):
            raise ValueError(f"{type(adapter).__name__} has no 'bits' setting to search; use sinr=True")
        for b in sorted(bits):
            try:
                coder = adapter.with_config({**adapter.config(), key: b})
            except ValueError:  # outside this method's range (e.g. COIN++: 2..8)
                continue
            if attempt(coder, None, {key: b}):
                break  # more bits only cost more
    if best is None:
        return TuneResult(None, None, None, tried)
    return TuneResult(best[0], best[1], best[2], tried)


def _bits_key(adapter: Any) -> str | None:
    """The configuration key of the method's storage bits, as its description names it (``describe()``:
    COIN, INRIC, COIN++ ``bits``, SHACIRA ``mlp_bits``); ``bits`` for an adapter without a description."""
    from ..framework.spec import describe

    try:
        return describe(type(adapter)).bits
    except ValueError:
        return "bits"


def _describe(r: Result) -> str:
    point = r.rate_point
    if r.sinr:
        point += f", s={r.sinr.get('sparsity')}, {r.sinr.get('value_bits')}-bit values"
    return point


def smallest_meeting(results: Sequence[Result], target_psnr: float) -> list[dict[str, Any]]:
    """Per method and signal: the smallest measured stream reaching ``target_psnr``, with and without SINR,
    and the saving ``1 - bytes_with / bytes_without`` where both exist."""
    out = []
    keys = sorted({(r.method, r.signal) for r in results})
    for method, name in keys:
        row: dict[str, Any] = {"method": method, "signal": name, "target_psnr": target_psnr}
        for with_sinr in (False, True):
            ok = [r for r in results if r.method == method and r.signal == name and r.with_sinr == with_sinr
                  and r.psnr >= target_psnr]
            best = min(ok, key=lambda r: r.bytes) if ok else None
            tag = "sinr" if with_sinr else "plain"
            row[f"{tag}_bytes"] = None if best is None else best.bytes
            row[f"{tag}_bpp"] = None if best is None else best.bpp
            row[f"{tag}_point"] = None if best is None else _describe(best)
        both = row["plain_bytes"] is not None and row["sinr_bytes"] is not None
        row["saving"] = (1 - row["sinr_bytes"] / row["plain_bytes"]) if both else None
        out.append(row)
    return out
