"""Rate–distortion arithmetic: Pareto fronts, interpolated rates, savings at equal PSNR, BD-rate."""

from __future__ import annotations

import pytest

from sinr_adapters.harness import rd


def curve(scale: float, qualities) -> list[tuple[float, float]]:
    # 6 dB per doubling of the rate: log-rate is linear in quality, so interpolation is exact
    return [(scale * 2 ** ((q - 20.0) / 6.0), q) for q in qualities]


def test_pareto_front_drops_dominated_and_invalid_points():
    pts = [(2.0, 30.0), (1.0, 28.0), (1.5, 27.0), (3.0, 29.0), (0.0, 40.0), (4.0, float("nan"))]
    assert rd.pareto_front(pts) == [(1.0, 28.0), (2.0, 30.0)]
    assert rd.pareto_front([]) == []
    assert rd.pareto_front([(4.0, 25.0), (4.0, 29.9), (2.0, 24.9)]) == [(2.0, 24.9), (4.0, 29.9)]


def test_rate_at_interpolates_in_log_rate_and_never_extrapolates():
    front = [(1.0, 20.0), (4.0, 32.0)]
    assert rd.rate_at(front, 26.0) == pytest.approx(2.0)
    assert rd.rate_at(front, 19.9) is None and rd.rate_at(front, 32.1) is None


def test_savings_and_bd_rate_of_a_curve_needing_three_quarters_of_the_bits():
    anchor = curve(1.0, [20, 24, 28, 32])
    test = curve(0.75, [22, 26, 30, 34])   # the last point is above the anchor's range
    s = rd.savings(anchor, test)
    assert [d["quality"] for d in s] == [22, 26, 30, 34]
    assert all(d["saving"] == pytest.approx(0.25) for d in s[:3]) and not any(d["bound"] for d in s[:3])
    # 34 dB at a lower rate than the anchor's 32-dB point: dominates it, saving at least 1 - 3.78/4
    assert s[3]["bound"] and s[3]["saving"] == pytest.approx(1 - 0.75 * 2 ** (14 / 6) / 4)
    assert rd.savings(anchor, curve(2.0, [34])) == []   # above the range but costlier: no statement
    assert rd.bd_rate(anchor, test) == pytest.approx(-0.25)
    assert rd.bd_rate(test, anchor) == pytest.approx(1 / 0.75 - 1)
    assert rd.bd_rate(anchor, curve(1.0, [40, 44])) is None   # no overlap in quality


def test_savings_report_pairs_each_method_with_its_sinr_curve():
    rows = ([{"label": "coin", "bpp": b, "psnr": q} for b, q in curve(1.0, [20, 25, 30])]
            + [{"label": "coin+sinr", "bpp": b, "psnr": q} for b, q in curve(1.2, [21, 29])]
            + [{"label": "inric", "bpp": b, "psnr": q} for b, q in curve(1.0, [20, 25])]
            + [{"label": "inric+sinr", "bpp": b, "psnr": q} for b, q in curve(0.5, [10, 15])])
    coin, inric = rd.savings_report(rows)
    assert coin["method"] == "coin" and coin["best_saving"] == pytest.approx(-0.2)
    assert coin["points_compared"] == 2 and coin["bd_rate"] == pytest.approx(0.2)
    assert inric["best_saving"] is None and inric["points_compared"] == 0


# COIN at 8-bit and at 16-bit (float16) storage and COIN+SINR: the shape of a `sinr demo` run, where the
# pooled curve without SINR keeps a 16-bit point (2.590 bpp, 21.13 dB) that is barely not dominated
COIN8 = [(1.596, 21.08), (2.979, 26.96), (4.750, 30.63)]
COIN16 = [(2.590, 21.13), (5.340, 27.05), (9.090, 30.80)]
SINR = [(1.303, 16.55), (1.545, 19.50), (2.139, 20.90), (2.676, 25.08), (3.211, 23.42), (4.137, 28.06)]


def test_operating_points_drop_points_under_the_hull_and_keep_collinear_ones():
    assert rd.operating_points(COIN8 + COIN16) == [(1.596, 21.08), (2.979, 26.96), (4.750, 30.63), (9.090, 30.80)]
    line = curve(1.0, [20, 24, 28, 32])
    assert rd.operating_points(line) == line
    # a distortion (lower is better): the lower hull
    assert rd.operating_points([(1.0, 5.0), (2.0, 4.9), (4.0, 1.0)], higher_is_better=False) == [(1.0, 5.0), (4.0, 1.0)]


