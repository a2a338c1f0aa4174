"""benchmarks/entropy_coders.py and entropy_inr.py --out: every back end measured, the machine named."""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import benchmark_script


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The scripts set torch's thread count; the rest of the suite keeps its own."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_entropy_coders_out(tmp_path, capsys):
    bench = benchmark_script("entropy_coders")
    out = tmp_path / "coders.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "config", "results"} <= set(doc)
    assert [r["section"] for r in doc["results"]] == ["gaps", "values"]
    for r in doc["results"]:
        for name in bench.CODERS:
            assert r[f"{name}_bps"] >= r["entropy_bps"] * 0.99
    assert doc["results"][0]["bound_bps"] > 0 and doc["config"]["brotli_quality"] > 0
    assert doc["machine"]["torch_threads"] == 1


def test_entropy_inr_out(tmp_path, capsys):
    bench = benchmark_script("entropy_inr")
    out = tmp_path / "inr.json"
    assert bench.main(["--images", "astronaut", "--widths", "8", "--size", "16", "--steps", "5",
                       "--sparsity", "0.5", "--value-bits", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "config", "summary", "results"} <= set(doc)
    (row,) = doc["results"]
    assert all(row[f"{b}_sinr_bytes"] > 0 for b in bench.BACKENDS)
    assert [s["backend"] for s in doc["summary"]] == list(bench.BACKENDS[1:])
