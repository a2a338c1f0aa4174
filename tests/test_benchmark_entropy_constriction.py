"""benchmarks/entropy_constriction.py: the core's back ends measured, the machine named, the page's tables
printed from the committed JSON (its figures are not re-measured here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sinr_codecs import entropy

from .conftest import benchmark_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    return benchmark_script("entropy_constriction")


@pytest.fixture(scope="module")
def committed(bench):
    return json.loads(bench.RESULTS.read_text())


def test_every_table_line_of_the_page_is_rendered_from_the_committed_json(bench, committed):
    page = (ROOT / "docs" / "entropy-coders.md").read_text().splitlines()
    rendered = [line for line in bench.markdown(committed["results"]).splitlines() if line]
    missing = [line for line in rendered if line not in page]
    assert not missing, "docs/entropy-coders.md differs from --render of the committed JSON: " + missing[0]


def test_committed_result_names_its_machine_and_measures_the_cores_back_ends(committed):
    m = committed["machine"]
    assert {"platform", "cpu", "cpu_count", "python", "numpy", "torch", "torch_threads", "load_average_1min"} <= set(m)
    assert {"brotli", "pcodec", "constriction"} <= set(m["versions"])
    assert f"Brotli q{entropy.BROTLI_QUALITY}" in committed["description"], "Brotli quality changed: rerun"
    assert all({"rans", "brotli", "pcodec"} <= set(r) for r in committed["results"])


def test_measure_counts_every_byte_of_the_cores_back_ends(bench):
    pytest.importorskip("constriction")
    a = np.random.default_rng(0).integers(-40, 40, 3000).astype(np.int16)
    row = bench.measure(a, 1)
    for name, backend in bench.BACKENDS:
        assert row[name]["bytes"] == len(entropy.compress(a, backend))
        assert row[name]["bps"] == round(8 * row[name]["bytes"] / a.size, 4)
    assert row["entropy_bps"] <= min(row[c]["bps"] for c in bench.CODERS)


def test_machine_is_measured(bench):
    m = bench.machine([1.0, None])
    assert m["cpu"] and m["cpu_count"] and m["load_average_1min"] == [1.0, None]
    assert m["versions"]["pcodec"] and m["versions"]["brotli"]
