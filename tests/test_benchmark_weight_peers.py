"""benchmarks/weight_peers.py --json: the run as one document that names its machine."""

from __future__ import annotations

import json

import pytest

from .conftest import benchmark_script


def test_json_writes_points_summary_and_machine(tmp_path, capsys, monkeypatch, one_thread):
    bench = benchmark_script("weight_peers")

    def missing():
        raise ImportError(bench.NNCODEC_HINT)

    monkeypatch.setattr(bench, "nncodec_api", missing)
    out = tmp_path / "peers.json"
    rc = bench.main(["--size", "16", "--width", "16", "--layers", "2", "--steps", "20", "--coders",
                     "float16,uniform,sinr,nncodec", "--uniform-bits", "6,8", "--sparsity", "0.5",
                     "--value-bits", "8", "--json", str(out)])
    assert rc == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "config", "summary", "results"} <= set(doc)
    assert [p["coder"] for p in doc["results"]] == ["float16", "uniform", "uniform", "sinr"]
    assert doc["machine"]["cpu"] and doc["machine"]["nncodec_import"] is None
    assert doc["machine"]["versions"]["nncodec"] is None
    assert doc["summary"]["bits_per_weight_within_tolerance"]["float16"] == pytest.approx(16.0)
