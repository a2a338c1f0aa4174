"""COINAdapter: fitting, COIN's own storage, COIN+SINR, round trips, byte accounting, checkpoints."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from sinr_adapters.framework import container
from sinr_adapters.framework.images import load_image
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.methods.coin import COINAdapter, COINSiren, load_coin_checkpoint
from sinr_codecs.errors import StreamError

SIZE = 24


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted():
    adapter = COINAdapter(width=16, layers=3)
    signal = adapter.signal_from_image(load_image("astronaut", SIZE), name="astronaut")
    model, log = adapter.fit(signal, steps=300, lr=2e-3, progress=False, seed=0)
    return adapter, signal, model, log


def test_configuration_and_stored_tensors():
    a = COINAdapter(width=8, layers=2)
    assert a.sinr_tensor_names(a.build_model()) == ["net.1.linear.weight"]
    with pytest.raises(ValueError):
        COINAdapter(width=0)
    with pytest.raises(ValueError, match="channels"):
        a.signal_from_image(torch.zeros(4, 4, 4).numpy())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        a.signal_from_image(torch.full((4, 4, 3), 2.0).numpy())


def test_psnr_rises_with_training(fitted):
    adapter, signal, model, log = fitted
    untrained = adapter.build_model()
    assert adapter.psnr(model, signal) > adapter.psnr(untrained, signal) + 8
    assert log.psnr[-1] > log.psnr[0] + 8
    assert max(log.psnr[len(log.psnr) // 2:]) > max(log.psnr[: len(log.psnr) // 4])


def test_plain_round_trip_and_byte_count(fitted):
    adapter, signal, model, _ = fitted
    before = adapter.psnr(model, signal)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, finetune_steps=10, progress=False)
    n_params = sum(p.numel() for p in model.parameters())
    # COIN's storage: every parameter at 16 bits, plus our header and an empty integer section (1 byte)
    assert len(data) == info["header_bytes"] + 2 * n_params + 1 + 4  # + CRC-32
    assert info["header_bytes"] < 48
    dec = adapter.decompress(data)
    assert dec.shape == (SIZE, SIZE, 3)
    after = adapter.psnr(dec.model, signal)
    assert after == pytest.approx(info["psnr_finetuned"], abs=1e-6)  # the stream holds what was tuned
    assert after > before - 0.2  # half precision costs (almost) nothing
    img = adapter.decode(data)
    assert img.shape == (SIZE, SIZE, 3)
    # bpp as COIN counts it (params * 16 / pixels) differs from ours only by the header
    assert 8 * len(data) / SIZE**2 - n_params * 16 / SIZE**2 == pytest.approx(8 * (info["header_bytes"] + 5) / SIZE**2)


def test_bits_baseline_quantizes_only_the_hidden_matrices(fitted):
    adapter, signal, model, _ = fitted
    assert "bits" not in adapter.config()  # COIN as published: its stream header is unchanged
    low = adapter.with_config({**adapter.config(), "bits": 8})
    assert low.config()["bits"] == 8
    assert [low.storage(n, None) for n in ("net.1.linear.weight", "net.1.linear.bias", "net.0.linear.weight")] \
        == [("q", 8), ("h",), ("h",)]
    plain = adapter.compress(copy.deepcopy(model), signal, progress=False)
    data, info = low.compress_with_info(copy.deepcopy(model), signal, finetune_steps=5, progress=False)
    assert len(data) < len(plain) - 16 * 16  # 256 weights at <= 8 bits instead of 16, Brotli on top
    dec = low.decompress(data)
    assert low.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-6)
    assert low.psnr(dec.model, signal) > adapter.psnr(model, signal) - 1.0
    with pytest.raises(ValueError, match="bits"):
        COINAdapter(bits=17)


def test_tensor_bits_store_each_tensor_at_its_own_width(fitted):
    adapter, signal, model, _ = fitted
    names = adapter.stored_names()
    assert names == list(model.state_dict())
    alloc = [16 if n.endswith("bias") else 6 for n in names]
    alloc[names.index("net.1.linear.weight")] = 3
    low = adapter.with_config({**adapter.config(), "tensor_bits": alloc})
    assert [low.storage(n, None) for n in names] == [("h",) if b == 16 else ("q", b) for b in alloc]
    data, info = low.compress_with_info(copy.deepcopy(model), signal, finetune_steps=5, progress=False)
    dec = low.decompress(data)
    assert low.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-6)
    w = dec.model.state_dict()["net.1.linear.weight"]
    assert len(torch.unique(w)) <= 2**3 - 1  # a 3-bit symmetric quantizer has 7 levels
    # an adapter with another allocation of the same length decodes it: the widths come from the stream
    other = adapter.with_config({**adapter.config(), "tensor_bits": [16] * len(names)})
    assert torch.equal(other.decompress(data).model.state_dict()["net.1.linear.weight"], w)
    with pytest.raises(ValueError, match="tensor_bits"):
        COINAdapter(width=16, layers=3, tensor_bits=[8] * 7)
    with pytest.raises(ValueError, match="tensor_bits"):
        COINAdapter(width=16, layers=3, tensor_bits=[1] + [8] * 7)
    with pytest.raises(ValueError, match="not both"):
        COINAdapter(width=16, layers=3, bits=8, tensor_bits=[8] * 8)


def test_sinr_round_trip(fitted):
    from sinr_codecs.sparse import SparseCode

    adapter, signal, model, _ = fitted
    plain = adapter.compress(copy.deepcopy(model), signal, finetune_steps=0, progress=False)
    opts = SINROptions(sparsity=0.25, value_bits=8)
    data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=0, progress=False)
    assert info["sinr_tensors"] == ["net.1.linear.weight", "net.2.linear.weight"]
    assert len(data) < len(plain)
    assert len(data) == info["header_bytes"] + info["sinr_bytes"] + info["int_bytes"] + 4 + 2 * sum(
        p.numel() for k, p in model.state_dict().items() if k not in info["sinr_tensors"])
    dec = adapter.decompress(data)
    assert dec.header["sinr"] is True
    assert adapter.psnr(dec.model, signal) == pytest.approx(info["psnr_finetuned"], abs=1e-3)
    # without fine-tuning the decoded weight is exactly OMP's code quantized at 8 bits
    w = model.state_dict()["net.1.linear.weight"]
    code = SparseCode.fit(w, sparsity=0.25, dictionary_ratio=8.0, seed=0, layout="auto", device="cpu")
    torch.testing.assert_close(dec.model.state_dict()["net.1.linear.weight"],
                               code.quantized(8).reconstruct(), atol=1e-6, rtol=1e-5)


def test_sinr_fine_tuning_pays(fitted):
    adapter, signal, model, _ = fitted
    opts = SINROptions(sparsity=0.25, value_bits=8)
    d0, i0 = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=0, progress=False)
    d1, i1 = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts, finetune_steps=60, progress=False)
    p0 = adapter.psnr(adapter.decompress(d0).model, signal)
    p1 = adapter.psnr(adapter.decompress(d1).model, signal)
    assert p1 > p0 + 1.0
    assert abs(len(d1) - len(d0)) < 0.1 * len(d0)  # same support, same number of values


def test_streams_of_another_method_or_type_are_refused(fitted):
    adapter, signal, model, _ = fitted
    data = adapter.compress(copy.deepcopy(model), signal, sinr=SINROptions(sparsity=8), progress=False)
    adapter.decompress(data)
    with pytest.raises(StreamError, match="magic"):
        adapter.decompress(b"XXXX" + data[4:])
    with pytest.raises(TypeError):
        adapter.decompress("not bytes")
    from sinr_adapters.methods.inric import INRICAdapter

    with pytest.raises(StreamError, match="coin"):
        INRICAdapter().decompress(data)


def test_oversized_stream_is_refused_before_allocation():
    import io

    from sinr_adapters.framework.container import write_varint

    buf = io.BytesIO()
    big = COINAdapter(width=10**6, layers=3)
    container.write_header(buf, big, (8, 8, 3), sinr=False, ref=None)
    write_varint(buf, 0)
    data = container.finish_stream(buf)
    with pytest.raises(StreamError, match="safety limit"):
        COINAdapter(width=8).decompress(data)


def _official_state_dict(width=12, layers=4, dim_in=2, dim_out=3):
    """A state_dict laid out as EmilienDupont/coin's siren.Siren writes it (built by hand)."""
    g = torch.Generator().manual_seed(3)
    sd = {}
    for i in range(layers):
        fan_in = dim_in if i == 0 else width
        sd[f"net.{i}.linear.weight"] = torch.randn(width, fan_in, generator=g) * 0.05
        sd[f"net.{i}.linear.bias"] = torch.randn(width, generator=g) * 0.05
    sd["last_layer.linear.weight"] = torch.randn(dim_out, width, generator=g) * 0.05
    sd["last_layer.linear.bias"] = torch.randn(dim_out, generator=g) * 0.05
    return sd


