"""benchmarks/rate_distortion.py --json: a harness run as a benchmarks/results document with its machine."""

from __future__ import annotations

import json

from .conftest import benchmark_script


def test_option_is_taken_out_of_the_arguments():
    bench = benchmark_script("rate_distortion")
    assert bench._option(["--a", "1", "--json", "x.json", "--b"], "--json") == (["--a", "1", "--b"], "x.json")
    assert bench._option(["--json=y.json", "--out", "d"], "--json") == (["--out", "d"], "y.json")
    assert bench._option(["--out", "d1", "--out=d2"], "--out") == ([], "d2")


def test_result_document_has_rows_and_the_machine(tmp_path):
    bench = benchmark_script("rate_distortion")
    run = {"name": "sinr-evaluate", "description": "d", "results": {"method": ["a", "a+sinr"], "bytes": [10, 8]},
           "summary": [], "sinr_savings": [], "config": {"threads": 1}, "environment": {}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(run))
    doc = bench.result_document(path, "modalities_x", [1.0, 2.0])
    assert doc["name"] == "modalities_x" and doc["results"] == [{"method": "a", "bytes": 10},
                                                                 {"method": "a+sinr", "bytes": 8}]
    assert doc["machine"]["cpu"] and doc["machine"]["torch_threads"] == 1
    assert doc["machine"]["load_average_1min"] == [1.0, 2.0]
