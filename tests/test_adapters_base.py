"""The adapter-writer's API : stream helpers (write_varint,
write_section, Reader), the shared compression set-up (INRAdapter.prepare_compression / CompressionSetup),
SINR sections, SINROptions (validated as the codec validates), devices and the shared signal_from_image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from sinr_adapters.framework import container
from sinr_adapters.framework.container import Reader, write_section, write_varint
from sinr_adapters.framework.finetune import CompressionSetup
from sinr_adapters.framework.records import sparse_tensor_from_bytes
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.methods.coin import COINAdapter
from sinr_adapters.methods.coinpp.adapter import COINppAdapter
from sinr_adapters.methods.inric import INRICAdapter
from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter
from sinr_codecs.errors import StreamError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")])
def test_varint_is_leb128(n, encoded):
    buf = io.BytesIO()
    write_varint(buf, n)
    assert buf.getvalue() == encoded
    r = Reader(encoded)
    assert r.varint(limit=n) == n and r.pos == len(encoded)
    if n:
        with pytest.raises(StreamError, match="limit"):
            Reader(encoded).varint(limit=n - 1)
    with pytest.raises(ValueError):
        write_varint(io.BytesIO(), -1)


def test_sections_round_trip_and_bounds():
    buf = io.BytesIO()
    buf.write(b"xy")
    assert write_section(buf, b"") == 1
    assert write_section(buf, b"a" * 200) == 202
    data = buf.getvalue()
    r = Reader(data, 2)
    assert r.section() == b""
    assert r.section() == b"a" * 200
    assert r.pos == len(data)
    with pytest.raises(StreamError, match="truncated"):
        r.take(1)
    with pytest.raises(StreamError, match="truncated"):
        Reader(data[:-1], 3).section()
    with pytest.raises(StreamError, match="limit"):
        Reader(data, 3).section(limit=199)
    with pytest.raises(StreamError, match="malformed"):
        Reader(b"\xff" * 11).varint(limit=1 << 62)


def test_prepare_compression_without_sinr():
    adapter = COINAdapter(width=8, layers=2)
    torch.manual_seed(0)
    model = adapter.build_model()
    setup = adapter.prepare_compression(model, None)
    assert isinstance(setup, CompressionSetup)
    assert setup.names == list(model.state_dict()) and not setup.codes and setup.value_bits == 0
    assert list(setup.trainable) == setup.names
    for k, v in model.state_dict().items():
        t = setup.trainable[k]
        assert t.is_leaf and t.requires_grad and t.dtype == torch.float32
        assert torch.equal(setup.tensor(k, quantized=False), v)
        assert torch.equal(setup.tensor(k), v.half().float())  # COIN's storage: float16
        assert setup.specs[k] == ("h",)
    # the model is not modified, and the trainable tensors are copies
    with torch.no_grad():
        next(iter(setup.trainable.values())).add_(1.0)
    assert torch.equal(setup.state[setup.names[0]], model.state_dict()[setup.names[0]])


def test_prepare_compression_with_sinr_and_sections():
    adapter = COINAdapter(width=8, layers=3)
    torch.manual_seed(0)
    model = adapter.build_model()
    sinr = SINROptions(sparsity=0.5, value_bits=8, seed=5)
    setup = adapter.prepare_compression(model, sinr)
    coded = adapter.sinr_tensor_names(model)
    assert sorted(setup.codes) == sorted(coded) and setup.value_bits == 8
    assert setup.omp_seconds > 0  # OMP ran on the coded tensors
    for i, k in enumerate(n for n in setup.names if n in coded):
        code = setup.codes[k]
        assert code.seed == sinr.seed + i
        assert setup.trainable[k] is code.values and setup.trainable[k].requires_grad
        assert k not in setup.specs
        t = setup.tensor(k)
        assert t.shape == model.state_dict()[k].shape
        t.sum().backward()  # straight-through to the sparse values
        assert setup.trainable[k].grad is not None
        blob = setup.code_bytes(k)
        decoded = sparse_tensor_from_bytes(blob, t.shape, name=k)
        assert decoded.dtype == torch.float32 and decoded.device.type == "cpu"
        torch.testing.assert_close(decoded, t.detach(), rtol=0, atol=1e-6)
        with pytest.raises(StreamError, match=f"SINR section for {k!r} has shape"):
            sparse_tensor_from_bytes(blob, (1, *t.shape), name=k)
        with pytest.raises(StreamError):
            sparse_tensor_from_bytes(blob[:5], t.shape)


def test_the_last_coded_tensors_seed_must_stay_a_seed():
    """The i-th coded tensor uses seed + i: a first seed too close to 2**64 is refused before any OMP,
    with the largest seed that fits."""
    adapter = COINAdapter(width=8, layers=3)   # two SINR-coded tensors: seeds s and s + 1
    torch.manual_seed(0)
    model = adapter.build_model()
    top = 2 ** 64 - 1
    with pytest.raises(ValueError, match=rf"seed \+ 1 = {top + 1}.*use a seed <= {top - 1}"):
        adapter.prepare_compression(model, SINROptions(sparsity=0.5, seed=top, device="cpu"))
    setup = adapter.prepare_compression(model, SINROptions(sparsity=0.5, seed=top - 1, device="cpu"))
    assert sorted(c.seed for c in setup.codes.values()) == [top - 1, top]


def test_sinr_layout_hooks():
    auto, flat = SINROptions(), SINROptions(layout="flat")
    assert COINAdapter().sinr_layout("net.1.linear.weight", auto) == ("auto", None)
    assert COINppAdapter().sinr_layout("latents", auto) == ("rows", None)
    assert COINppAdapter().sinr_layout("latents", flat) == ("flat", None)
    sh = SHACIRAAdapter()
    assert sh.sinr_layout("grid.latents", auto) == ("blocks", 64)
    assert sh.sinr_layout("grid.latents", SINROptions(block_size=32)) == ("blocks", 32)
    assert sh.sinr_layout("mlp.0.weight", auto) == ("auto", None)


def test_finetune_learning_rate():
    a = COINAdapter()
    assert a.finetune_learning_rate(with_sinr=False) == a.default_finetune_lr
    assert a.finetune_learning_rate(with_sinr=True) == a.default_sinr_lr
    assert a.finetune_learning_rate(with_sinr=False, finetune_lr=0.5, sinr_lr=0.25) == 0.5
    assert a.finetune_learning_rate(with_sinr=True, finetune_lr=0.5, sinr_lr=0.25) == 0.25


def test_header_and_checksum_round_trip():
    adapter = COINAdapter(width=8, layers=2)
    buf = io.BytesIO()
    n = container.write_header(buf, adapter, (4, 5, 3), sinr=True, ref="0123456789abcdef")
    assert n == buf.tell()
    write_section(buf, b"")
    data = container.finish_stream(buf)
    header, pos, body, config = container.open_stream(adapter, data)
    assert header == {"method": "coin", "config": [v for _, v in sorted(adapter.config().items())],
                      "shape": (4, 5, 3), "sinr": True, "ref": "01234567"}
    assert pos == n and body == data[:-4] and config == adapter.config()
    assert Reader(body, pos).section() == b""


# --------------------------------------------------------------------------------------- SINROptions
@pytest.mark.parametrize("bad", [
    {"seed": -1}, {"seed": 2 ** 70}, {"seed": 1.5}, {"entropy": "zstd"}, {"index_coding": "huffman"},
    {"layout": "diagonal"}, {"value_bits": 1}, {"value_bits": 25}, {"sparsity": 0}, {"sparsity": 1.5},
    {"sparsity": True}, {"dictionary_ratio": 0.5}, {"dictionary_ratio": float("inf")}, {"block_size": 0},
    {"device": "tpu"},
])
def test_sinr_options_refuse_what_the_codec_refuses_with_its_message(bad):
    from sinr_codecs.codec import SINR

    with pytest.raises(ValueError) as codec:
        SINR(**bad)
    with pytest.raises(ValueError) as ours:
        SINROptions(**bad)
    assert str(ours.value) == str(codec.value)


def test_sinr_options_own_rules_and_canonical_values():
    o = SINROptions(sparsity=4, dictionary_ratio=8, value_bits=24, seed=2 ** 64 - 1, entropy=None, index_coding=None)
    assert (o.dictionary_ratio, o.value_bits, o.entropy, o.index_coding) == (8.0, 24, "auto", "delta")
    assert isinstance(o.dictionary_ratio, float) and o.to_dict()["seed"] == 2 ** 64 - 1
    with pytest.raises(ValueError, match="max_rel_error"):
        SINROptions(value_bits="auto")
    with pytest.raises(ValueError, match="needs block_size"):
        SINROptions(layout="blocks")
    assert SINROptions(layout="blocks", block_size=16).block_size == 16
    assert "seed + i" in SINROptions.__doc__ and "2..24" in SINROptions.__doc__


def test_sinr_values_of_24_bits_round_trip_through_an_adapter_stream():
    adapter = COINAdapter(width=8, layers=3)
    torch.manual_seed(0)
    model = adapter.build_model()
    sinr = SINROptions(sparsity=0.5, value_bits=24, device="cpu")
    setup = adapter.prepare_compression(model, sinr)
    name = adapter.sinr_tensor_names(model)[0]
    decoded = sparse_tensor_from_bytes(setup.code_bytes(name), setup.state[name].shape, name=name)
    torch.testing.assert_close(decoded, setup.tensor(name).detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(decoded, setup.tensor(name, quantized=False).detach(), rtol=0, atol=1e-5)


def test_adapters_resolve_devices_as_the_core_does():
    adapter = COINAdapter(width=8, layers=2)
    signal = adapter.signal_from_image(torch.rand(4, 4, 3).numpy())
    if torch.cuda.is_available():
        assert next(adapter.fit(signal, steps=1, device="cuda", progress=False)[0].parameters()).is_cuda
    else:
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            adapter.fit(signal, steps=1, device="cuda", progress=False)


@pytest.mark.parametrize("adapter, lo", [
    (COINAdapter(width=8, layers=2), 0.0),
    (INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2), -1.0),
    (COINppAdapter(width=8, layers=2, latent_dim=4, patch=4), 0.0),
    (SHACIRAAdapter(levels=2, base_resolution=2, finest_resolution=4, log2_table_size=4), 0.0),
], ids=["coin", "inric", "coinpp", "shacira"])
def test_signal_from_image_is_the_shared_one_on_each_methods_grid(adapter, lo):
    img = (np.arange(5 * 6 * 3) % 256).astype(np.uint8).reshape(5, 6, 3)
    s = adapter.signal_from_image(img, name="x")
    assert s.shape == (5, 6, 3) and s.name == "x" and s.value_range == (lo, 1.0)
    assert torch.equal(s.coords, adapter.coordinates((5, 6)))
    torch.testing.assert_close(s.unit_values(), torch.from_numpy(img.astype(np.float32) / 255.0))
