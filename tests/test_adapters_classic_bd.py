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


def envelope_log_rate(points, q: float) -> float:
    """The least log-rate any two of ``points`` reach ``q`` with, linearly between them in (quality, log-rate):
    the lower convex envelope, written as the minimum over every chord (two points suffice in the plane)."""
    pts = np.array([(p[1], math.log(p[0])) for p in points])
    q1, x1 = pts[:, None, 0], pts[:, None, 1]
    q2, x2 = pts[None, :, 0], pts[None, :, 1]
    span = (q1 <= q) & (q <= q2)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(q2 > q1, x1 + (q - q1) * (x2 - x1) / (q2 - q1), np.minimum(x1, x2))
    return float(np.min(np.where(span, x, np.inf)))


def independent_bd_rate(anchor, test) -> float | None:
    """BD-rate of ``test`` against ``anchor`` by the rule of the harness, computed another way: the anchor's
    least rate at each quality from its cheapest point upwards, the test curve's measured Pareto front, and
    the mean log-rate difference as an exact integral (both are linear between the qualities of the points,
    so the trapezoid rule over those qualities is exact)."""
    cheapest = min(anchor, key=lambda p: (p[0], -p[1]))
    front: list[tuple[float, float]] = []
    for r, q in sorted(test, key=lambda p: (p[0], -p[1])):
        if not front or q > front[-1][1]:
            front.append((r, q))
    lo = max(cheapest[1], front[0][1])
    hi = min(max(q for _, q in anchor), front[-1][1])
    if len(front) < 2 or not hi > lo:
        return None
    qs = sorted({lo, hi, *(q for _, q in [*anchor, *front] if lo < q < hi)})
    diff = [float(np.interp(q, [f[1] for f in front], np.log([f[0] for f in front]))) - envelope_log_rate(anchor, q)
            for q in qs]
    mean = sum((b - a) * (da + db) / 2 for a, b, da, db in zip(qs, qs[1:], diff, diff[1:], strict=False)) / (hi - lo)
    return math.exp(mean) - 1.0


def test_the_harness_mean_curves_are_the_records_means(measured):
    mine = mean_curves(measured)
    rows = summary(measured)
    for label, pts in mine.items():
        got = sorted((d["bpp"], d["psnr"]) for d in rows if d["label"] == label)
        np.testing.assert_allclose(got, sorted(pts), rtol=1e-12)


def test_bd_rates_against_the_best_classic_codec_agree_with_an_independent_computation(measured):
    curves = mean_curves(measured)
    classic = [p for m in AVAILABLE for p in curves[m]]
    report = anchors.against_anchors(summary(measured))
    by_path = {c["path"]: c for c in report["paths"]}
    assert set(by_path) == {"coin", "coin+sinr"} and report["anchors"] == sorted(AVAILABLE)
    compared = 0
    for path in ("coin", "coin+sinr"):
        pairs = [("best", classic, by_path[path]["bd_rate_best"])]
        pairs += [(m, curves[m], by_path[path]["bd_rate"][m]) for m in AVAILABLE]
        for name, anchor, harness in pairs:
            mine = independent_bd_rate(anchor, curves[path])
            assert (mine is None) == (harness is None), (path, name)
            if mine is None:
                continue
            compared += 1
            # the harness averages 200 samples of the interval: within 0.1% of the exact mean in log-rate
            assert math.log1p(harness) == pytest.approx(math.log1p(mine), abs=1e-3), (path, name)
    assert compared >= 2 + len(AVAILABLE)


def test_the_best_classic_codec_needs_no_more_bits_than_any_one_of_them(measured):
    curves = mean_curves(measured)
    best = [(d["bpp"], d["psnr"]) for d in anchors.against_anchors(summary(measured))["best"]]
    assert best == rd.operating_points([p for m in AVAILABLE for p in curves[m]])
    for m in AVAILABLE:
        own = rd.operating_points(curves[m])
        for q in np.linspace(own[0][1], own[-1][1], 50):
            env = rd.rate_at(best, float(q))
            if env is not None:
                assert env <= rd.rate_at(own, float(q)) * (1 + 1e-9)


def test_the_table_prints_the_figures_of_the_report(measured):
    table = markdown_table(measured)
    section = table.split("INR paths against the classic codecs")[1]
    for c in anchors.against_anchors(summary(measured))["paths"]:
        cells = [c["bd_rate_best"], *(c["bd_rate"][m] for m in sorted(AVAILABLE))]
        row = f"| {c['path']} | " + " | ".join("–" if v is None else f"{100 * v:+.1f}%" for v in cells)
        assert row in section
