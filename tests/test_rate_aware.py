"""Rate-aware compression: the Laplace rate model and the rANS stream it estimates, and a round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sinr_adapters.framework import container
from sinr_adapters.framework.images import load_image
from sinr_adapters.framework.quantizers import ste_round
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.methods.coin import COINAdapter
from sinr_adapters.rate_coding import rate_aware as ra
from sinr_adapters.rate_coding import stream as rate_stream
from sinr_adapters.rate_coding.rate import actual_bits, laplace_bits
from sinr_adapters.rate_coding.sensitivity import diagonal_fisher, high_rate_steps
from sinr_codecs.errors import StreamError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_laplace_bits_is_a_distribution_with_gradients():
    q = torch.arange(-60, 61, dtype=torch.float64)  # every probability above the 2**-30 floor
    log_b = torch.tensor(math.log(3.0), dtype=torch.float64, requires_grad=True)
    bits = laplace_bits(q, log_b)
    assert abs(float((2.0 ** -bits.detach()).sum()) - 1.0) < 1e-5  # the probabilities (nearly) sum to one
    bits.sum().backward()
    assert log_b.grad is not None and torch.isfinite(log_b.grad)
    x = torch.tensor([0.0, 1.0, -4.0, 7.3], requires_grad=True)
    laplace_bits(ste_round(x), torch.tensor(0.5)).sum().backward()
    assert torch.all(torch.isfinite(x.grad)) and x.grad[1] > 0 and x.grad[2] < 0  # rate pulls towards zero


def test_estimated_bits_match_rans_on_laplace_integers():
    rng = np.random.default_rng(0)
    b = 4.0
    q = np.round(rng.laplace(0.0, b, size=20000)).astype(np.int64)
    est = float(laplace_bits(torch.from_numpy(q).double(), torch.tensor(math.log(b), dtype=torch.float64)).sum())
    act = actual_bits(q)
    assert abs(act - est) / est < 0.02, (est, act)


@pytest.fixture(scope="module")
def tiny():
    adapter = COINAdapter(width=8, layers=2)
    signal = adapter.signal_from_image(load_image("astronaut", 16), name="astronaut")
    model, _ = adapter.fit(signal, steps=30, lr=2e-3, progress=False, seed=0)
    return adapter, signal, model


@pytest.mark.parametrize("sinr", [None, SINROptions(sparsity=0.5, value_bits=8)])
def test_round_trip(tiny, sinr):
    adapter, signal, model = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data, info = ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=5), sinr=sinr)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # model untouched
    assert info["bytes"] == len(data)
    out = rate_stream.decode(adapter, data)
    assert out.shape == signal.shape
    ref = signal.unit_values().numpy().reshape(out.shape)
    mse = float(np.mean((np.round(np.clip(out, 0, 1) * 255) / 255 - ref) ** 2))
    assert math.isfinite(info["psnr_finetuned"])
    assert abs(10 * math.log10(1 / mse) - info["psnr_finetuned"]) < 1e-3  # decoder sees what training saw
    with pytest.raises(StreamError):
        rate_stream.decode(adapter, data[:-1])
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(StreamError):
        rate_stream.decode(adapter, bytes(bad))


def test_every_seed_sinr_options_accept_decodes(tiny):
    """Dictionary seeds up to 2**64 - 1 (what SINROptions and the codec accept) round-trip."""
    adapter, signal, model = tiny
    sinr = SINROptions(sparsity=0.5, value_bits=8, seed=2 ** 64 - 1, device="cpu")
    data, info = ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=2), sinr=sinr)
    dec = rate_stream.decompress(adapter, data)
    assert abs(adapter.psnr(dec.model, signal) - info["psnr_finetuned"]) < 1e-3


@pytest.mark.parametrize("sinr", [None, SINROptions(sparsity=0.5, value_bits=8, seed=7, device="cpu")])
def test_stream_reads_as_docs_format_adapters_specifies_it(tiny, sinr):
    """Walk an SRA2 stream by the layout in docs/format-adapters.md: every byte is accounted for, and every
    SINR record is a stream the core's reader accepts."""
    import struct
    import zlib

    from sinr_adapters.framework.container import Reader
    from sinr_codecs import bitstream

    adapter, signal, model = tiny
    data, _ = ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=2), sinr=sinr)
    assert data[:4] == b"SRA2" and struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    flags = data[4]
    assert not flags & 2 and bool(flags & 1) == (sinr is not None) and not flags & ~7
    _, hlen = container.read_header(data[5:-4])
    assert data[5:9] == b"SIA1"
    r = Reader(data[:-4], 5 + hlen)
    names = adapter.tensor_names(model)
    coded = set(adapter.sinr_tensor_names(model)) if sinr is not None else set()
    for k in names:
        kind = r.u8("kind")
        assert kind == (1 if k in coded else 0)
        if kind == 1:
            stream = bitstream.read(r.section(what="SINR record"))
            assert stream.seed in (7, 8) and stream.backend in ("rans", "brotli", "pcodec", "raw")
            assert stream.layout.shape == model.state_dict()[k].shape
            continue
        r.take(4, "step")
        if not flags & 4:
            assert r.section(what="values")[:1] in (b"\x00", b"\x01")
    if flags & 4:
        assert r.section(what="joint values")[:1] in (b"\x00", b"\x01")
    assert r.pos == len(data) - 4


