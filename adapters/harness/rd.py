"""Rate–distortion curve arithmetic: operating points, the rate of one curve at another's quality, savings.

A curve is a list of ``(rate, quality)`` points, rate in bits per pixel (or any rate > 0), quality in dB
(higher is better; pass ``higher_is_better=False`` for a distortion). A curve may pool several member
curves (e.g. a method at 8-bit and at 16-bit storage). Rates are interpolated **linearly in log-rate
against quality** (the usual assumption behind Bjøntegaard deltas) and never extrapolated: a quality
outside the curve's range has no rate.

**Which points count.** The *anchor* (the method without SINR) is represented by its operating points
(:func:`operating_points`): the upper convex hull of its points in the (log-rate, quality) plane. A point
under the hull is never used to interpolate: interpolating through it would make the anchor worse than one
of its own member curves (between a 16-bit point that is barely not dominated and an 8-bit one, the pooled
curve needs more bits than the 8-bit curve alone), and the comparison would flatter the test curve. Every
member curve's interpolation lies inside the convex hull of the pooled points, so the anchor needs no more
bits at any quality than its best member curve there. The *test* curve (with SINR) keeps its Pareto front
as measured (:func:`pareto_front`), never improved by a hull. So the rule can favour the anchor, never the
test curve: a saving reported is one SINR's measured points achieve against the best the method offers.

:func:`savings` answers the comparison's question: at the quality a point of the *test* curve
reaches, how many fewer bits does it need than the *anchor* curve? :func:`bd_rate` averages that over
the quality interval both curves cover (negative = the test curve needs fewer bits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["bd_rate", "operating_points", "pareto_front", "rate_at", "savings", "savings_report", "setting_variants"]

Point = tuple[float, float]


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no cheaper point matches, sorted by rate (so quality rises strictly along the front).

    Examples
    --------
    >>> pareto_front([(2.0, 30.0), (1.0, 28.0), (1.5, 27.0), (3.0, 29.0)])
    [(1.0, 28.0), (2.0, 30.0)]
    """
    front: list[Point] = []
    best = -math.inf
    # at equal rates the best quality comes first, so the others are dominated and dropped
    for rate, q in sorted(((float(r), float(q)) for r, q in points), key=lambda p: (p[0], -p[1])):
        if math.isfinite(q) and rate > 0 and q > best:
            front.append((rate, q))
            best = q
    return front


def operating_points(points: Iterable[Point], *, higher_is_better: bool = True) -> list[Point]:
    """The upper convex hull of the Pareto front in (log-rate, quality), sorted by rate.

    Points on a hull edge (collinear) are kept; a point strictly under the chord of its neighbours is
    dropped. The cheapest and the best point of the front are always kept, so the quality range is the
    front's. With ``higher_is_better=False`` the hull is the lower one (quality is a distortion).

    Examples
    --------
    >>> operating_points([(1.0, 20.0), (1.6, 20.1), (2.0, 26.0), (4.0, 30.0)])
    [(1.0, 20.0), (2.0, 26.0), (4.0, 30.0)]
    """
    sign = 1.0 if higher_is_better else -1.0
    front = pareto_front((r, sign * q) for r, q in points)
    hull: list[tuple[float, float, float]] = []   # (log-rate, quality, rate)
    for r, q in front:
        x = math.log(r)
        while len(hull) >= 2:
            (x0, y0, _), (x1, y1, _) = hull[-2], hull[-1]
            # drop the middle point when it lies strictly below the chord from hull[-2] to (x, q)
            below = (y1 - y0) * (x - x0) - (q - y0) * (x1 - x0)
            if below < -1e-12 * max(1.0, abs(q - y0) * abs(x - x0)):
                hull.pop()
            else:
                break
        hull.append((x, q, r))
    return [(r, sign * q) for _, q, r in hull]


def rate_at(front: Sequence[Point], quality: float) -> float | None:
    """The rate the front needs for ``quality`` (log-linear between front points), or ``None`` outside
    the front's quality range."""
    if not front or not front[0][1] <= quality <= front[-1][1]:
        return None
    qs = np.array([q for _, q in front])
    logr = np.log([r for r, _ in front])
    return float(np.exp(np.interp(quality, qs, logr)))


def _oriented(points: Iterable[Point], higher_is_better: bool) -> list[Point]:
    """:func:`operating_points` with quality negated for a distortion (so higher is better inside)."""
    sign = 1.0 if higher_is_better else -1.0
    return [(r, sign * q) for r, q in operating_points(points, higher_is_better=higher_is_better)]


def _front(points: Iterable[Point], higher_is_better: bool) -> list[Point]:
    """:func:`pareto_front` with quality negated for a distortion (so higher is better inside)."""
    sign = 1.0 if higher_is_better else -1.0
    return pareto_front((r, sign * q) for r, q in points)


