"""The whole-model throughput benchmark, on a tiny model (its figures are not checked, its plumbing is)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import benchmark_script


@pytest.fixture(scope="module")
def bench():
    return benchmark_script("model_throughput")


def test_models_are_large_enough_and_seeded(bench):
    assert sum(int(np.prod(s)) for _, s in bench.FULL_MODEL) >= 20_000_000
    a = bench.synthetic_model(bench.SMALL_MODEL[:3], seed=1)
    b = bench.synthetic_model(bench.SMALL_MODEL[:3], seed=1)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == np.float32 for k in a)


def test_coders_round_trip_a_tiny_model(bench):
    spec = (("conv.weight", (8, 4, 3, 3)), ("conv.bias", (8,)), ("fc.weight", (16, 256)),
            ("row.weight", (8, 64)))
    model = bench.synthetic_model(spec, seed=0)
    sinr = bench.SINRPolicy("cpu")
    for name, a in model.items():
        sinr.codec_for(name, a)
    assert [sinr.lossy(n) for n in model] == [True, False, True, True]
    assert sinr.decisions["fc.weight"].options["block_size"] == 32
    for coder, lossy in ((bench.Zstd19(), lambda _n: False), (sinr, sinr.lossy), (bench.Uniform8(sinr), sinr.lossy)):
        r = bench.run_coder(coder, model, "cpu", lossy)
        assert r["encode_s"] > 0 and r["decode_s"] > 0 and r["bytes"] > 0
        assert len(r["tensors"]) == len(model)
        if coder.name == "zstd19":
            assert r["rel_error"] == 0
        elif coder.name == "sinr":
            assert 0 < r["rel_error"] <= 0.02  # the codec's default bound, met by every vector
        else:  # 8 bits over each tensor's range of Gaussian values: 0.009 measured
            assert 0.004 < r["rel_error"] < 0.015


def test_machine_is_named(bench):
    m = bench.machine()
    for key in ("platform", "cpu", "cpu_count", "torch", "torch_threads", "numcodecs"):
        assert m[key]


def test_compare_layouts_reports_both_parts(bench, monkeypatch):
    monkeypatch.setattr(bench, "LAYOUTS", ((32, 256),))
    rows = bench.compare_layouts(sparsities=(0.25,))
    # 8 of 32 atoms per block of Gaussian rows, 8-bit values: 0.306 measured
    assert len(rows) == 1 and rows[0]["block"] == 32 and 0.25 < rows[0]["rel_error"] < 0.33
    assert rows[0]["omp_weights_per_s"] > 0 and rows[0]["write_weights_per_s"] > 0


def test_compare_layouts_out_names_the_machine(bench, monkeypatch, tmp_path, capsys):
    import json

    monkeypatch.setattr(bench, "LAYOUTS", ((32, 256),))
    monkeypatch.setattr(bench, "compare_layouts", lambda device, f=bench.compare_layouts: f((0.25,), device))
    out = tmp_path / "layouts.json"
    threads = torch.get_num_threads()
    try:
        bench.main(["--compare-layouts", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "results"} <= set(doc)
    assert doc["results"][0]["entropy"] == "pcodec" and doc["machine"]["torch_threads"] == 1
