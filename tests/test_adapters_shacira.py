"""SHACIRAAdapter and the hash grid: interpolation, fitting with the entropy penalty, integer latents and
their coders, SHACIRA + SINR (MLP, and MLP + latent tables), round trips, byte accounting."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from sinr_adapters.framework.container import Reader
from sinr_adapters.framework.images import load_image
from sinr_adapters.framework.quantizers import ste_round
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter
from sinr_adapters.methods.shacira.coding import rans_decode, rans_encode
from sinr_adapters.methods.shacira.hashgrid import PRIMES, HashGrid, grid_resolutions
from sinr_codecs.errors import StreamError

from .conftest import benchmark_script

SIZE = 16


pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kw) -> SHACIRAAdapter:
    return SHACIRAAdapter(**{"levels": 4, "base_resolution": 2, "finest_resolution": SIZE, "log2_table_size": 6,
                             "hidden": 16, **kw})


@pytest.fixture(scope="module")
def fitted():
    adapter = small()
    signal = adapter.signal_from_image(load_image("astronaut", SIZE), name="astronaut")
    model, log = adapter.fit(signal, steps=200, device="cpu", progress=False)
    return adapter, signal, model, log


# --------------------------------------------------------------------------------------- hash grid
def test_grid_geometry():
    assert grid_resolutions(4, 2, 16) == [2, 4, 8, 16]
    assert grid_resolutions(1, 5, 50) == [5]
    g = HashGrid(dim=2, levels=4, base_resolution=2, finest_resolution=16, log2_table_size=6)
    assert g.table_sizes == [9, 25, 64, 64] and g.hashed == [False, False, True, True]
    assert g.latents.shape == (9 + 25 + 64 + 64, 1) and g.offsets[-1] == g.num_entries


def test_dense_level_interpolates_vertices_and_cells():
    g = HashGrid(dim=2, levels=2, base_resolution=4, finest_resolution=8, log2_table_size=8, features=2,
                 init_range=1.0)
    n = 4  # level 0: dense, 5 x 5 vertices, row index = i + 5 j
    table = g.latents.detach()[g.level_slice(0)]
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    x = torch.stack((i, j), -1).reshape(-1, 2).float() / n
    out = g(x)[:, 0]
    torch.testing.assert_close(out, table[(i + (n + 1) * j).reshape(-1)])  # at vertices: the entries
    # inside a cell: bilinear in the four corners
    p = torch.tensor([[0.3, 0.6]])
    u, v = p[0] * n
    i0, j0 = int(u), int(v)
    a, b = float(u - i0), float(v - j0)
    def e(ii, jj):
        return table[ii + (n + 1) * jj]

    want = ((1 - a) * (1 - b) * e(i0, j0) + a * (1 - b) * e(i0 + 1, j0) + (1 - a) * b * e(i0, j0 + 1)
            + a * b * e(i0 + 1, j0 + 1))
    torch.testing.assert_close(g(p)[0, 0], want)


def test_hashed_level_and_gradients():
    g = HashGrid(dim=2, levels=1, base_resolution=30, finest_resolution=30, log2_table_size=5, init_range=1.0)
    assert g.hashed == [True]
    x = torch.tensor([[2 / 30, 7 / 30]])  # a vertex: one corner carries all the weight
    h = (2 * PRIMES[0]) ^ (7 * PRIMES[1])
    torch.testing.assert_close(g(x)[0, 0], g.latents.detach()[h % 32])
    rows, w = g.corners(0, torch.rand(50, 2))
    torch.testing.assert_close(w.sum(1), torch.ones(50))
    assert int(rows.min()) >= 0 and int(rows.max()) < 32
    xr = torch.rand(20, 2, requires_grad=True)
    g(xr).pow(2).sum().backward()
    assert g.latents.grad is not None and g.latents.grad.abs().sum() > 0
    assert xr.grad is not None and torch.isfinite(xr.grad).all()
    t = torch.tensor([0.4, -1.6], requires_grad=True)
    ste_round(t).sum().backward()
    assert torch.equal(ste_round(t).detach(), torch.tensor([0.0, -2.0])) and torch.equal(t.grad, torch.ones(2))


# ----------------------------------------------------------------------------------------- coders
def test_rans_round_trip_and_corruption():
    rng = np.random.default_rng(0)
    levels = [np.round(rng.laplace(0, s, n)).astype(np.int64) for s, n in ((0.2, 9), (1.0, 25), (3.0, 500))]
    levels.append(np.full(7, 5, dtype=np.int64))  # a single symbol
    blob = rans_encode(levels)
    out = rans_decode(Reader(blob), [len(q) for q in levels])
    for a, b in zip(out, levels, strict=True):
        np.testing.assert_array_equal(a, b)
    entropy = sum(-(c * np.log2(c / c.sum())).sum() for c in (np.unique(q, return_counts=True)[1] for q in levels)) / 8
    assert len(blob) < entropy + 120  # the tables cost a few bytes per symbol
    with pytest.raises(StreamError):
        rans_decode(Reader(blob[:-3]), [len(q) for q in levels])
    wide = rans_encode([np.arange(5000)])  # a wide alphabet is fine (binned model), but not beyond +-32767
    np.testing.assert_array_equal(rans_decode(Reader(wide), [5000])[0], np.arange(5000))
    with pytest.raises(StreamError):
        rans_decode(Reader(rans_encode([np.array([0, 40000])])), [2])


# ------------------------------------------------------------------------------------------ adapter
def test_configuration_and_stored_tensors():
    a = small()
    model = a.build_model()
    assert a.tensor_names(model) == ["grid.latents", "decoder.weight", "decoder.bias", "mlp.0.weight", "mlp.0.bias",
                                     "mlp.2.weight", "mlp.2.bias", "mlp.4.weight", "mlp.4.bias"]
    assert small(sinr_latents=True).sinr_tensor_names(model)[0] == "grid.latents"
    with pytest.raises(ValueError):
        small(entropy="zip")
    with pytest.raises(ValueError):
        small(mlp_bits=24)


def test_fitting_improves_and_rate_penalty_bites(fitted):
    adapter, signal, model, log = fitted
    assert adapter.psnr(model, signal) > adapter.psnr(adapter.build_model(), signal) + 8
    assert log.psnr[-1] > log.psnr[0] + 8
    lat = model.grid.latents.detach()
    assert float(lat.abs().max()) > 0.5  # latents moved off zero
    heavy, _ = small(rate_weight=0.05).fit(signal, steps=200, device="cpu", progress=False)
    assert float(heavy.rate_bits().detach()) < 0.8 * float(model.rate_bits().detach())


@pytest.mark.parametrize("entropy", ["auto", "rans", "brotli"])
def test_plain_round_trip_and_byte_count(fitted, entropy):
    adapter, signal, model, _ = fitted
    adapter = SHACIRAAdapter(**{**adapter.config(), "entropy": entropy})
    before = adapter.psnr(model, signal)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, finetune_steps=0, progress=False)
    assert len(data) == info["header_bytes"] + info["latent_bytes"] + info["float_bytes"] + info["checksum_bytes"]
    n_float = sum(v.numel() for k, v in model.state_dict().items()
                  if k != "grid.latents" and not k.startswith("prior."))
    assert info["float_bytes"] == 4 * n_float  # decoder + MLP at 32 bits, as SHACIRA counts them
    if entropy != "auto":
        assert info["latent_coder"] == entropy
    dec = adapter.decompress(data)
    assert dec.shape == (SIZE, SIZE, 3) and dec.header["sinr"] is False
    torch.testing.assert_close(dec.model.grid.latents, torch.round(model.grid.latents.detach()))
    after = adapter.psnr(dec.model, signal)
    assert after == pytest.approx(info["psnr_finetuned"], abs=1e-5)
    assert after == pytest.approx(before, abs=1e-4)  # latents were already rounded; floats stored exactly
    assert adapter.decode(data).shape == (SIZE, SIZE, 3)


def test_half_precision_mlp(fitted):
    adapter, signal, model, _ = fitted
    half = SHACIRAAdapter(**{**adapter.config(), "mlp_bits": 16})
    data, info = half.compress_with_info(copy.deepcopy(model), signal, finetune_steps=5, progress=False)
    assert half.psnr(half.decompress(data).model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-5)


def test_integer_mlp_baseline(fitted):
    """mlp_bits < 16: the decoder and MLP as per-tensor uniform integers (the harness's fair baseline)."""
    adapter, signal, model, _ = fitted
    full = adapter.compress(copy.deepcopy(model), signal, progress=False)
    q8 = SHACIRAAdapter(**{**adapter.config(), "mlp_bits": 8})
    data, info = q8.compress_with_info(copy.deepcopy(model), signal, finetune_steps=5, progress=False)
    assert len(data) < len(full) and info["float_bytes"] < 0.5 * (len(full) - info["latent_bytes"])
    dec = q8.decompress(data)
    assert q8.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-4)
    assert q8.psnr(dec.model, signal) > adapter.psnr(model, signal) - 1.5
    bad = bytearray(data)
    bad[info["header_bytes"] + info["latent_bytes"]] ^= 0x7F  # the first tensor's bit count
    with pytest.raises(StreamError):
        q8.decompress(bytes(bad))