def test_checkpoint_in_official_layout(tmp_path):
    sd = _official_state_dict()
    path = tmp_path / "best_model_15.pt"
    torch.save(sd, path)
    adapter, model, report = load_coin_checkpoint(path)
    assert set(report.mapped) == set(sd) and report.missing == [] and report.unexpected == []
    assert adapter.config() == {"width": 12, "layers": 4, "w0": 30.0, "w0_initial": 30.0, "dim_in": 2, "dim_out": 3}
    for k, v in sd.items():
        assert torch.equal(model.state_dict()[report.mapped[k]], v)
    # the semantics, not just the names: sin(30 (W x + b)) per layer, linear output
    x = torch.rand(7, 2) * 2 - 1
    h = x
    for i in range(4):
        h = torch.sin(30.0 * (h @ sd[f"net.{i}.linear.weight"].T + sd[f"net.{i}.linear.bias"]))
    ref = h @ sd["last_layer.linear.weight"].T + sd["last_layer.linear.bias"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref)
    assert isinstance(model, COINSiren)


def test_checkpoint_mismatches_are_clear(tmp_path):
    sd = _official_state_dict()
    with pytest.raises(ValueError, match="unexpected"):
        load_coin_checkpoint({**sd, "extra.weight": torch.zeros(1)})
    _, _, report = load_coin_checkpoint({**sd, "extra.weight": torch.zeros(1)}, strict=False)
    assert report.unexpected == ["extra.weight"]
    bad = dict(sd)
    bad["net.2.linear.weight"] = torch.zeros(5, 5)
    with pytest.raises(ValueError, match="shape"):
        load_coin_checkpoint(bad)
    with pytest.raises(ValueError, match="not a COIN state_dict"):
        load_coin_checkpoint({"foo": torch.zeros(1)})
    wrapped = {f"module.{k}": v for k, v in sd.items()}  # saved from nn.DataParallel
    assert load_coin_checkpoint(wrapped)[2].missing == []
    import argparse

    path = tmp_path / "pickled.pt"
    torch.save({"args": argparse.Namespace(a=1), **sd}, path)
    with pytest.raises(pickle.UnpicklingError):  # weights_only=True: no arbitrary unpickling
        load_coin_checkpoint(path)


def test_fitted_model_reaches_reasonable_quality(fitted):
    adapter, signal, model, _ = fitted
    assert adapter.psnr(model, signal) > 18.0
    assert math.isfinite(adapter.psnr(model, signal))
