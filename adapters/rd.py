"""Rate–distortion curve arithmetic: Pareto fronts, the rate of one curve at another's quality, savings.

A curve is a list of ``(rate, quality)`` points, rate in bits per pixel (or any rate > 0), quality in dB
(higher is better). Only the Pareto front of a curve counts: a point is kept when no cheaper point is at
least as good. Rates are interpolated **linearly in log-rate against quality** between adjacent front
points (the usual assumption behind Bjøntegaard deltas), and never extrapolated: a quality outside the
front's range has no rate.

:func:`savings` answers the question the SINR issues ask: at the quality a point of the *test* curve
reaches, how many fewer bits does it need than the *anchor* curve? :func:`bd_rate` averages that over
the quality interval both curves cover (negative = the test curve needs fewer bits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["bd_rate", "pareto_front", "rate_at", "savings", "savings_report"]

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


def rate_at(front: Sequence[Point], quality: float) -> float | None:
    """The rate the front needs for ``quality`` (log-linear between front points), or ``None`` outside
    the front's quality range."""
    if not front or not front[0][1] <= quality <= front[-1][1]:
        return None
    qs = np.array([q for _, q in front])
    logr = np.log([r for r, _ in front])
    return float(np.exp(np.interp(quality, qs, logr)))


def savings(anchor: Iterable[Point], test: Iterable[Point]) -> list[dict[str, Any]]:
    """For each point of ``test``'s front inside ``anchor``'s quality range: the anchor's rate there and
    ``saving = 1 - test_rate / anchor_rate`` (0.25: 25% fewer bits than the anchor at equal quality).

    A test point *above* the anchor's best quality at a lower rate than that best point dominates it:
    it is listed with ``bound=True`` and the saving against the anchor's best point, a lower bound (the
    anchor would need more than its top rate to reach that quality). Other points outside the range are
    left out.
    """
    a = pareto_front(anchor)
    out: list[dict[str, Any]] = []
    for rate, q in pareto_front(test):
        ref = rate_at(a, q)
        if ref is not None:
            out.append({"quality": q, "rate": rate, "anchor_rate": ref, "saving": 1.0 - rate / ref, "bound": False})
        elif a and q > a[-1][1] and rate < a[-1][0]:
            out.append({"quality": q, "rate": rate, "anchor_rate": a[-1][0], "saving": 1.0 - rate / a[-1][0],
                        "bound": True})
    return out


def bd_rate(anchor: Iterable[Point], test: Iterable[Point], *, samples: int = 200) -> float | None:
    """Mean relative rate difference of ``test`` against ``anchor`` over the quality interval both fronts
    cover (``exp(mean(log r_test - log r_anchor)) - 1``; -0.2: 20% fewer bits), or ``None`` if the
    fronts do not overlap in quality or either has fewer than two points."""
    a, t = pareto_front(anchor), pareto_front(test)
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
    """Per method with both curves in ``rows`` (e.g. :func:`sinr_adapters.evaluate.summary`): the best
    saving of ``<method><suffix>`` against ``<method>`` at equal quality, where it is reached, how many
    of its front points fall inside the anchor's quality range, and the BD-rate.

    A method whose SINR curve neither reaches a quality the plain curve covers nor dominates its best
    point gets ``best_saving=None``; ``best_is_bound`` says the best saving is a lower bound.
    """
    curves: dict[str, list[Point]] = {}
    for d in rows:
        curves.setdefault(d[label], []).append((d[rate], d[quality]))
    out = []
    for name in sorted(curves):
        if name.endswith(suffix) or name + suffix not in curves:
            continue
        anchor, test = curves[name], curves[name + suffix]
        s = savings(anchor, test)
        best = max(s, key=lambda d: d["saving"]) if s else None
        a = pareto_front(anchor)
        out.append({"method": name, "best_saving": None if best is None else best["saving"],
                    "best_is_bound": None if best is None else best["bound"],
                    "at_quality": None if best is None else best["quality"],
                    "at_rate": None if best is None else best["rate"],
                    "anchor_rate": None if best is None else best["anchor_rate"],
                    "points_compared": len(s), "test_points": len(pareto_front(test)),
                    "anchor_quality_range": (a[0][1], a[-1][1]) if a else None,
                    "bd_rate": bd_rate(anchor, test)})
    return out
