"""benchmarks/weights_vs_nncodec.py: its fronts, BD ratios and monotonicity checks on made-up sweeps."""

from __future__ import annotations

import math

import pytest

from .conftest import benchmark_script


@pytest.fixture(scope="module")
def bench():
    return benchmark_script("weights_vs_nncodec")


def row(method, knob, task, out, size):
    ours = method != "nncodec"
    return {"network": "net", "method": method, "max_rel_error": knob if ours else None, "qp": None if ours else knob,
            "task_error": task, "output_rel_error": out, "bytes_coded": size, "bytes_store": size + 100}


def test_front_keeps_only_undominated_points(bench):
    assert bench.pareto([(100, 1.0), (120, 1.2), (150, 0.5), (90, math.nan), (80, 0.0)]) == [(100, 1.0), (150, 0.5)]


def test_bd_ratio_of_a_front_scaled_in_bytes(bench):
    peer = [(100.0, 1.0), (200.0, 0.5), (400.0, 0.25)]
    ours = [(b * 0.9, m) for b, m in peer]
    bd = bench.bd_ratio(ours, peer)
    assert bd["bd"] == pytest.approx(0.9) and bd["worst"] == pytest.approx(0.9)
    assert bench.bd_ratio(ours, peer, ceiling=0.2) is None  # no overlap under the ceiling


def test_monotonicity_of_both_knobs_and_both_metrics(bench):
    ours = [row("global", e, t, o, b) for e, t, o, b in
            ((0.1, 1.0, 0.1, 100), (0.05, 1.2, 0.05, 150), (0.02, 0.3, 0.02, 250), (0.01, math.nan, 0.01, 400))]
    bad = bench.monotonicity(ours)
    assert [(v["looser"]["max_rel_error"], v["tighter"]["max_rel_error"]) for v in bad] == [(0.1, 0.05), (0.02, 0.01)]
    assert bench.monotonicity(ours, "output_rel_error") == []
    peer = [row("nncodec", qp, t, o, b) for qp, t, o, b in ((-10, 1.0, 0.2, 100), (-20, 0.5, 0.3, 200))]
    assert [v["tighter"]["qp"] for v in bench.monotonicity(peer, "output_rel_error")] == [-20]
    summary = bench.summarize(ours + peer)["net"]
    assert len(summary["global"]["monotonicity_violations"]) == 2
    assert len(summary["nncodec"]["output_monotonicity_violations"]) == 1
    assert "output error" in bench.table(bench.summarize(ours + peer))


def test_pairs_two_fold_apart_and_the_default_against_the_front(bench):
    ours = [row("global", e, t, o, b) for e, t, o, b in
            ((0.08, 1.0, 0.08, 100), (0.04, 1.1, 0.04, 150), (0.02, 0.5, 0.02, 250), (0.01, 0.3, 0.01, 400))]
    two = bench.monotone_pairs(ours)
    assert two["pairs"] == 3 + 2 + 1 and [v["finer"] for v in two["violations"]] == [0.04]  # 0.08 -> 0.04 only
    assert bench.monotone_pairs(ours, "output_rel_error")["violations"] == []
    assert bench.default_on_front(ours)["bytes_over_front"] == pytest.approx(1.0)
    better = row("uniform", 0.03, 0.5, 0.03, 200)  # the default's task error for fewer bytes
    worse = bench.default_on_front([*ours, better])
    assert worse["bytes_over_front"] == pytest.approx(1.25) and worse["bytes_over_output_front"] == pytest.approx(1.0)


def test_summarize_recomputes_a_results_file(bench, tmp_path, capsys):
    import json

    rows = [row("global", e, t, o, b) for e, t, o, b in ((0.04, 1.0, 0.04, 100), (0.02, 0.5, 0.02, 200))]
    rows += [row("nncodec", qp, t, o, b) for qp, t, o, b in ((-10, 1.2, 0.05, 90), (-20, 0.4, 0.01, 260))]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"name": "weights_vs_nncodec", "results": rows, "summary": {}}))
    assert bench.main(["--summarize", str(path), "--out", str(path)]) == 0
    summary = json.loads(path.read_text())["summary"]["net"]
    assert summary["global"]["vs_nncodec_coded"]["bd"] > 0
    assert summary["default"]["bytes_over_front"] == pytest.approx(1.0)
    assert "the default (global, 0.02)" in capsys.readouterr().out
