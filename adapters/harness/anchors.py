"""Every INR path against the classic codecs measured in the same run: BD-rates against each and the best.

Methods without a network (their description says ``weights=False``: JPEG, WebP, JPEG 2000, AVIF) are the
run's *anchors*: reference curves measured on the same signals, with the same metric and whole files
counted. For every curve of an INR method in a summary (:func:`sinr_adapters.harness.reporting.summary`:
each label, and each storage setting alone when a bit search made several) :func:`against_anchors` gives
its BD-rate (the mean relative rate difference at equal quality over the interval both cover; > 0: the
INR path needs more bits) against each anchor alone and against **the best classic codec**.

**The best classic codec** is, at each quality, the cheapest of the anchors measured in the run: the least
rate any one of them needs there (:func:`best_rate`). Every curve, the anchors' and the INR path's, is its
measured Pareto front, interpolated linearly in log-rate between measured points and never extrapolated
(:func:`sinr_adapters.harness.rd.pareto_front`, :func:`sinr_adapters.harness.rd.rate_at`): an anchor is one
codec swept over its quality, not a pool of settings, and its points are what a user gets. The best
classic codec needs no more bits than any single anchor at any quality, follows whichever is cheapest
where they cross (one better at low quality, another at high), covers their quality ranges from their
cheapest point up (below it, that point is cheaper and better than any other), and depends on no choice
of codec: the comparison can favour the classic codecs, never the INR path. It is *not* a convex hull:
the hull of all anchors' points pooled draws straight lines between codecs far apart, and a codec's own
hull straight lines over a curve that bends upward in log-rate (as a fixed header makes it on small
images), both claiming rates no file reached. :func:`bd_rate_best` averages the log-rate difference over
``samples`` evenly spaced qualities both curves cover, as :func:`sinr_adapters.harness.rd.bd_rate` does;
with one anchor it is the BD-rate against that anchor's front (the per-anchor figures). A curve pooling
several storage settings keeps its measured Pareto front too, so it can only look worse than its best
setting, which is listed alone. Curves are compared only with anchors of the same metric and rate unit.

Examples
--------
>>> rows = ([{"label": "jpeg", "method": "jpeg", "anchor": True, "point": f"quality={q}", "bpp": b, "psnr": p}
...          for q, b, p in [(10, 1.0, 24.0), (50, 2.0, 28.0), (90, 4.0, 32.0)]]
...         + [{"label": "coin", "method": "coin", "point": f"width={w}", "bpp": b, "psnr": p}
...            for w, b, p in [(16, 2.0, 24.0), (32, 4.0, 28.0)]])
>>> (path,) = against_anchors(rows)["paths"]
>>> path["path"], round(path["bd_rate_best"], 6), path["best_from"]
('coin', 1.0, ['jpeg'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import rd

__all__ = ["against_anchors", "anchor_rows", "bd_rate_best", "best_rate", "inr_curves", "markdown"]

Point = tuple[float, float]


def _kind(d: dict[str, Any]) -> tuple[str, str]:
    return str(d.get("metric", "PSNR")), str(d.get("rate_unit", "bpp"))


def anchor_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary rows of methods without a network (``anchor`` true)."""
    return [d for d in rows if d.get("anchor")]


def _method(d: dict[str, Any]) -> str:
    return str(d.get("method") or str(d["label"]).split(" ")[0].removesuffix("+sinr"))


def inr_curves(rows: Sequence[dict[str, Any]], *, rate: str = "bpp", quality: str = "psnr"
               ) -> dict[str, list[dict[str, Any]]]:
    """The INR curves a summary compares with the anchors, by name: every label, and each storage setting of
    a plain label alone when it has several (``"coin (bits=16)"``). Values are the rows of each curve."""
    inr = [d for d in rows if not d.get("anchor")]
    curves: dict[str, list[dict[str, Any]]] = {}
    for d in inr:
        curves.setdefault(str(d["label"]), []).append(d)
    plain = [d for d in inr if d["label"] == _method(d)]
    variants = rd.setting_variants(plain)
    for label in sorted({lab for lab, _ in variants}):
        tags = sorted(tag for lab, tag in variants if lab == label)
        if len(tags) > 1:
            for tag in tags:
                curves[f"{label} ({tag})"] = variants[(label, tag)]
    return curves


def _fronts(curves: dict[str, list[Point]], sign: float) -> dict[str, list[Point]]:
    """Each anchor's measured Pareto front (:func:`sinr_adapters.harness.rd.pareto_front`), quality oriented so
    that higher is better."""
    return {name: rd.pareto_front((r, sign * q) for r, q in pts) for name, pts in curves.items()}


def _floor(fronts: dict[str, list[Point]]) -> float:
    """The quality of the cheapest point of all anchors (the best one among equally cheap): below it every
    anchor's point is dominated by that one, so the best classic codec starts there."""
    return max((f[0] for f in fronts.values() if f), key=lambda p: (-p[0], p[1]))[1]


def best_rate(fronts: dict[str, list[Point]], quality: float) -> tuple[float, str] | None:
    """``(rate, anchor)``: the least rate any one anchor needs for ``quality`` (each interpolated along its own
    measured Pareto front, log-linearly, never extrapolated), or None where none reaches it or the quality
    is below that of the anchors' cheapest point (where a cheaper point of higher quality exists).

    Parameters
    ----------
    fronts : dict of str to list of (rate, quality)
        Each anchor's Pareto front, quality oriented so that higher is better.
    quality : float
        In the same orientation."""
    if not fronts or quality < _floor(fronts):
        return None
    best: tuple[float, str] | None = None
    for name, front in fronts.items():
        r = rd.rate_at(front, quality)
        if r is not None and (best is None or r < best[0]):
            best = (r, name)
    return best


