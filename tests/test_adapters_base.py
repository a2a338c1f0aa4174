"""The adapter-writer's API of sinr_adapters.base: stream helpers (write_varint, write_section, Reader),
the shared compression set-up (INRAdapter.prepare_compression / CompressionSetup) and SINR sections."""

from __future__ import annotations

import io

import pytest
import torch

from sinr_adapters import base
from sinr_adapters.base import (
    CompressionSetup,
    Reader,
    SINROptions,
    StreamError,
    sparse_tensor_from_bytes,
    write_section,
    write_varint,
)
from sinr_adapters.coin import COINAdapter
from sinr_adapters.coinpp import COINppAdapter
from sinr_adapters.shacira import SHACIRAAdapter

pytestmark = pytest.mark.usefixtures("one_thread")


def test_public_names_are_exported():
    for name in ("CompressionSetup", "Reader", "sparse_tensor_from_bytes", "write_section", "write_varint"):
        assert name in base.__all__
        assert getattr(base, name).__doc__


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
    assert setup.omp_seconds >= 0
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
    n = adapter.write_header(buf, (4, 5, 3), sinr=True, ref="0123456789abcdef")
    assert n == buf.tell()
    write_section(buf, b"")
    data = adapter.finish_stream(buf)
    header, pos, body, config = adapter.open_stream(data)
    assert header == {"method": "coin", "config": [v for _, v in sorted(adapter.config().items())],
                      "shape": (4, 5, 3), "sinr": True, "ref": "01234567"}
    assert pos == n and body == data[:-4] and config == adapter.config()
    assert Reader(body, pos).section() == b""
