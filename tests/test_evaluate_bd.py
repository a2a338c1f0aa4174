"""benchmarks/evaluate_bd.py: the named curves it pools from ``sinr evaluate`` results and their BD-rates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import benchmark_script


def _bench():
    return benchmark_script("evaluate_bd")


def _results(tmp_path: Path) -> Path:
    rows = []   # (label, point, bits, bpp, psnr)
    for width, scale in ((16, 1.0), (32, 2.0)):
        for bits, q in ((6, 26.0), (8, 28.0)):
            rows.append(("m", f"width={width},bits={bits}", bits, scale * bits / 4, q + 2 * scale))
        for lam, q in ((1e-3, 27.5), (1e-2, 25.5)):
            rows.append(("m rate-aware", f"width={width},lam={lam:g}", 8, scale * (q - 20) / 4, q + 2 * scale))
            rows.append(("m rate-aware+SINR", f"width={width},lam={lam:g}", 8, scale * (q - 20) / 3, q + 2 * scale))
    cols = {"method": [], "label": [], "signal": [], "extra": [], "config": [], "bpp": [], "psnr": []}
    for label, point, bits, bpp, psnr in rows:
        for k, v in (("method", "m"), ("label", label), ("signal", "a"), ("extra", {"point": point}),
                     ("config", {"bits": bits}), ("bpp", bpp), ("psnr", psnr)):
            cols[k].append(v)
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": cols}))
    return path


def test_curves_and_bd_rates(tmp_path, capsys):
    bench = _bench()
    assert bench.main([str(_results(tmp_path)), "--published-bits", "8"]) == 0
    out = json.loads(capsys.readouterr().out)["m a"]
    pts = out["points"]
    assert pts["published"] == [[2.0, 30.0], [4.0, 32.0]]          # only the method's own bits
    assert len(pts["bit search"]) == 4 and len(pts["best rate-aware"]) == 8
    assert len(pts["bit search | rate-aware"]) == 8
    bd = out["bd_rate_percent"]
    # rate-aware+SINR spends 4/3 the bits of rate-aware at every quality
    assert bd["rate-aware+SINR vs rate-aware"] == pytest.approx(100 / 3, abs=0.2)
    assert bd["+SINR vs bit search"] is None                          # no such curve in this run