def test_sinr_records_meet_the_cores_limits(tiny):
    """A rate-aware SINR record is read by the core's reader, so the core's dictionary limit applies to it."""
    from sinr_codecs.limits import limits_set_to

    adapter, signal, model = tiny
    sinr = SINROptions(sparsity=0.5, value_bits=8, device="cpu")
    data, _ = ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=1), sinr=sinr)
    rate_stream.decompress(adapter, data)
    with limits_set_to(max_dictionary_entries=16), pytest.raises(StreamError, match="max_dictionary_entries"):
        rate_stream.decompress(adapter, data)


def test_seeded_residual_round_trip(tiny):
    adapter, signal, _ = tiny
    init, stds = ra.seeded_init(adapter, 3)
    again, _ = ra.seeded_init(adapter, 3)
    assert all(torch.equal(a, b) for a, b in zip(init.state_dict().values(), again.state_dict().values(), strict=True))
    model, _ = adapter.fit(signal, steps=10, progress=False, model=init)
    data, info = ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=3), seed=3, stds=stds)
    dec = rate_stream.decompress(adapter, data)
    assert math.isfinite(adapter.psnr(dec.model, signal))
    assert abs(adapter.psnr(dec.model, signal) - info["psnr_finetuned"]) < 1e-3
    with pytest.raises(ValueError):
        ra.compress(adapter, model, signal, ra.RateAwareOptions(lam=1e-3, steps=1), seed=3)


def test_diagonal_fisher_matches_the_gauss_newton_diagonal_of_a_linear_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64)
    exact = 2.0 / 40 * (x ** 2).sum(0)
    (est,) = diagonal_fisher(lambda p: x @ p[0], [w], probes=4000)
    assert torch.allclose(est, exact, rtol=0.1), (est, exact)
    steps = high_rate_steps([1.0, 4.0], 1e-3, 100)
    assert abs(steps[0] ** 2 * 1.0 - steps[1] ** 2 * 4.0) < 1e-15  # step**2 * F equal across tensors
    assert abs(steps[0] ** 2 - 12e-3 / (100 * math.log(2))) < 1e-15


@pytest.mark.parametrize("step_init", ["fisher", "fisher-relative"])
def test_fisher_step_initialisation(tiny, step_init):
    adapter, signal, model = tiny
    opts = ra.RateAwareOptions(lam=1e-3, steps=0, step_init=step_init)
    data, info = ra.compress(adapter, model, signal, opts)
    fisher, steps = info["mean_fisher"], info["steps"]
    assert set(fisher) == set(steps) and all(f > 0 for f in fisher.values())
    prod = [steps[k] ** 2 * fisher[k] for k in steps]
    # equal wherever the step is not clamped to [max|v| / 2**15, 2 max|v|] (clamped ones: biases of tiny nets)
    assert np.median(prod) > 0 and sum(abs(p / np.median(prod) - 1) < 1e-3 for p in prod) >= len(prod) // 2
    assert rate_stream.decode(adapter, data).shape == signal.shape
    with pytest.raises(ValueError):
        ra.RateAwareOptions(lam=1e-3, step_init="nope")


