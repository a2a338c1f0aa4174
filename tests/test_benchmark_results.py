"""docs/benchmark-results.md is rendered from the committed benchmarks/results/*.json and kept current."""

from __future__ import annotations

from pathlib import Path

from .conftest import benchmark_script

ROOT = Path(__file__).resolve().parent.parent


def _renderer():
    return benchmark_script("render_results")


def test_results_page_is_current():
    r = _renderer()
    assert sorted(r.RESULTS.glob("*.json")), "no committed benchmark results"
    stale = "docs/benchmark-results.md is stale: run python benchmarks/render_results.py"
    assert r.PAGE.read_text() == r.render(), stale


def test_every_result_names_its_machine():
    import json

    for path in sorted(_renderer().RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        assert {"name", "description", "machine", "results"} <= set(data), path.name
        assert data["machine"], path.name
