"""The BD-rates of the INR paths against the classic codecs agree with an independent computation, on points
measured by the harness on two images the project does not tune on (coffee and chelsea: learning rates were
chosen on rocket, meta-learning uses the held-out images, the demo shows astronaut)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from sinr_adapters.harness import anchors, rd
from sinr_adapters.harness.config import EvalConfig
from sinr_adapters.harness.evaluate import run
from sinr_adapters.harness.plugins import unavailable
from sinr_adapters.harness.reporting import markdown_table, summary

CLASSIC = ["jpeg", "webp", "jpeg2000", "avif"]
AVAILABLE = [m for m in CLASSIC if unavailable(m) is None]
IMAGES = ["coffee", "chelsea"]


@pytest.fixture(scope="module")
def measured():
    """COIN (four widths, with and without SINR) and every available classic codec, 24 px, seeded."""
    if len(AVAILABLE) < 2:
        pytest.skip(f"this Pillow writes fewer than two of {CLASSIC}")
    n = torch.get_num_threads()
    try:
        cfg = EvalConfig(methods=["coin", *AVAILABLE], signals=IMAGES, size=24, steps=150, finetune_steps=0,
                         options={"coin": {"widths": [8, 12, 16, 24], "layers": 2}}, sparsity=[0.5], seed=0)
        return run(cfg, progress=False, log=lambda m: None)
    finally:
        torch.set_num_threads(n)


def mean_curves(results) -> dict[str, list[tuple[float, float]]]:
    """Per curve label, the mean (bits per pixel, PSNR) over the images of each rate point, from the raw
    records: bytes * 8 / pixels, the PSNR each record holds."""
    groups: dict[tuple[str, str, object], list] = defaultdict(list)
    for r in results:
        groups[(r.label, r.extra["point"], (r.sinr or {}).get("sparsity"))].append(r)
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (label, _, _), rs in groups.items():
        assert len(rs) == len(IMAGES)
        out[label].append((sum(8 * r.bytes / r.elements for r in rs) / len(rs), sum(r.psnr for r in rs) / len(rs)))
    return out


def codec_log_rate(points, q: float) -> float | None:
    """One codec's log-rate at quality ``q``: linear in (quality, log-rate) between its measured points that no
    other point beats (found by pairwise dominance), by scipy's interpolation; None outside their range."""
    from scipy.interpolate import interp1d

    front = sorted({p for p in points if not any((o[0] <= p[0] and o[1] > p[1]) or (o[0] < p[0] and o[1] >= p[1])
                                                  for o in points)})
    if not front[0][1] <= q <= front[-1][1]:
        return None
    if len(front) == 1:
        return math.log(front[0][0])
    return float(interp1d([p[1] for p in front], np.log([p[0] for p in front]))(q))


def independent_bd_rate(codecs, test) -> float | None:
    """BD-rate of ``test`` against the cheapest of ``codecs`` (a list of point lists) at each quality, by the
    rule of the harness computed another way: each codec's measured front (:func:`codec_log_rate`), the
    minimum over the codecs from their cheapest point up, the test curve's measured Pareto front, and the
    mean log-rate difference as an integral (scipy's adaptive quadrature, told every quality where a curve
    bends)."""
    from scipy.integrate import quad

    front: list[tuple[float, float]] = []
    for r, q in sorted(test, key=lambda p: (p[0], -p[1])):
        if not front or q > front[-1][1]:
            front.append((r, q))

    def best(q: float) -> float | None:
        found = [x for c in codecs if (x := codec_log_rate(c, q)) is not None]
        return min(found) if found else None

    cheapest = min((p for c in codecs for p in c), key=lambda p: (p[0], -p[1]))   # below it all is dominated
    lo = max(front[0][1], cheapest[1])
    hi = min(front[-1][1], max(p[1] for c in codecs for p in c))
    if len(front) < 2 or not hi > lo:
        return None
    qs = np.linspace(lo, hi, 101)
    assert all(best(float(q)) is not None for q in qs)      # these codecs' ranges leave no gap
    bends = sorted({q for _, q in [*front, *(p for c in codecs for p in c)] if lo < q < hi})

    def diff(q: float) -> float:
        return float(np.interp(q, [f[1] for f in front], np.log([f[0] for f in front]))) - best(q)

    integral, _ = quad(diff, lo, hi, points=bends, limit=500)
    return math.exp(integral / (hi - lo)) - 1.0


def test_the_harness_mean_curves_are_the_records_means(measured):
    mine = mean_curves(measured)
    rows = summary(measured)
    for label, pts in mine.items():
        got = sorted((d["bpp"], d["psnr"]) for d in rows if d["label"] == label)
        np.testing.assert_allclose(got, sorted(pts), rtol=1e-12)


def test_bd_rates_against_the_best_classic_codec_agree_with_an_independent_computation(measured):
    curves = mean_curves(measured)
    report = anchors.against_anchors(summary(measured))
    by_path = {c["path"]: c for c in report["paths"]}
    assert set(by_path) == {"coin", "coin+sinr"} and report["anchors"] == sorted(AVAILABLE)
    compared = 0
    for path in ("coin", "coin+sinr"):
        pairs = [("best", [curves[m] for m in AVAILABLE], by_path[path]["bd_rate_best"])]
        pairs += [(m, [curves[m]], by_path[path]["bd_rate"][m]) for m in AVAILABLE]
        for name, anchor, harness in pairs:
            mine = independent_bd_rate(anchor, curves[path])
            assert (mine is None) == (harness is None), (path, name)
            if mine is None:
                continue
            compared += 1
            # the harness averages 200 evenly spaced qualities, ends included, where this integrates: the
            # two differ by a fraction of the log-rate difference's spread over 200, within 0.5% of the rate
            assert math.log1p(harness) == pytest.approx(math.log1p(mine), abs=5e-3), (path, name)
    assert compared >= 2 + len(AVAILABLE)


def test_the_best_classic_codec_is_the_cheapest_codec_at_each_psnr(measured):
    curves = mean_curves(measured)
    best = anchors.against_anchors(summary(measured))["best"]
    assert len(best) > 30
    for d in best:
        own = {m: codec_log_rate(curves[m], d["psnr"]) for m in AVAILABLE}
        reached = {m: x for m, x in own.items() if x is not None}
        assert reached and d["anchor"] == min(reached, key=reached.get)
        assert math.log(d["bpp"]) == pytest.approx(min(reached.values()), abs=1e-9)
    # the convex hull of every codec's points pooled would claim fewer bits than any codec measured somewhere
    pooled = rd.operating_points([p for m in AVAILABLE for p in curves[m]])
    assert any(rd.rate_at(pooled, d["psnr"]) < d["bpp"] * 0.99 for d in best if rd.rate_at(pooled, d["psnr"]))


def test_the_table_prints_the_figures_of_the_report(measured):
    table = markdown_table(measured)
    section = table.split("INR paths against the classic codecs")[1]
    for c in anchors.against_anchors(summary(measured))["paths"]:
        cells = [c["bd_rate_best"], *(c["bd_rate"][m] for m in sorted(AVAILABLE))]
        row = f"| {c['path']} | " + " | ".join("–" if v is None else f"{100 * v:+.1f}%" for v in cells)
        assert row in section