def test_a_pooled_anchor_never_flatters_sinr_against_its_own_member_curves():
    """Interpolating through the pooled curve's Pareto front would give SINR a BD-rate near -2%, while
    against the 8-bit member alone the same points cost 19% more bits; the hull makes the pooled anchor at
    least as strong as each member wherever that member reaches."""
    pooled = COIN8 + COIN16
    front = rd.pareto_front(pooled)
    assert (2.590, 21.13) in front   # barely not dominated: interpolating through it weakens the pooled curve
    bd_pooled, bd_8 = rd.bd_rate(pooled, SINR), rd.bd_rate(COIN8, SINR)
    assert bd_8 == pytest.approx(0.193, abs=0.002)
    assert bd_pooled == pytest.approx(bd_8, abs=1e-9)    # the pooled hull is the 8-bit curve here
    assert bd_pooled >= rd.bd_rate(COIN16, SINR)          # and never weaker than the float16 curve
    pooled_s = {d["quality"]: d["saving"] for d in rd.savings(pooled, SINR)}
    for member in (COIN8, COIN16):
        for d in rd.savings(member, SINR):
            if not d["bound"] and d["quality"] in pooled_s:
                assert pooled_s[d["quality"]] <= d["saving"] + 1e-12
    assert max(pooled_s.values()) < 0                     # no saving at all, as against the 8-bit curve
    # SINR's own points are taken as measured (its Pareto front), not improved by a hull
    assert rd.savings_report([{"label": "coin", "bpp": b, "psnr": q} for b, q in pooled]
                             + [{"label": "coin+sinr", "bpp": b, "psnr": q} for b, q in SINR])[0]["test_points"] == 5


def test_savings_with_a_distortion_metric():
    anchor = [(1.0, 0.04), (2.0, 0.02), (4.0, 0.01)]
    test = [(0.75, 0.04), (1.5, 0.02)]
    s = rd.savings(anchor, test, higher_is_better=False)
    assert [d["quality"] for d in s] == [0.04, 0.02]
    assert all(d["saving"] == pytest.approx(0.25) for d in s)
    rows = ([{"label": "m", "bpp": b, "psnr": q, "higher_is_better": False} for b, q in anchor]
            + [{"label": "m+sinr", "bpp": b, "psnr": q, "higher_is_better": False} for b, q in test])
    (rep,) = rd.savings_report(rows)
    assert rep["best_saving"] == pytest.approx(0.25) and rep["bd_rate"] == pytest.approx(-0.25)


def test_the_pooled_anchor_is_at_least_its_best_member_at_every_quality():
    """Random member curves (each increasing, of 2-5 points): wherever a member reaches a quality, the
    pooled anchor's operating points need no more bits there, and the BD-rate against the pool is never
    more favourable to a test curve than against any member."""
    import numpy as np

    rng = np.random.default_rng(7)
    for _ in range(300):
        members = []
        for _ in range(rng.integers(2, 4)):
            n = int(rng.integers(2, 6))
            rates = np.sort(rng.uniform(0.2, 8.0, n))
            quals = np.sort(rng.uniform(15.0, 35.0, n))
            members.append([(float(r), float(q)) for r, q in zip(rates, quals, strict=True)])
        pooled = [p for m in members for p in m]
        hull = rd.operating_points(pooled)
        test = [(float(r), float(q)) for r, q in zip(np.sort(rng.uniform(0.2, 8.0, 4)),
                                                     np.sort(rng.uniform(15.0, 35.0, 4)), strict=True)]
        for m in members:
            front = rd.pareto_front(m)
            for q in np.linspace(front[0][1], front[-1][1], 25):
                pool = rd.rate_at(hull, q)
                if pool is None:   # below the pool's cheapest point, which is better and no dearer
                    assert q < hull[0][1] and hull[0][0] <= rd.rate_at(front, q) * (1 + 1e-9)
                else:
                    assert pool <= rd.rate_at(front, q) * (1 + 1e-9)
            bd_m, bd_pool = rd.bd_rate(m, test), rd.bd_rate(pooled, test)
            if bd_m is not None and bd_pool is not None and front[0][1] <= hull[0][1] and front[-1][1] >= hull[-1][1]:
                assert bd_pool >= bd_m - 1e-9   # same quality interval: the pool never flatters the test curve
