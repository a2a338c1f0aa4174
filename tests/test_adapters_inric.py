"""INRICAdapter: positional encoding, 8-bit storage, theta0 / L1, INRIC+SINR, round trips, checkpoints."""

from __future__ import annotations

import copy
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_adapters.framework import container
from sinr_adapters.framework.images import load_image
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.methods.inric import INRICAdapter, INRICNet, load_inric_checkpoint
from sinr_codecs.errors import StreamError

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
    assert container.read_header(data)[0]["ref"] is not None
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


# ---- the published pipeline: AdaRound, Meta-SGD, rANS ---------------------------------------------
def test_adaround_lowers_the_quantized_mse(fitted):
    from sinr_adapters.rate_coding.adaround import adaround

    adapter, signal, model, _ = fitted
    names = ["net.net.1.0.weight", "net.net.2.0.weight"]
    sd = {k: v.detach() for k, v in model.state_dict().items()}

    def forward(rounded):
        return torch.func.functional_call(model, {**sd, **rounded}, (signal.coords,))

    res = adaround(forward, {k: sd[k] for k in names}, {k: 4 for k in names}, signal.values, steps=150)
    assert res.used and res.flipped > 0
    assert res.mse_adaround < 0.95 * res.mse_nearest
    for k in names:  # every value is on the quantizer's grid, within its range
        q = res.tensors[k] / res.steps[k]
        torch.testing.assert_close(q, torch.round(q), atol=1e-4, rtol=0)
        assert float(q.abs().max()) <= 7 + 1e-4
    # no steps: nearest rounding
    same = adaround(forward, {k: sd[k] for k in names}, {k: 4 for k in names}, signal.values, steps=0)
    assert not same.used and same.mse_adaround == same.mse_nearest


def test_adaround_in_the_stream(fitted):
    adapter, signal, model, _ = fitted
    with_ada = small(bits=5)
    data, info = with_ada.compress_with_info(copy.deepcopy(model), signal, progress=False)
    assert info["adaround"]["used"] and info["adaround"]["mse_adaround"] < info["adaround"]["mse_nearest"]
    plain = small(bits=5, adaround=False).compress(copy.deepcopy(model), signal, progress=False)
    # without fine-tuning, the stream holds exactly AdaRound's rounding: a better image than nearest rounding
    assert with_ada.psnr(with_ada.decompress(data).model, signal) > with_ada.psnr(
        with_ada.decompress(plain).model, signal) + 0.05


def test_meta_sgd_learns_rates_and_an_init_that_helps(tmp_path):
    imgs = [load_image(n, SIZE) for n in ("rocket", "chelsea", "motorcycle")]
    base = small()
    meta = base.meta_learn(imgs, outer_steps=40, outer_lr=1e-3, progress=False)
    lrs = meta.inner_lrs
    assert set(lrs) == set(meta.init) and all(v.shape[0] == 3 for v in lrs.values())
    assert any(float((v - 1e-5).abs().max()) > 1e-4 for v in lrs.values())  # the rates moved
    # on held-out images, a few steps from theta0 (inner loop + Adam) beat the same steps from a random init
    gains = []
    for name in ("coffee", "astronaut"):
        signal = base.signal_from_image(load_image(name, SIZE))
        fitted_meta, _ = meta.fit(signal, steps=10, lr=2e-3, progress=False)
        fitted_rand, _ = base.fit(signal, steps=10, lr=2e-3, progress=False)
        gains.append(meta.psnr(fitted_meta, signal) - base.psnr(fitted_rand, signal))
    assert min(gains) > 1.0, gains
    # the rates travel with theta0 in the .npz
    path = tmp_path / "theta0.npz"
    meta.save_init(path)
    again = INRICAdapter.from_init_file(path)
    assert all(torch.equal(again.inner_lrs[k], v) for k, v in lrs.items())
    with pytest.raises(ValueError, match="inner_lrs"):
        INRICAdapter(**base.config(), inner_lrs=lrs)


def test_first_order_meta_sgd_and_reptile_stay_reachable():
    imgs = [load_image(n, 8) for n in ("rocket", "chelsea")]
    base = small()
    fo = base.meta_learn(imgs, outer_steps=3, first_order=True, progress=False)
    assert fo.inner_lrs is not None
    rep = base.meta_learn(imgs, outer_steps=3, method="reptile", progress=False)
    assert rep.init is not None and rep.inner_lrs is None
    with pytest.raises(ValueError, match="method"):
        base.meta_learn(imgs, outer_steps=1, method="maml++")


@pytest.mark.parametrize("sinr", [None, SINROptions(sparsity=0.25)], ids=["plain", "sinr"])
def test_rans_stream_round_trip_and_corruption(fitted, sinr):
    adapter, signal, model, _ = fitted
    assert adapter.entropy == "rans"
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=sinr, finetune_steps=5,
                                            progress=False)
    dec = adapter.decompress(data)
    assert adapter.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-3)
    # bit-exact: the decoded tensors are the fine-tuned ones written (re-encoding gives the same bytes)
    other = small(entropy="brotli").compress(copy.deepcopy(model), signal, sinr=sinr, finetune_steps=5,
                                             progress=False)
    for k, v in small(entropy="brotli").decompress(other).model.state_dict().items():
        assert torch.equal(v, dec.model.state_dict()[k]), k

    def refix(body: bytes) -> bytes:  # a fresh CRC-32, so the integer section itself is what is checked
        return body + struct.pack("<I", zlib.crc32(body))

    body = data[:-4]
    start = len(body) - info["int_bytes"]
    for cut in range(start, len(body), max(1, (len(body) - start) // 20)):
        with pytest.raises(StreamError):
            adapter.decompress(refix(body[:cut]))
    rng = np.random.default_rng(0)
    refused = 0
    for i in rng.integers(start + 2, len(body), 40):
        mutated = bytearray(body)
        mutated[int(i)] ^= 0x5A
        try:
            adapter.decompress(refix(bytes(mutated)))
        except StreamError:
            refused += 1
    assert refused > 0


def test_entropy_is_in_the_stream_configuration(fitted):
    adapter, signal, model, _ = fitted
    for entropy in ("rans", "brotli"):
        a = small(entropy=entropy, adaround=False)
        data = a.compress(copy.deepcopy(model), signal, progress=False)
        assert container.read_header(data)[0]["config"][sorted(a.config()).index("entropy")] == entropy
        # any INRIC adapter reads it: the coder comes from the stream
        assert small(entropy="rans" if entropy == "brotli" else "brotli").decompress(data).shape == signal.shape
    with pytest.raises(ValueError, match="entropy"):
        small(entropy="zstd")


@pytest.mark.parametrize("name", ["inric_brotli", "inric_sinr_brotli"])
def test_streams_written_before_the_entropy_option_still_decode(name):
    """Streams of an 8-px image written when INRIC's integers were always Brotli-coded (no ``entropy`` key)."""
    folder = Path(__file__).parent / "fixtures" / "adapter_streams"
    data = (folder / f"{name}.stream").read_bytes()
    ad = INRICAdapter(hidden_features=8, hidden_layers=2, ff_dims=2)
    dec = ad.decompress(data)
    assert dec.header["config"] and len(dec.header["config"]) == len(ad.config()) - 1
    with torch.no_grad():
        pred = dec.model(ad.coordinates(dec.shape[:-1])).numpy()
    np.testing.assert_allclose(pred, np.load(folder / f"{name}.decoded.npy"), rtol=1e-5, atol=1e-6)
