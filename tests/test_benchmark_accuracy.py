"""benchmarks/accuracy.py --out: every setting and the peer in one document that names its machine."""

from __future__ import annotations

import json

import pytest
import torch

from sinr_codecs import entropy

from .conftest import benchmark_script


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The scripts set torch's thread count; the rest of the suite keeps its own."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_out_writes_settings_summary_and_machine(tmp_path, capsys):
    bench = benchmark_script("accuracy")
    out = tmp_path / "accuracy.json"
    rows = bench.main(["--rows", "32", "--width", "64", "--quick", "--threads", "1", "--out", str(out)])
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "config", "summary", "results"} <= set(doc)
    assert doc["results"] == rows
    sinr = [r for r in rows if r["codec"] == "sinr"]
    assert [r["index_coding"] for r in sinr] == ["delta", "raw"]
    assert all(r["entropy"] in entropy.AUTO_CANDIDATES for r in sinr)  # the back end each stream records
    assert {r["codec"] for r in rows} == {"sinr", "uniform+brotli"}
    # the same code with sorted gaps is smaller than with raw indices, at the same error
    assert sinr[0]["rel_error"] == sinr[1]["rel_error"] and doc["summary"]["delta_vs_raw_saving_min"] > 0
    m = doc["machine"]
    assert m["cpu"] and m["torch_threads"] == 1 and len(m["load_average_1min"]) == 2
