"""Every INR path against the classic codecs measured in the same run: BD-rates against each and the best.

Methods without a network (their description says ``weights=False``: JPEG, WebP, JPEG 2000, AVIF) are the
run's *anchors*: reference curves measured on the same signals, with the same metric and whole files
counted. For every curve of an INR method in a summary (:func:`sinr_adapters.harness.reporting.summary`:
each label, and each storage setting alone when a bit search made several) :func:`against_anchors` gives
its BD-rate (:func:`sinr_adapters.harness.rd.bd_rate`: the mean relative rate difference at equal
quality over the interval both cover; > 0: the INR path needs more bits) against each anchor alone and
against **the best classic codec**.

**The best classic codec** is, at each quality, the cheapest of the anchors measured in the run: the
upper convex hull, in (log-rate, quality), of all their points pooled. It is the rule a method's own
storage settings already follow when pooled (:func:`sinr_adapters.harness.rd.operating_points`): any one
anchor's curve, interpolated between its points, lies inside the hull, so at every quality the envelope
needs no more bits than the cheapest single codec there, and where the codecs cross (one better at low
quality, another at high) it follows whichever is cheaper. The choice can favour the classic codecs, never
the INR path, and it does not depend on which codec a reader would have picked. The INR path keeps its
Pareto front as measured (so a curve pooling several storage settings can only look worse than its best
setting, which is listed alone). Curves are compared only with anchors of the same metric and rate unit.

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

from . import rd

__all__ = ["against_anchors", "anchor_rows", "inr_curves", "markdown"]

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


def _envelope_sources(hull: Sequence[Point], lo: float, hi: float, source: dict[Point, str]) -> list[str]:
    """The anchors whose points bound the hull's segments over the quality interval [lo, hi]."""
    names: list[str] = []
    for a, b in zip(hull, hull[1:], strict=False):
        if a[1] <= hi and b[1] >= lo:
            names += [source[a], source[b]]
    return sorted(set(names))


def against_anchors(rows: Sequence[dict[str, Any]], *, rate: str = "bpp", quality: str = "psnr"
                    ) -> dict[str, Any]:
    """Every INR curve of ``rows`` (summary rows) against the anchors among them (module docstring).

    Returns
    -------
    dict
        ``"anchors"``: their labels; ``"best"``: the best classic codec's points (``rate``, ``quality``,
        ``anchor``: which codec each comes from), per metric; ``"paths"``: per INR curve, ``path``,
        ``metric``, ``bd_rate_best`` (against the best classic codec; None without overlap in quality),
        ``bd_rate`` (per anchor), ``quality_range`` (the interval compared with the best classic codec,
        or None) and ``best_from`` (the anchors the best classic codec follows over that interval).
    """
    anchors = anchor_rows(rows)
    out: dict[str, Any] = {"anchors": sorted({str(d["label"]) for d in anchors}), "best": [], "paths": []}
    for kind in sorted({_kind(d) for d in anchors}):
        mine = [d for d in anchors if _kind(d) == kind]
        hib = all(bool(d.get("higher_is_better", True)) for d in mine)
        per: dict[str, list[Point]] = {}
        source: dict[Point, str] = {}
        for d in mine:
            p = (float(d[rate]), float(d[quality]))
            per.setdefault(str(d["label"]), []).append(p)
            source.setdefault(p, str(d["label"]))
        pooled = [p for pts in per.values() for p in pts]
        hull = rd.operating_points(pooled, higher_is_better=hib)
        out["best"] += [{"metric": kind[0], rate: r, quality: q, "anchor": source[(r, q)]} for r, q in hull]
        oriented = [(r, q if hib else -q) for r, q in hull]
        oriented_source = {(r, q if hib else -q): name for (r, q), name in source.items()}
        for name, curve in inr_curves([d for d in rows if _kind(d) == kind]).items():
            pts = [(float(d[rate]), float(d[quality])) for d in curve]
            front = rd.pareto_front((r, q if hib else -q) for r, q in pts)
            span = None
            if front and oriented:
                lo, hi = max(front[0][1], oriented[0][1]), min(front[-1][1], oriented[-1][1])
                span = (lo, hi) if hi > lo else None
            bd = rd.bd_rate(pooled, pts, higher_is_better=hib)
            out["paths"].append({
                "path": name, "metric": kind[0],
                "bd_rate_best": bd,
                "bd_rate": {a: rd.bd_rate(p, pts, higher_is_better=hib) for a, p in sorted(per.items())},
                "quality_range": None if span is None or bd is None
                else sorted(v if hib else -v for v in span),
                "best_from": [] if span is None or bd is None
                else _envelope_sources(oriented, span[0], span[1], oriented_source)})
    return out


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
           f"the cheapest of those measured in this run (the upper convex hull of their points):\n\n"
           f"| INR path | vs best classic | " + " | ".join(f"vs {a}" for a in anchors)
           + f" | {metric} range compared{unit_txt} | best classic there |\n"
           + "|---" * (len(anchors) + 4) + "|\n")
    for c in paths:
        span = "–" if c["quality_range"] is None else f"{c['quality_range'][0]:.2f}–{c['quality_range'][1]:.2f}"
        cells = [_pct(c["bd_rate"].get(a)) for a in anchors]
        out += (f"| {c['path']} | {_pct(c['bd_rate_best'])} | " + " | ".join(cells)
                + f" | {span} | {', '.join(c['best_from']) or '–'} |\n")
    return out
