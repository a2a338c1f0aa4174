"""benchmarks/weight_peers.py: its coders round-trip with the bytes they report (no NNCodec needed)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import benchmark_script


def _bench():
    return benchmark_script("weight_peers")


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def mlp():
    """A tiny random MLP state_dict (2 -> 64 -> 64 -> 3), SIREN-like scales."""
    rng = np.random.default_rng(0)
    shapes = {"net.0.linear.weight": (64, 2), "net.0.linear.bias": (64,), "net.1.linear.weight": (64, 64),
              "net.1.linear.bias": (64,), "last_layer.linear.weight": (3, 64), "last_layer.linear.bias": (3,)}
    return {k: (rng.standard_normal(s) * 0.05).astype(np.float32) for k, s in shapes.items()}


def _rel(bench, sd, dec):
    assert list(dec) == list(sd)
    for k in sd:
        assert dec[k].shape == sd[k].shape and dec[k].dtype == np.float32
    return bench.relative_error(sd, dec)


def test_float16_round_trip(bench, mlp):
    data = bench.encode_float16(mlp)
    assert len(data) == 2 * bench.count_weights(mlp)
    assert bench.bits_per_weight(data, mlp) == 16.0
    assert _rel(bench, mlp, bench.decode_float16(data, bench.template_of(mlp))) < 1e-3


def test_uniform_round_trip_and_rate(bench, mlp):
    template = bench.template_of(mlp)
    errors, sizes = [], []
    for bits in (3, 4, 6, 8, 10, 12):
        data = bench.encode_uniform(mlp, bits)
        dec = bench.decode_uniform(bytes(data), template)  # only the reported bytes
        # the decoded values are exactly the quantizer's levels
        for k, v in mlp.items():
            step = np.float32(np.abs(v).max() / (2 ** (bits - 1) - 1))
            q = np.clip(np.rint(v / step), -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
            np.testing.assert_array_equal(dec[k], (q * step).astype(np.float32))
        errors.append(_rel(bench, mlp, dec))
        sizes.append(len(data))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3
    assert sizes == sorted(sizes)
    assert bench.bits_per_weight(bench.encode_uniform(mlp, 8), mlp) < 8.5


def test_sinr_round_trip_and_rate(bench, mlp):
    template = bench.template_of(mlp)
    names = ["net.1.linear.weight"]
    errors, sizes = [], []
    for sparsity, value_bits in ((0.25, 6), (0.5, 8), (0.75, 10)):
        data = bench.encode_sinr(mlp, names, sparsity=sparsity, value_bits=value_bits)
        dec = bench.decode_sinr(bytes(data), template, names)
        for k in mlp:  # the tensors SINR leaves alone are float16
            if k not in names:
                np.testing.assert_array_equal(dec[k], mlp[k].astype(np.float16).astype(np.float32))
        errors.append(_rel(bench, mlp, dec))
        sizes.append(len(data))
    assert errors == sorted(errors, reverse=True)
    assert sizes == sorted(sizes)
    with pytest.raises(KeyError):
        bench.encode_sinr(mlp, ["nope"], sparsity=0.5, value_bits=8)


def test_summary_interpolates_on_the_pareto_front(bench):
    pts = [{"bits_per_weight": 2.0, "psnr": 20.0}, {"bits_per_weight": 4.0, "psnr": 30.0},
           {"bits_per_weight": 3.0, "psnr": 19.0},  # dominated: ignored
           {"bits_per_weight": 6.0, "psnr": 32.0}]
    assert [p["bits_per_weight"] for p in bench.pareto_front(pts)] == [2.0, 4.0, 6.0]
    assert bench.bits_within(pts, 25.0) == pytest.approx(3.0)
    assert bench.bits_within(pts, 31.0) == pytest.approx(5.0)
    assert bench.bits_within(pts, 10.0) == 2.0
    assert bench.bits_within(pts, 40.0) is None


def test_main_without_nncodec_runs_tiny(bench, tmp_path, capsys, monkeypatch):
    def missing():
        raise ImportError("no nncodec here")

    monkeypatch.setattr(bench, "nncodec_api", missing)  # whether or not this environment has it
    rc = bench.main(["--size", "16", "--width", "16", "--layers", "2", "--steps", "20",
                     "--uniform-bits", "6,8", "--sparsity", "0.5", "--value-bits", "8", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert bench.NNCODEC_HINT in out.splitlines()  # one clear line, and the rest still runs
    import json

    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [p["coder"] for p in lines[:-1]] == ["float16", "uniform", "uniform", "sinr"]
    assert "summary" in lines[-1]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert len(doc["points"]) == 4 and doc["coders"] == ["float16", "uniform", "sinr"]
    assert (tmp_path / "rd.png").stat().st_size > 0
