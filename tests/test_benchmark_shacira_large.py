"""benchmarks/shacira_large.py --out: the result names the machine it was measured on."""

from __future__ import annotations

import json

from .conftest import benchmark_script


def test_out_names_the_machine(tmp_path, capsys):
    bench = benchmark_script("shacira_large")
    out = tmp_path / "r.json"
    assert bench.main(["--quick", "--size", "32", "--tile", "16", "--steps", "5", "--finetune-steps", "1",
                       "--sparsity", "0.5", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    m = doc["machine"]
    assert m["cpu"] and m["cpu_count"] and m["torch"] and len(m["load_average_1min"]) == 2
    assert len(doc["results"]["bytes"]) == 3
