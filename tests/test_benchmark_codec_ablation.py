"""benchmarks/codec_ablation.py --out: the families' needed bits and every point, with the machine."""

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


def test_base_is_the_codecs_default():
    bench = benchmark_script("codec_ablation")
    from sinr_codecs import SINR

    assert bench.BASE["entropy"] == SINR().entropy and bench.BASE["value_bits"] == SINR().value_bits
    families = bench.families(quick=True)
    assert "entropy=brotli" in families and f"entropy={bench.BASE['entropy']}" not in families


def test_out_writes_summary_points_and_machine(tmp_path, capsys):
    bench = benchmark_script("codec_ablation")
    out = tmp_path / "ablation.json"
    assert bench.main(["--source", "gaussian", "--rows", "16", "--width", "32", "--quick", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "config", "results", "points"} <= set(doc)
    assert doc["results"][0]["family"].startswith("base") and doc["results"][-1]["family"].startswith("peer")
    assert {"20dB", "30dB", "40dB"} == set(doc["results"][0]["bits_per_weight_needed"])
    assert len(doc["points"]) >= 2 * len(doc["results"]) - 2
    assert doc["machine"]["cpu"] and len(doc["machine"]["load_average_1min"]) == 2
