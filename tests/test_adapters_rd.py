"""Rate–distortion arithmetic: Pareto fronts, interpolated rates, savings at equal PSNR, BD-rate."""

from __future__ import annotations

import pytest

from sinr_adapters import rd


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