@pytest.mark.parametrize("sinr_latents", [False, True])
def test_sinr_round_trip(fitted, sinr_latents):
    adapter, signal, model, _ = fitted
    adapter = SHACIRAAdapter(**{**adapter.config(), "sinr_latents": sinr_latents})
    plain = adapter.compress(copy.deepcopy(model), signal, progress=False)
    opts = SINROptions(sparsity=0.5, value_bits=8)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=0, progress=False)
    expected = ["mlp.0.weight", "mlp.2.weight", "mlp.4.weight"] + (["grid.latents"] if sinr_latents else [])
    assert info["sinr_tensors"] == sorted(expected)
    parts = ("header_bytes", "sinr_bytes", "latent_bytes", "float_bytes", "checksum_bytes")
    assert len(data) == sum(info[p] for p in parts)
    assert (info["latent_bytes"] == 0) == sinr_latents
    if not sinr_latents:
        assert len(data) < len(plain)  # 8-bit sparse MLP matrices vs 32-bit floats
    dec = adapter.decompress(data)
    assert dec.header["sinr"] is True and dec.model.round_latents is (not sinr_latents)
    assert adapter.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-3)
    d1, _ = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=30, progress=False)
    assert adapter.psnr(adapter.decompress(d1).model, signal) >= adapter.psnr(dec.model, signal) - 1e-6


def test_streams_of_another_method_are_refused(fitted):
    adapter, signal, model, _ = fitted
    data = adapter.compress(copy.deepcopy(model), signal, progress=False)
    from sinr_adapters.methods.coin import COINAdapter

    with pytest.raises(StreamError, match="shacira"):
        COINAdapter().decompress(data)


def _bench():
    return benchmark_script("shacira_large")


def test_large_image_benchmark_runs_tiny(tmp_path, capsys):
    bench = _bench()
    mosaic = bench.mosaic(40, tile=16)
    assert mosaic.shape == (40, 40, 3) and mosaic.dtype == np.float32
    out = tmp_path / "r.json"
    rc = bench.main(["--quick", "--size", "32", "--tile", "16", "--steps", "20", "--finetune-steps", "2",
                     "--sparsity", "0.5", "--out", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "| shacira |" in table and "shacira+sinr" in table
    import json

    doc = json.loads(out.read_text())
    assert doc["name"] == "shacira-large" and len(doc["results"]["bytes"]) == 3
    assert all(math.isfinite(p) for p in doc["results"]["psnr"])
