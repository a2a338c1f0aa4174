"""benchmarks/omp_speed.py --out: every case in one document that names its machine."""

from __future__ import annotations

import json

from .conftest import benchmark_script


def test_out_writes_the_cases_and_the_machine(tmp_path, capsys):
    bench = benchmark_script("omp_speed")
    out = tmp_path / "omp.json"
    rows = bench.main(["--case", "16,64,4", "--n", "64", "--repeats", "1", "--sklearn-seconds", "0.01",
                       "--threads", "1", "--out", str(out)])
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "config", "results"} <= set(doc)
    assert doc["results"] == rows and doc["results"][0]["case"] == [16, 64, 4]
    m = doc["machine"]
    assert m["cpu"] and m["cpu_count"] and m["torch_threads"] == 1 and len(m["load_average_1min"]) == 2
