"""Auto-tuning: the smallest stream reaching a target PSNR, searched for real or picked from results."""

from __future__ import annotations

import copy

import pytest

from sinr_adapters.framework.images import load_image
from sinr_adapters.framework.results import Result
from sinr_adapters.harness.tune import compress_to_target, smallest_meeting
from sinr_adapters.methods.coin import COINAdapter

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted():
    adapter = COINAdapter(width=16, layers=3)
    signal = adapter.signal_from_image(load_image("astronaut", 16), name="astronaut")
    model, _ = adapter.fit(signal, steps=200, lr=2e-3, progress=False, seed=0)
    return adapter, signal, model


def test_compress_to_target_returns_the_smallest_stream_that_meets_it(fitted):
    adapter, signal, model = fitted
    fitted_psnr = adapter.psnr(model, signal)
    target = fitted_psnr - 1.5
    res = compress_to_target(adapter, model, signal, target_psnr=target, sparsities=(0.2, 0.4, 0.7),
                             value_bits=(6, 8), device="cpu")
    assert res.data is not None and res.psnr >= target
    meeting = [t for t in res.tried if t["meets"]]
    assert len(res.data) == min(t["bytes"] for t in meeting)
    assert adapter.decode(res.data).shape == (16, 16, 3)
    # per value-bits, the search stops at the first sparsity that meets the target
    for vb in (6, 8):
        row = [t for t in res.tried if t["value_bits"] == vb]
        assert all(not t["meets"] for t in row[:-1])
    plain = compress_to_target(adapter, model, signal, target_psnr=target, sinr=False, bits=(4, 8, 16))
    assert plain.options["bits"] in (4, 8, 16) and plain.psnr >= target
    impossible = compress_to_target(adapter, copy.deepcopy(model), signal, target_psnr=fitted_psnr + 20,
                                    sparsities=(0.2,), value_bits=(6,), device="cpu")
    assert impossible.data is None and len(impossible.tried) == 1


def _r(method, with_sinr, nbytes, psnr, point="width=8"):
    return Result(method=method, with_sinr=with_sinr, signal="astronaut", config={},
                  sinr={"sparsity": 0.25, "value_bits": 8} if with_sinr else None, bytes=nbytes, elements=64,
                  bpp=nbytes * 8 / 64, psnr=psnr, psnr_fitted=psnr, fit_seconds=0, encode_seconds=0,
                  decode_seconds=0, steps=1, finetune_steps=0, device="cpu", extra={"point": point})


def test_smallest_meeting_picks_per_method_and_signal():
    results = [_r("coin", False, 100, 30.0), _r("coin", False, 80, 28.0), _r("coin", True, 70, 30.5),
               _r("coin", True, 50, 27.0)]
    (row,) = smallest_meeting(results, 29.0)
    assert (row["plain_bytes"], row["sinr_bytes"]) == (100, 70) and row["saving"] == pytest.approx(0.3)
    assert "s=0.25" in row["sinr_point"]
    (row,) = smallest_meeting(results, 31.0)
    assert row["plain_bytes"] is None and row["saving"] is None
