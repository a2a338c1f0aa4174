"""INRICAdapter: positional encoding, 8-bit storage, theta0 / L1, INRIC+SINR, round trips, checkpoints."""

from __future__ import annotations

import copy
import math
import zipfile

import numpy as np
import pytest
import torch

from sinr_adapters.base import SINROptions, StreamError
from sinr_adapters.images import load_image
from sinr_adapters.inric import INRICAdapter, INRICNet, load_inric_checkpoint

SIZE = 16


pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kw) -> INRICAdapter:
    return INRICAdapter(**{"hidden_features": 16, "hidden_layers": 2, "ff_dims": 4, **kw})


@pytest.fixture(scope="module")
def fitted():
    adapter = small()
    signal = adapter.signal_from_image(load_image("coffee", SIZE), name="coffee")
    model, log = adapter.fit(signal, steps=250, lr=2e-3, progress=False)
    return adapter, signal, model, log


def test_conventions(fitted):
    adapter, signal, model, log = fitted
    assert signal.value_range == (-1.0, 1.0)
    assert float(signal.values.min()) >= -1 and float(signal.values.max()) <= 1
    torch.testing.assert_close(signal.coords[0], torch.tensor([-1.0, -1.0]))
    assert list(model.state_dict()) == [f"net.net.{i}.0.{p}" for i in range(4) for p in ("weight", "bias")]
    assert model.state_dict()["net.net.0.0.weight"].shape == (16, 2 + 2 * 2 * 4)


def test_psnr_rises_with_training(fitted):
    adapter, signal, model, log = fitted
    assert adapter.psnr(model, signal) > adapter.psnr(adapter.build_model(), signal) + 8
    assert log.psnr[-1] > log.psnr[0] + 8


def test_plain_round_trip_8_bit(fitted):
    adapter, signal, model, _ = fitted
    before = adapter.psnr(model, signal)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, finetune_steps=10, progress=False)
    dec = adapter.decompress(data)
    after = adapter.psnr(dec.model, signal)
    assert after == pytest.approx(info["psnr_finetuned"], abs=1e-4)
    assert after > before - 3.0  # 8-bit per-tensor quantization costs a little (here ~2 dB at ~40 dB)
    n_tensors = len(model.state_dict())
    assert len(data) == info["header_bytes"] + 5 * n_tensors + info["int_bytes"] + info["checksum_bytes"]
    # every decoded tensor takes at most 2**8 - 1 distinct values
    for k, v in dec.model.state_dict().items():
        assert len(torch.unique(v)) <= 255, k
    d7 = small(bits=7).compress(copy.deepcopy(model), signal, progress=False)
    assert len(d7) < len(data)


def test_sinr_round_trip(fitted):
    adapter, signal, model, _ = fitted
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=SINROptions(sparsity=0.25),
                                            finetune_steps=30, progress=False)
    assert info["sinr_tensors"] == ["net.net.1.0.weight", "net.net.2.0.weight"]
    dec = adapter.decompress(data)
    assert adapter.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-3)
    assert len(data) == (info["header_bytes"] + info["sinr_bytes"] + 5 * (len(model.state_dict()) - 2)
                         + info["int_bytes"] + info["checksum_bytes"])


def test_l1_shrinks_the_update():
    signal = small().signal_from_image(load_image("coffee", SIZE))
    sizes = []
    for l1 in (0.0, 1e-3):
        a = small(l1=l1)
        model, _ = a.fit(signal, steps=80, lr=2e-3, progress=False, seed=1)
        sizes.append(sum(float(p.detach().abs().sum()) for p in model.parameters()))
    assert sizes[1] < sizes[0]


