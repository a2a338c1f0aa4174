"""BD-rates between the curves of ``sinr evaluate`` runs: the method as published, its bit search, the
rate-aware paths and SINR, per signal, each curve pooled over the method's rate points (widths, latent
lengths).

Usage::

    python benchmarks/evaluate_bd.py RUN/results.json [RUN2/results.json ...] [--published-bits 8]

The curves of one method ``M`` (labels as ``sinr evaluate`` writes them):

- ``published``: ``M`` at ``--published-bits`` (the method's own storage bits: INRIC 8, COIN++ 5);
- ``bit search``: ``M`` at every ``--baseline-bits`` value;
- ``rate-aware``, ``rate-aware+SINR``, ``+SINR`` (``M+sinr``, the method's storage after SINR);
- ``best rate-aware``: ``rate-aware`` and ``rate-aware+SINR`` pooled;
- ``bit search | rate-aware``: the fair baseline, the bit search and ``rate-aware`` pooled.

Anchors are reduced to their upper convex hull in log-rate, tests to their Pareto front
(:func:`sinr_adapters.harness.rd.bd_rate`). Prints JSON: per signal the points of every curve and the BD-rates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sinr_adapters.harness import rd

COMPARISONS = (
    ("rate-aware+SINR", "bit search | rate-aware"),
    ("rate-aware+SINR", "rate-aware"),
    ("rate-aware+SINR", "bit search"),
    ("rate-aware", "bit search"),
    ("+SINR", "bit search"),
    ("best rate-aware", "published"),
    ("rate-aware", "published"),
    ("bit search", "published"),
)
"""(test, anchor) pairs reported."""


def load_points(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Every measured point of the runs: label, signal, rate point, bits, rate, quality."""
    out = []
    for path in paths:
        with open(path) as f:
            cols = json.load(f)["results"]
        for i in range(len(cols["label"])):
            point = cols["extra"][i].get("point", "")
            bits = cols["config"][i].get("bits")
            out.append({"method": cols["method"][i], "label": cols["label"][i], "signal": cols["signal"][i],
                        "point": point, "bits": bits, "bpp": cols["bpp"][i], "psnr": cols["psnr"][i]})
    return out


def curves(points: Sequence[dict[str, Any]], method: str, image: str, published_bits: int) -> dict[str, list]:
    """The named curves of ``method`` on ``image`` (see the module docstring)."""
    mine = [p for p in points if p["method"] == method and p["signal"] == image]

    def of(label: str, cond=lambda p: True) -> list[tuple[float, float]]:
        return [(p["bpp"], p["psnr"]) for p in mine if p["label"] == label and cond(p)]

    searched = of(method, lambda p: ",bits=" in p["point"])
    out = {"published": of(method, lambda p: p["bits"] == published_bits and ",lam=" not in p["point"]),
           "bit search": searched, "rate-aware": of(f"{method} rate-aware"),
           "rate-aware+SINR": of(f"{method} rate-aware+SINR"), "+SINR": of(f"{method}+sinr")}
    out["best rate-aware"] = out["rate-aware"] + out["rate-aware+SINR"]
    out["bit search | rate-aware"] = searched + out["rate-aware"]
    return out


def report(points: Sequence[dict[str, Any]], published_bits: int) -> dict[str, Any]:
    """Per method and signal: the curves' points and the BD-rates of :data:`COMPARISONS` (percent; None:
    no quality overlap)."""
    out: dict[str, Any] = {}
    for method in sorted({p["method"] for p in points}):
        for image in sorted({p["signal"] for p in points if p["method"] == method}):
            c = curves(points, method, image, published_bits)
            bd = {}
            for test, anchor in COMPARISONS:
                v = rd.bd_rate(c[anchor], c[test]) if c[anchor] and c[test] else None
                bd[f"{test} vs {anchor}"] = None if v is None else round(100 * v, 1)
            out[f"{method} {image}"] = {"bd_rate_percent": bd,
                                        "points": {k: sorted((round(r, 3), round(q, 2)) for r, q in v)
                                                   for k, v in c.items()}}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="results.json files of sinr evaluate runs")
    p.add_argument("--published-bits", type=int, default=8,
                   help="the method's own storage bits: its 'published' curve (INRIC 8, COIN++ 5)")
    args = p.parse_args(argv)
    json.dump(report(load_points(args.results), args.published_bits), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