def savings(anchor: Iterable[Point], test: Iterable[Point], *, higher_is_better: bool = True
            ) -> list[dict[str, Any]]:
    """For each point of ``test``'s Pareto front inside the quality range of ``anchor``'s operating points
    (:func:`operating_points`): the anchor's rate there and ``saving = 1 - test_rate / anchor_rate``
    (0.25: 25% fewer bits than the anchor at equal quality).

    A test point *above* the anchor's best quality at a lower rate than that best point dominates it:
    it is listed with ``bound=True`` and the saving against the anchor's best point, a lower bound (the
    anchor would need more than its top rate to reach that quality). Other points outside the range are
    left out.
    """
    sign = 1.0 if higher_is_better else -1.0
    a = _oriented(anchor, higher_is_better)
    out: list[dict[str, Any]] = []
    for rate, q in _front(test, higher_is_better):
        ref = rate_at(a, q)
        if ref is not None:
            out.append({"quality": sign * q, "rate": rate, "anchor_rate": ref, "saving": 1.0 - rate / ref,
                        "bound": False})
        elif a and q > a[-1][1] and rate < a[-1][0]:
            out.append({"quality": sign * q, "rate": rate, "anchor_rate": a[-1][0],
                        "saving": 1.0 - rate / a[-1][0], "bound": True})
    return out


def bd_rate(anchor: Iterable[Point], test: Iterable[Point], *, samples: int = 200,
            higher_is_better: bool = True) -> float | None:
    """Mean relative rate difference of ``test`` against ``anchor`` over the quality interval both cover:
    ``anchor``'s operating points (:func:`operating_points`) and ``test``'s Pareto front
    (``exp(mean(log r_test - log r_anchor)) - 1``; -0.2: 20% fewer bits), or ``None`` if they do not overlap
    in quality or either has fewer than two points."""
    a, t = _oriented(anchor, higher_is_better), _front(test, higher_is_better)
    if len(a) < 2 or len(t) < 2:
        return None
    lo, hi = max(a[0][1], t[0][1]), min(a[-1][1], t[-1][1])
    if not hi > lo:
        return None
    qs = np.linspace(lo, hi, samples)
    la = np.interp(qs, [q for _, q in a], np.log([r for r, _ in a]))
    lt = np.interp(qs, [q for _, q in t], np.log([r for r, _ in t]))
    return float(np.exp(np.mean(lt - la)) - 1.0)


def savings_report(rows: Sequence[dict[str, Any]], *, rate: str = "bpp", quality: str = "psnr",
                   label: str = "label", suffix: str = "+sinr") -> list[dict[str, Any]]:
    """Per method with both curves in ``rows`` (e.g. :func:`sinr_adapters.harness.evaluate.summary`): the best
    saving of ``<method><suffix>`` against ``<method>`` at equal quality, where it is reached, how many
    of its front points fall inside the anchor's quality range, and the BD-rate.

    A method whose SINR curve neither reaches a quality the plain curve covers nor dominates its best
    point gets ``best_saving=None``; ``best_is_bound`` says the best saving is a lower bound. Rows with
    ``higher_is_better`` false hold a distortion; both curves of a pair follow the anchor's rows.
    """
    curves: dict[str, list[Point]] = {}
    orientation: dict[str, bool] = {}
    for d in rows:
        curves.setdefault(d[label], []).append((d[rate], d[quality]))
        orientation[d[label]] = orientation.get(d[label], True) and bool(d.get("higher_is_better", True))
    out = []
    for name in sorted(curves):
        if name.endswith(suffix) or name + suffix not in curves:
            continue
        anchor, test, hib = curves[name], curves[name + suffix], orientation[name]
        s = savings(anchor, test, higher_is_better=hib)
        best = max(s, key=lambda d: d["saving"]) if s else None
        a = operating_points(anchor, higher_is_better=hib)
        out.append({"method": name, "best_saving": None if best is None else best["saving"],
                    "best_is_bound": None if best is None else best["bound"],
                    "at_quality": None if best is None else best["quality"],
                    "at_rate": None if best is None else best["rate"],
                    "anchor_rate": None if best is None else best["anchor_rate"],
                    "points_compared": len(s), "test_points": len(_front(test, hib)),
                    "anchor_quality_range": (min(a[0][1], a[-1][1]), max(a[0][1], a[-1][1])) if a else None,
                    "bd_rate": bd_rate(anchor, test, higher_is_better=hib)})
    return out


def setting_variants(rows: Sequence[dict[str, Any]], *, label: str = "label", point: str = "point",
                     suffix: str = "+sinr") -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The rows of every curve without ``suffix`` grouped by the setting after the first comma of their rate
    point: a bit search's storage settings, each a curve of its own.

    Examples
    --------
    >>> rows = [{"label": "coin", "point": "width=16,bits=8"}, {"label": "coin", "point": "width=32,bits=8"},
    ...         {"label": "coin", "point": "width=16,bits=16"}, {"label": "coin+sinr", "point": "width=16"}]
    >>> {k: len(v) for k, v in setting_variants(rows).items()}
    {('coin', 'bits=8'): 2, ('coin', 'bits=16'): 1}
    """
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in rows:
        if not str(d[label]).endswith(suffix) and "," in str(d[point]):
            out.setdefault((d[label], str(d[point]).split(",", 1)[1]), []).append(d)
    return out
