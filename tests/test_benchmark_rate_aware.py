"""benchmarks/rate_aware.py: every result names its machine (merged ones each input's); the committed merged
result is consistent with its points (its figures are not re-measured here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from .conftest import benchmark_script


@pytest.fixture(scope="module")
def bench():
    return benchmark_script("rate_aware")


def _run(path: Path, machine, image: str = "astronaut") -> str:
    points = [{"path": p, "image": image, "width": 16, "bytes": 100 * (i + 1), "bpp": 0.2 * (i + 1) + s,
               "psnr": 20.0 + 2 * i + s} for p, s in (("qat", 0.0), ("rate-aware", 0.05)) for i in range(4)]
    doc = {"name": "rate_aware", "description": "test run", "config": {"images": [image]}, "results": points}
    if machine is not None:
        doc["machine"] = machine
    path.write_text(json.dumps(doc))
    return str(path)


def test_merge_lists_each_input_with_its_machine(bench, tmp_path):
    m = {"cpu": "x", "cpu_count": 2}
    doc = bench.merge([_run(tmp_path / "a.json", m), _run(tmp_path / "b.json", m, "camera")])
    assert doc["machine"] == m
    assert [(i["file"], i["machine"], i["points"]) for i in doc["merged"]] == [("a.json", m, 8), ("b.json", m, 8)]
    assert len(doc["results"]) == 16 and "rate-aware vs qat" in doc["bd_rate"]
    other = bench.merge([_run(tmp_path / "a.json", m), _run(tmp_path / "c.json", {"cpu": "y", "cpu_count": 4})])
    assert "several" in other["machine"] and other["merged"][1]["machine"]["cpu"] == "y"
    # runs on one machine under different loads: one machine, each input's load kept with it
    loaded = bench.merge([_run(tmp_path / "a.json", {**m, "load_average_1min": [1.0, 2.0]}),
                          _run(tmp_path / "d.json", {**m, "load_average_1min": [3.0, 4.0]})])
    assert loaded["machine"] == {**m, "load_average_1min": "per input, in merged[].machine"}
    assert loaded["merged"][1]["machine"]["load_average_1min"] == [3.0, 4.0]


def test_merge_refuses_an_input_without_a_machine(bench, tmp_path):
    with pytest.raises(SystemExit, match="names no machine"):
        bench.merge([_run(tmp_path / "a.json", {"cpu": "x"}), _run(tmp_path / "b.json", None)])


def test_main_merge_writes_the_machine(bench, tmp_path, capsys):
    out = tmp_path / "merged.json"
    assert bench.main(["--merge", _run(tmp_path / "a.json", {"cpu": "x"}), "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["machine"] == {"cpu": "x"}


def test_machine_is_measured(bench):
    m = bench.machine([0.5, 0.7])
    assert m["cpu"] and m["cpu_count"] and m["python"] and m["load_average_1min"] == [0.5, 0.7]


def test_committed_bd_rates_are_those_of_its_points(bench):
    data = json.loads((Path(bench.__file__).parent / "results" / "rate_aware.json").read_text())
    assert data["machine"]
    images = list(dict.fromkeys(p["image"] for p in data["results"]))
    again = json.loads(json.dumps(bench.bd_rates(data["results"], images)))

    def same(a, b) -> bool:
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a is None and b is None or a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12)

    assert same(again, data["bd_rate"])


def test_a_tiny_run_writes_its_points_and_machine(bench, tmp_path, capsys, one_thread):
    out = tmp_path / "run.json"
    assert bench.main(["--images", "astronaut", "--widths", "8", "--size", "16", "--steps", "5",
                       "--finetune-steps", "2", "--bits", "6", "--lams", "1e-3", "--sparsity", "0.5",
                       "--dictionary-ratio", "2", "--no-seeded", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert doc["machine"]["cpu"] and len(doc["machine"]["load_average_1min"]) == 2
    assert [p["path"] for p in doc["results"]] == ["coin", "qat", "rate-aware", "rate-aware+SINR"]
    assert doc["results"][-1]["sinr_bits"] > 0 == doc["results"][-2]["sinr_bits"]