def test_meta_learned_init(tmp_path, fitted):
    adapter, _, _, _ = fitted
    imgs = [load_image(n, SIZE) for n in ("rocket", "chelsea")]
    meta = adapter.meta_learn(imgs, outer_steps=6, inner_steps=3, progress=False)
    assert meta.reference() is not None and adapter.reference() is None
    # theta0 moved away from the random initialisation it started from
    torch.manual_seed(0)
    start = adapter.build_model().state_dict()
    assert any(not torch.equal(start[k], v) for k, v in meta.init.items())
    # fitting starts from theta0; the stream stores theta - theta0
    signal = meta.signal_from_image(load_image("coffee", SIZE))
    model, _ = meta.fit(signal, steps=40, lr=2e-3, progress=False)
    data, info = meta.compress_with_info(copy.deepcopy(model), signal, finetune_steps=5, progress=False)
    assert meta.read_header(data)[0]["ref"] is not None
    dec = meta.decompress(data)
    assert meta.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-4)
    # theta0 saved without pickle and read back; the stream decodes with it, not with another
    path = tmp_path / "theta0.npz"
    meta.save_init(path)
    with zipfile.ZipFile(path) as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    np.load(path, allow_pickle=False).close()
    again = INRICAdapter.from_init_file(path)
    assert again.config() == meta.config()
    assert meta.psnr(again.decompress(data).model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-4)
    with pytest.raises(StreamError, match="reference weights"):
        adapter.decompress(data)
    other = adapter.meta_learn(imgs[:1], outer_steps=2, inner_steps=2, progress=False, seed=5)
    with pytest.raises(StreamError, match="reference weights"):
        other.decompress(data)
    with pytest.raises(StreamError, match="reference weights"):
        meta.decompress(adapter.compress(copy.deepcopy(model), signal, progress=False))
    with pytest.raises(ValueError, match="no meta-learned"):
        adapter.save_init(tmp_path / "none.npz")


def _official_state_dict(width=10, hidden_layers=3, ff_dims=16, out=3):
    """A state_dict laid out as inr_based_compression's modules.INRNet writes it (built by hand)."""
    g = torch.Generator().manual_seed(7)
    fan_in = 2 * (1 + 2 * ff_dims)
    sd = {}
    dims = [fan_in] + [width] * (hidden_layers + 1) + [out]
    for i in range(hidden_layers + 2):
        sd[f"net.net.{i}.0.weight"] = torch.randn(dims[i + 1], dims[i], generator=g) * 0.02
        sd[f"net.net.{i}.0.bias"] = torch.randn(dims[i + 1], generator=g) * 0.02
    return sd


def test_checkpoint_in_official_layout(tmp_path):
    sd = _official_state_dict()
    path = tmp_path / "model_best_.pth"
    torch.save(sd, path)
    adapter, model, report = load_inric_checkpoint(path)
    assert set(report.mapped) == set(sd) and not report.missing and not report.unexpected
    assert (adapter.hidden_features, adapter.hidden_layers, adapter.ff_dims) == (10, 3, 16)
    assert isinstance(model, INRICNet)
    x = torch.rand(5, 2) * 2 - 1
    enc = [x]
    for i in range(16):
        for j in range(2):
            arg = 1.4 ** i * math.pi * x[:, j:j + 1]
            enc += [torch.sin(arg), torch.cos(arg)]
    h = torch.cat(enc, dim=1)
    for i in range(5):
        h = h @ sd[f"net.net.{i}.0.weight"].T + sd[f"net.net.{i}.0.bias"]
        if i < 4:
            h = torch.sin(30.0 * h)
    with torch.no_grad():
        torch.testing.assert_close(model(x), h, atol=1e-4, rtol=1e-3)
    # the loaded model compresses like a fitted one
    signal = adapter.signal_from_image(load_image("astronaut", 8))
    data = adapter.compress(model, signal, progress=False)
    assert adapter.decompress(data).shape == (8, 8, 3)


def test_checkpoint_errors():
    with pytest.raises(ValueError, match="not an INRIC"):
        load_inric_checkpoint({"net.0.linear.weight": torch.zeros(2, 2)})
    sd = _official_state_dict()
    sd["net.net.0.0.weight"] = torch.zeros(10, 65)
    with pytest.raises(ValueError, match="fan-in"):
        load_inric_checkpoint(sd)