@pytest.mark.parametrize("accept", ["better", "always"])
def test_support_refinement_round_trip(tiny, accept):
    adapter, signal, model = tiny
    opts = ra.RateAwareOptions(lam=1e-3, steps=4, refine_every=2, refine_accept=accept)
    data, info = ra.compress(adapter, model, signal, opts, sinr=SINROptions(sparsity=0.5, value_bits=8))
    counts = info["support_refinements"]
    assert counts["tried"] == 2 * len(adapter.sinr_tensor_names(model))  # at steps 2 and 4, per coded tensor
    assert counts["accepted"] == counts["tried"] if accept == "always" else counts["accepted"] <= counts["tried"]
    dec = rate_stream.decompress(adapter, data)  # the stream holds the support that was kept
    assert abs(adapter.psnr(dec.model, signal) - info["psnr_finetuned"]) < 1e-3
    with pytest.raises(ValueError):
        ra.RateAwareOptions(lam=1e-3, refine_accept="sometimes")


def test_value_sections_take_the_parametric_model_when_it_is_smaller():
    from sinr_adapters.rate_coding.rate import LaplaceModel, laplace_freqs
    from sinr_adapters.rate_coding.stream import code_values, decode_values
    from sinr_codecs import rans

    rng = np.random.default_rng(1)
    q = np.round(rng.laplace(0.0, 3.0, size=300)).astype(np.int64)
    blob = code_values(q)
    assert blob[0] == 1 and len(blob) < 1 + len(rans.encode(q))  # no table: smaller than rANS's own
    assert np.array_equal(decode_values(blob, q.size, "t"), q)
    f = laplace_freqs(-5, 9, 0, 40000, 12)  # exact integers: the decoder rebuilds the same table
    assert f.min() >= 1 and f.sum() == 4096 and f.argmax() == 5
    assert np.array_equal(f, laplace_freqs(-5, 9, 0, 40000, 12))
    assert LaplaceModel.fit(np.full(7, 3)) is None  # one value: rANS's single-value layout is smaller
    assert decode_values(code_values(np.full(7, 3)), 7, "t").tolist() == [3] * 7
    bad = bytearray(blob)
    bad[1:3] = b"\xff\xff"  # the model's minimum: a varint running on into the range field
    with pytest.raises(StreamError):
        decode_values(bytes(bad), q.size, "t")
    with pytest.raises(StreamError):
        decode_values(blob[:-3], q.size, "t")


@pytest.mark.parametrize("shape", [(8, 16), (64, 64)])
def test_sinr_record_takes_the_smallest_back_end(shape):
    """A SINR record is the smallest of the core's back ends, and reads back to the integers it was given."""
    from dataclasses import replace

    from sinr_codecs import bitstream
    from sinr_codecs.sparse import SparseCode

    w = torch.from_numpy(np.random.default_rng(3).normal(size=shape).astype(np.float32))
    code = SparseCode.fit(w, sparsity=0.25, device="cpu")
    step = float(code.values.abs().max()) / 100
    q = np.rint(code.values.numpy() / step).astype(np.int64)
    q[np.arange(q.shape[1])[None, :] >= code.counts.numpy()[:, None]] = 0
    blob = rate_stream.sinr_section(code, q, step)
    stream = bitstream.read(blob)
    sizes = {b: len(bitstream.write(replace(stream.content(), backend=b))) for b in ("rans", "brotli", "pcodec", "raw")}
    assert len(blob) == min(sizes.values())
    back = stream.content()  # delta index coding stores each support sorted, its integers along
    x, y = np.zeros((q.shape[0], code.k2), np.int64), np.zeros((q.shape[0], code.k2), np.int64)
    for i, n in enumerate(code.counts.tolist()):
        x[i, code.indices[i, :n].numpy()] = q[i, :n]
        y[i, back.indices[i, :n]] = back.q[i, :n]
    assert np.array_equal(x, y)