def bd_rate_best(fronts: dict[str, list[Point]], test: Sequence[Point], *, samples: int = 200
                 ) -> tuple[float | None, tuple[float, float] | None, dict[str, float]]:
    """BD-rate of ``test`` (its Pareto front; qualities oriented, higher is better) against the best of the
    anchors' ``fronts`` (:func:`best_rate`), over the quality interval both cover (qualities no anchor
    reaches are left out): the mean log-rate difference over ``samples`` evenly spaced qualities, as
    :func:`sinr_adapters.harness.rd.bd_rate` computes it. Returns ``(bd_rate, (lo, hi), shares)``, ``shares``
    the fraction of the compared qualities at which each anchor is the cheapest; ``(None, None, {})`` when
    the curves share no quality range or ``test`` has fewer than two points."""
    front = rd.pareto_front(test)
    fronts = {n: h for n, h in fronts.items() if h}
    if len(front) < 2 or not fronts:
        return None, None, {}
    lo = max(front[0][1], _floor(fronts))
    hi = min(front[-1][1], max(h[-1][1] for h in fronts.values()))
    if not hi > lo:
        return None, None, {}
    qs = np.linspace(lo, hi, samples)
    lt = np.interp(qs, [q for _, q in front], np.log([r for r, _ in front]))
    found = [(i, b) for i, q in enumerate(qs) if (b := best_rate(fronts, float(q))) is not None]
    if len(found) < 2:
        return None, None, {}
    diff = float(np.mean([lt[i] - np.log(b[0]) for i, b in found]))
    names = [b[1] for _, b in found]
    shares = {n: names.count(n) / len(names) for n in sorted(set(names), key=lambda n: -names.count(n))}
    return float(np.exp(diff) - 1.0), (lo, hi), shares


def against_anchors(rows: Sequence[dict[str, Any]], *, rate: str = "bpp", quality: str = "psnr"
                    ) -> dict[str, Any]:
    """Every INR curve of ``rows`` (summary rows) against the anchors among them (module docstring).

    Returns
    -------
    dict
        ``"anchors"``: their labels; ``"best"``: the best classic codec traced at evenly spaced qualities
        over its range (``metric``, ``rate``, ``quality``, ``anchor``: the cheapest codec there); ``"paths"``:
        per INR curve, ``path``, ``metric``, ``bd_rate_best`` (against the best classic codec; None without
        overlap in quality), ``bd_rate`` (per anchor, :func:`bd_rate_best` against that anchor alone),
        ``quality_range`` (the interval compared with the best classic codec, or None), ``best_share``
        (per anchor, the fraction of that interval where it is the cheapest) and ``best_from`` (those
        anchors, the largest share first).
    """
    anchors = anchor_rows(rows)
    out: dict[str, Any] = {"anchors": sorted({str(d["label"]) for d in anchors}), "best": [], "paths": []}
    for kind in sorted({_kind(d) for d in anchors}):
        mine = [d for d in anchors if _kind(d) == kind]
        sign = 1.0 if all(bool(d.get("higher_is_better", True)) for d in mine) else -1.0
        per: dict[str, list[Point]] = {}
        for d in mine:
            per.setdefault(str(d["label"]), []).append((float(d[rate]), float(d[quality])))
        fronts = _fronts(per, sign)
        for q in np.linspace(_floor(fronts), max(h[-1][1] for h in fronts.values()), 64):
            b = best_rate(fronts, float(q))
            if b is not None:
                out["best"].append({"metric": kind[0], rate: b[0], quality: sign * float(q), "anchor": b[1]})
        for name, curve in inr_curves([d for d in rows if _kind(d) == kind]).items():
            pts = [(float(d[rate]), float(d[quality])) for d in curve]
            oriented = [(r, sign * q) for r, q in pts]
            bd, span, shares = bd_rate_best(fronts, oriented)
            out["paths"].append({
                "path": name, "metric": kind[0], "bd_rate_best": bd,
                "bd_rate": {a: bd_rate_best({a: f}, oriented)[0] for a, f in sorted(fronts.items())},
                "quality_range": None if span is None else sorted(sign * v for v in span),
                "best_share": shares, "best_from": list(shares)})
    return out


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {100 * v:.0f}%" for name, v in shares.items()) or "–"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:+.1f}%"


def markdown(report: dict[str, Any], *, metric: str = "PSNR", unit: str = "dB", rate: str = "bpp") -> str:
    """The table of :func:`against_anchors` (empty when the run has no anchors or no INR curve)."""
    anchors, paths = report["anchors"], report["paths"]
    if not anchors or not paths:
        return ""
    unit_txt = f" ({unit})" if unit else ""
    out = (f"\nINR paths against the classic codecs at equal {metric} (mean curves, log-{rate} interpolated; the "
           f"classic codecs store no network, so they have no path with SINR; whole files counted, headers "
           f"included; BD-rate > 0: the INR path needs more bits). The best classic codec is, at each {metric}, "
           f"the cheapest of those measured in this run (the least rate any one of them needs; the last column "
           f"says where each is the cheapest):\n\n"
           f"| INR path | vs best classic | " + " | ".join(f"vs {a}" for a in anchors)
           + f" | {metric} range compared{unit_txt} | best classic there |\n"
           + "|---" * (len(anchors) + 4) + "|\n")
    for c in paths:
        span = "–" if c["quality_range"] is None else f"{c['quality_range'][0]:.2f}–{c['quality_range'][1]:.2f}"
        cells = [_pct(c["bd_rate"].get(a)) for a in anchors]
        out += (f"| {c['path']} | {_pct(c['bd_rate_best'])} | " + " | ".join(cells)
                + f" | {span} | {_shares(c['best_share'])} |\n")
    return out
