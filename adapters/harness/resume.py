"""Resuming and extending an evaluation: which points a folder already holds, and whether they still count.

``sinr evaluate`` saves its results after every measured point. A rerun with the same ``--out`` keeps the
points already measured (:func:`load_previous`) when the settings that decide a point's outcome are the
same: fitting and fine-tuning, sizes, seeds, SINR's dictionary and coders, every method option except
its rate knob, the held-out signals. What only decides *which* points are measured may differ, so a
finished run can be extended without ``--fresh``: methods, signals, each method's rate points, SINR's
sparsities and value bits, the baseline bits, rate weights and the paths run.

Examples
--------
>>> differences({"steps": 100, "sparsity": [0.25]}, {"steps": 100, "sparsity": [0.25, 0.5]})
[]
>>> differences({"steps": 100}, {"steps": 200})
['steps: 100 -> 200']
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..framework.results import Result
from .config import EvalConfig
from .plugins import method_spec

__all__ = ["POINT_SETTINGS", "differences", "load_previous", "result_key"]

POINT_SETTINGS = ("methods", "signals", "sparsity", "value_bits", "baseline_bits", "rate_aware", "with_sinr",
                  "without_sinr", "target_psnr", "threads")
"""Configuration fields that choose which points are measured (or how fast), not what a point measures."""


def result_key(r: Result) -> tuple[Any, ...]:
    """What identifies one measured point: method, signal, rate point, with/without SINR, SINR setting."""
    s = r.sinr or {}
    return (r.method, r.signal, r.rate_point, bool(r.with_sinr), s.get("sparsity"), s.get("value_bits"))


def _outcome_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without :data:`POINT_SETTINGS` and each method's rate knob, with the held-out signals that
    preparation trains on (those not evaluated)."""
    out = {k: v for k, v in config.items() if k not in POINT_SETTINGS}
    evaluated = set(config.get("signals") or ())
    out["held_out"] = [n for n in config.get("held_out") or () if n not in evaluated]
    options = {}
    for method, opts in (config.get("options") or {}).items():
        try:
            rate = method_spec(method)[1].rate
        except ValueError:
            rate = None
        options[method] = {k: v for k, v in opts.items() if k != rate}
    out["options"] = options
    return out


def _compare(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            where = f"{prefix}{k}"
            if k not in old or k not in new:
                out.append(f"{where}: {old.get(k, 'absent')!r} -> {new.get(k, 'absent')!r}")
            else:
                out += _compare(old[k], new[k], where + ".")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The settings in which two configurations (``EvalConfig.to_dict()``, as JSON) disagree on what a point
    measures, as ``"field: old -> new"`` lines; the options of a method only one of them runs are not
    compared."""
    a, b = _outcome_settings(old), _outcome_settings(new)
    both = set(a["options"]) & set(b["options"])
    a["options"] = {m: o for m, o in a["options"].items() if m in both}
    b["options"] = {m: o for m, o in b["options"].items() if m in both}
    return _compare(json.loads(json.dumps(a)), json.loads(json.dumps(b)))


def load_previous(out_dir: str | os.PathLike[str], config: EvalConfig) -> list[Result]:
    """The results an earlier run wrote to ``out_dir`` whose points still count under ``config`` (to resume
    or extend it: see the module docstring).

    Returns
    -------
    list of Result
        Empty when ``out_dir`` holds no ``results.json``.

    Raises
    ------
    ValueError
        ``results.json`` is unreadable, or was written with settings that change what a point measures (the
        message lists the differences); the caller decides whether to start afresh.
    """
    path = Path(out_dir) / "results.json"
    if not path.exists():
        return []
    fix = "pass --fresh to discard them, or choose another --out"
    try:
        doc = json.loads(path.read_text())
        cols = doc["results"]
        prev = doc["config"]
        rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)] if cols else []
        results = [Result.from_dict(row) for row in rows]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} cannot be resumed from ({type(exc).__name__}: {exc}); {fix}") from exc
    diff = differences(prev, json.loads(json.dumps(config.to_dict()))) if isinstance(prev, dict) else ["config"]
    if diff:
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise ValueError(f"{path} holds results of another configuration ({'; '.join(diff[:4])}{more}); {fix}")
    return results
