"""Hostile inputs to the codec: crafted streams, lying stores, extreme values, configs from metadata.

Every stream here is a few dozen bytes with a valid checksum; none of the bombs is allocated.
"""

from __future__ import annotations

import contextlib
import json
import struct
import tracemalloc
import zlib

import brotli
import numcodecs
import numpy as np
import pytest
import zarr

from sinr_codecs import SINR
from sinr_codecs.cursor import varint
from sinr_codecs.dictionary import GENERATOR_ID
from sinr_codecs.errors import StreamError
from sinr_codecs.limits import DEFAULT_MAX_DICTIONARY_ENTRIES, get_limits, limits_set_to, set_limits
from sinr_codecs.zarr3 import CODEC_NAME, SINRCodec

from .conftest import gaussian

CPU = dict(device="cpu")


def craft(shape, *, dtype=2, layout=0, k1=None, mode=0, bits=8, granularity=0, backend=0, k2=None,
          s_max=0, counts_kind=0, coding=1, sections=()) -> bytes:
    """A stream with any header and sections, sealed with a valid checksum."""
    k1 = shape[-1] if k1 is None else k1
    head = bytearray(b"SINR\x01")
    head.append(dtype)
    head += varint(len(shape)) + b"".join(varint(d) for d in shape)
    head.append(layout)
    head += varint(k1)
    head += bytes([mode, bits, granularity, backend])
    if mode == 0:
        head += varint(k1 + 1 if k2 is None else k2) + bytes([GENERATOR_ID]) + varint(0) + varint(s_max)
        head += bytes([counts_kind, coding])
    for s in sections:
        head += varint(len(s)) + s
    return bytes(head) + struct.pack("<I", zlib.crc32(head))


def refuses(data: bytes, match: str | None = None, budget: int = 16 << 20) -> StreamError:
    """``SINR().decode(data)`` raises a StreamError (matching ``match``) having allocated less than ``budget``
    bytes (Python's and numpy's allocations, traced): refused before the work, not after it."""
    tracemalloc.start()
    try:
        with pytest.raises(StreamError, match=match) as info:
            SINR().decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < budget, f"{peak / 2**20:.1f} MiB allocated before refusing"
    return info.value


def decode_traced(data: bytes) -> tuple[np.ndarray, int]:
    """``SINR().decode(data)`` and the peak bytes tracemalloc saw meanwhile (Python's and numpy's allocations)."""
    tracemalloc.start()
    try:
        out = SINR().decode(data)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- declared sizes ---------------------------------------------------------------------------------
def test_declared_output_beyond_the_limit_is_refused_before_allocating():
    # 2**32 float32 elements (16 GiB) in 41 bytes
    e = refuses(craft((1 << 20, 1 << 12)), "max_output_bytes")
    assert type(e) is StreamError  # not a MemoryError
    # just above a lowered limit, just below it is read
    ok = SINR(sparsity=4, **CPU).encode(gaussian((8, 64)))
    with limits_set_to(max_output_bytes=8 * 64 * 4 - 1):
        refuses(ok, "max_output_bytes")
    with limits_set_to(max_output_bytes=8 * 64 * 4):
        assert SINR().decode(ok).shape == (8, 64)


def test_huge_dictionary_is_refused_in_the_decoder_and_the_encoder():
    refuses(craft((4, 4096), k2=1 << 19, s_max=1), "max_dictionary_entries")  # 2**31 entries
    refuses(craft((2, 64), k2=(1 << 24)), "max_dictionary_entries")
    w = gaussian((4, 256))
    with pytest.raises(ValueError, match="max_dictionary_entries"):  # OMP's blocks of 64: 64 x 2**20 entries
        SINR(layout="rows", dictionary_size=1 << 20, **CPU).encode(w)
    with pytest.raises(ValueError, match="max_dictionary_entries"):  # fixed sparsity codes the rows of 256
        SINR(layout="rows", sparsity=8, dictionary_size=1 << 18, **CPU).encode(w)
    # a config read from a store is held to the same cap
    with limits_set_to(max_dictionary_entries=1 << 20), pytest.raises(ValueError, match="max_dictionary_entries"):
        numcodecs.get_codec({"id": "sinr", "dictionary_size": 1 << 20})
    with pytest.raises(ValueError, match="dictionary_size"):
        numcodecs.get_codec({"id": "sinr", "dictionary_size": 1 << 25})
    # opting in, in the encoder and the decoder alike
    cfg = dict(layout="rows", sparsity=2, dictionary_size=1 << 10, **CPU)
    with limits_set_to(max_dictionary_entries=256 * 1024):
        enc = SINR(**cfg).encode(w)
        assert SINR().decode(enc).shape == w.shape
    with limits_set_to(max_dictionary_entries=256 * 1024 - 1):
        refuses(enc, "max_dictionary_entries")


def test_auto_layout_keeps_wide_rows_within_the_dictionary_cap():
    w = gaussian((2, 4096))
    with limits_set_to(max_dictionary_entries=1 << 20):
        enc = SINR(sparsity=0.1, **CPU).encode(w)
        assert SINR().decode(enc).shape == w.shape
    assert get_limits().max_dictionary_entries == DEFAULT_MAX_DICTIONARY_ENTRIES


def test_rans_run_and_zero_counts_and_brotli_bomb_cost_only_what_is_declared():
    # one rANS run of a single symbol declared for 2**24 symbols behind a small declared output limit
    run = b"\x00" + varint(0) + varint((1 << 24) - 1)
    with limits_set_to(max_output_bytes=1 << 20):
        refuses(craft((1 << 12, 1 << 12), backend=2, s_max=1, sections=(run,)), "max_output_bytes")
    # a Brotli zero bomb in a section is cut at the size the header promises
    bomb = brotli.compress(b"\x00" * (64 << 20), quality=1)
    steps, values = brotli.compress(np.ones(1, "<f8").tobytes()), brotli.compress(bytes(8))
    refuses(craft((4, 64), backend=1, s_max=2, sections=(bomb, steps, values)), "more bytes than the header promises")


def test_zero_counts_with_a_large_s_max_decode_in_bounded_memory():
    n, k1 = 1024, 512  # 1 MiB of float16 output, s_max = k1 - 1, every count zero
    counts = brotli.compress(np.zeros(n, "<u2").tobytes(), quality=11)
    empty = brotli.compress(b"", quality=11)
    steps = brotli.compress(np.ones(1, "<f8").tobytes(), quality=11)
    data = craft((n, k1), dtype=1, backend=1, s_max=k1 - 1, counts_kind=1,
                 sections=(counts, empty, steps, empty))
    SINR().decode(data)  # the dictionary (one, allowed on top) is generated and cached
    out, peak = decode_traced(data)
    assert out.shape == (n, k1) and out.dtype == np.float16 and not out.any()
    # numpy allocations stay within a few times the 1 MiB output (an expanded int64 (n, s_max)
    # array alone would be 4 MiB)
    assert peak < 3 * out.nbytes + (1 << 20), peak


def test_decoding_needs_one_dictionary_not_two(monkeypatch):
    from sinr_codecs import dictionary

    # a 64-element output whose stream refers to a 64 x 2**16 dictionary (32 MiB as float64)
    k1, k2 = 64, 1 << 16
    data = craft((k1,), k2=k2, s_max=1, backend=1, bits=8,
                 sections=(brotli.compress(bytes(2)), brotli.compress(np.ones(1, "<f8").tobytes()),
                           brotli.compress(b"\x01")))
    monkeypatch.setattr(dictionary.os, "cpu_count", lambda: 2)  # generator blocks in flight: 2
    dictionary.clear_cache()
    try:
        out, peak = decode_traced(data)
    finally:
        dictionary.clear_cache()
    assert out.shape == (k1,) and np.isfinite(out).all()
    one = 8 * k1 * k2
    # the dictionary, generated in place in the decoder's (k2, k1) order, plus a few blocks of work; a
    # generator that concatenates its blocks, or a transposed copy, needs twice the dictionary
    assert peak < 1.25 * one + (16 << 20), (peak, one)


def test_decoding_memory_is_proportional_to_the_output():
    w = gaussian((256, 512), "float16")
    enc = SINR(sparsity=0.5, **CPU).encode(w)
    SINR().decode(enc)  # warm caches
    out, peak = decode_traced(enc)
    # output + compact stream + per-block work; no float64 copy of the output (that alone is 4x)
    assert peak < 3 * out.nbytes + (2 << 20), (peak, out.nbytes)


@pytest.mark.parametrize("field", ["shape", "k1", "k2", "s_max", "bits", "layout", "mode", "dtype", "flags"])
def test_every_header_lie_is_a_stream_error(field):
    good = dict(shape=(4, 64), backend=0, s_max=2,
                sections=(np.zeros(8, "<u2").tobytes(), np.ones(1, "<f8").tobytes(), np.ones(8, "i1").tobytes()))
    lie = {"shape": dict(shape=(4, 65), k1=64), "k1": dict(k1=63), "k2": dict(k2=0), "s_max": dict(s_max=64),
           "bits": dict(bits=40), "layout": dict(layout=9), "mode": dict(mode=7), "dtype": dict(dtype=9),
           "flags": dict(dtype=2 | 0x20)}[field]
    assert SINR().decode(craft(**good)).shape == (4, 64)
    refuses(craft(**{**good, **lie}))


def test_random_header_mutations_fail_as_stream_errors():
    base = bytearray(SINR(sparsity=3, **CPU).encode(gaussian((3, 50), seed=5))[:-4])
    rng = np.random.default_rng(0)
    for _ in range(300):
        body = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            body[int(rng.integers(5, min(len(body), 40)))] = int(rng.integers(0, 256))
        data = bytes(body) + struct.pack("<I", zlib.crc32(body))
        with contextlib.suppress(StreamError):  # only the promised error, never another ValueError
            SINR().decode(data)


def test_limits_are_validated():
    with pytest.raises(ValueError, match="positive"):
        set_limits(max_output_bytes=0)
    with pytest.raises(ValueError, match="unknown"):
        set_limits(max_outputs=1)


# ---- finite in, finite out --------------------------------------------------------------------------
@pytest.mark.parametrize("magnitude,dtype", [(65504, "float16"), (60000, "float16"), (3e38, "float32"),
                                             (1e-30, "float32"), (1e-40, "float32"), (1e300, "float64"),
                                             (1e-300, "float64"), (1.7e308, "float64")])
def test_finite_input_decodes_to_finite_values(magnitude, dtype):
    rng = np.random.default_rng(1)
    w = (rng.uniform(-1, 1, (16, 128)) * magnitude).astype(dtype)
    w[0, :4] = np.asarray(magnitude, dtype)
    for codec in (SINR(**CPU), SINR(sparsity=0.25, **CPU)):
        dec = codec.decode(codec.encode(w))
        assert np.isfinite(dec).all()
        ref = w.astype(np.float64) / magnitude
        rel = np.linalg.norm(dec.astype(np.float64) / magnitude - ref, axis=1) / np.linalg.norm(ref, axis=1)
        # the error-bounded default keeps every row within 2%, whatever the magnitude; fixed sparsity is
        # at a quarter of the atoms (about 20-30% off for uniform data; its sums saturate at float64's end)
        if codec.max_rel_error:
            assert rel.max() <= 0.02
        elif magnitude < 1e308:
            assert rel.max() < 0.35


# ---- stored configuration ---------------------------------------------------------------------------
def test_device_is_not_stored_and_old_configs_with_a_device_still_open(tmp_path):
    assert "device" not in SINR(**CPU).get_config()
    assert "device" not in SINRCodec(device="cpu").to_dict()["configuration"]
    old = numcodecs.get_codec({"id": "sinr", "device": "cuda:3", "sparsity": 8})
    assert old.sparsity == 8 and old.device == "auto"
    assert SINRCodec.from_dict({"name": CODEC_NAME, "configuration": {"device": "cuda", "dtype": "<f4"}}) == SINRCodec()
    for bad in ("tpu", "meta", "cuda:x", 3):
        with pytest.raises(ValueError, match="device"):
            SINR(device=bad)
    a = zarr.create_array(str(tmp_path / "a.zarr"), shape=(4, 64), chunks=(4, 64), dtype="f4",
                          serializer=SINRCodec(device="cpu", sparsity=4), compressors=None)
    a[:] = gaussian((4, 64))
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert "device" not in json.dumps(meta)


# ---- stores that lie ---------------------------------------------------------------------------------
def _v3(path, shape, chunks, dtype="f4"):
    a = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype,
                          serializer=SINRCodec(sparsity=4, device="cpu"), compressors=None)
    a[:] = gaussian(shape, dtype)
    return a


def _only_chunk(path):
    return next(p for p in (path / "c").rglob("*") if p.is_file())


@pytest.mark.parametrize("other", [dict(shape=(128, 128), chunks=(128, 128)),
                                   dict(shape=(64, 256), chunks=(64, 256), dtype="f8"),
                                   dict(shape=(128, 256), chunks=(128, 256), dtype="f2")])
def test_v3_chunk_of_another_array_is_refused_not_reshaped(tmp_path, other):
    target = _v3(tmp_path / "t.zarr", (64, 256), (64, 256))
    _v3(tmp_path / "o.zarr", **other)
    _only_chunk(tmp_path / "t.zarr").write_bytes(_only_chunk(tmp_path / "o.zarr").read_bytes())
    with pytest.raises(StreamError, match=r"chunk holds .* array of shape .* but the array's chunks are"):
        zarr.open_array(str(tmp_path / "t.zarr"), mode="r")[:]
    assert target.shape == (64, 256)


def test_v2_out_and_dtype_option_refuse_a_stream_of_another_array():
    enc = SINR(sparsity=4, **CPU).encode(gaussian((128, 128)))
    with pytest.raises(StreamError, match=r"shape \(128, 128\).*\(64, 256\)"):
        SINR().decode(enc, out=np.empty((64, 256), "f4"))
    with pytest.raises(StreamError, match="float32.*float64"):
        SINR().decode(enc, out=np.empty((128, 64), "f8"))
    with pytest.raises(StreamError, match="configured for float64"):
        SINR(dtype="float64").decode(enc)
    out = np.empty(128 * 128, "f4")  # a flat buffer of the right size is the numcodecs convention
    SINR().decode(enc, out=out)
    assert np.isfinite(out).all()


def test_v2_store_with_a_chunk_of_another_dtype_is_refused(tmp_path):
    a = zarr.create_array(str(tmp_path / "t.zarr"), shape=(32, 64), chunks=(32, 64), dtype="f8", zarr_format=2,
                          compressors=SINR(sparsity=4, dtype="f8", **CPU))
    a[:] = gaussian((32, 64), "f8")
    # a float32 stream of 64 x 64 elements has the byte count of the float64 chunk
    (tmp_path / "t.zarr" / "0.0").write_bytes(SINR(sparsity=4, **CPU).encode(gaussian((64, 64))))
    with pytest.raises(StreamError, match="float32.*float64"):
        zarr.open_array(str(tmp_path / "t.zarr"), mode="r")[:]


@pytest.mark.parametrize("lossy,says", [("sinr", r"shape \(128, 128\).*\(64, 256\)"), ("global", "checksum"),
                                        ("uniform", "checksum")])
def test_cli_decompress_refuses_a_store_with_a_chunk_of_another_tensor(tmp_path, capsys, lossy, says):
    import re

    import torch

    from sinr_codecs.cli import main

    sd = {"a.weight": torch.from_numpy(gaussian((64, 256))), "b.weight": torch.from_numpy(gaussian((128, 128), seed=2))}
    torch.save(sd, tmp_path / "m.pt")
    assert main(["compress", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.zarr"), "-q", "--device", "cpu",
                 "--lossy", lossy]) == 0
    capsys.readouterr()
    # the same number of values, another shape: a codec without shapes (PCodec) cannot tell, the checksum can
    (tmp_path / "m.zarr" / "a.weight" / "c" / "0" / "0").write_bytes(
        (tmp_path / "m.zarr" / "b.weight" / "c" / "0" / "0").read_bytes())
    rc = main(["decompress", str(tmp_path / "m.zarr"), "-o", str(tmp_path / "r.pt"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("sinr: error:") and "Traceback" not in err
    assert re.search(says, err) and "a.weight" in err
    assert not (tmp_path / "r.pt").exists()


def test_vectors_with_many_atoms_decode_by_a_dense_product_equal_to_the_sparse_one(monkeypatch):
    from sinr_codecs import entropy, sparse

    # 128 vectors of 512 values, 500 atoms each out of 4096: the sparse product's cost per atom grows
    # with the atoms per vector, so such blocks are multiplied densely
    n, k1, k2, s = 128, 512, 4096, 500
    rng = np.random.default_rng(3)
    gaps = rng.integers(1, 8, (n, s)).astype("<u2")
    vals = rng.integers(-127, 128, (n, s)).astype("i1")
    sections = [entropy.compress(a.reshape(-1), 0) for a in (gaps, np.full(1, 0.01, "<f8"), vals)]
    data = craft((n, k1), k2=k2, s_max=s, sections=sections)
    chosen = []

    def spy(nnz, c):
        chosen.append(real(nnz, c))
        return chosen[-1]

    real = sparse._dense_pays
    monkeypatch.setattr(sparse, "_dense_pays", spy)
    dense = SINR().decode(data)
    assert chosen and all(chosen)
    monkeypatch.setattr(sparse, "_dense_pays", lambda nnz, c: False)
    reference = SINR().decode(data)
    assert dense.shape == (n, k1) and np.isfinite(dense).all()
    np.testing.assert_allclose(dense, reference, rtol=0, atol=1e-6 * float(np.abs(reference).max()))
    # a few atoms per vector keep the sparse product
    assert not sparse._dense_pays(16 * 1000, 1000)


def test_a_store_whose_metadata_names_a_pickle_codec_is_a_weights_error(tmp_path):
    """numcodecs' Pickle codec would unpickle whatever the chunk holds: a store whose zarr.json names it (or any
    codec this installation refuses) is refused with a WeightsError naming the tensor, and nothing is unpickled."""
    import json as _json

    import torch

    from sinr_codecs.weights import WeightsError, compress_weights, decompress_weights

    torch.save({"w": torch.from_numpy(gaussian((32, 64)))}, tmp_path / "m.pt")
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False)
    meta_path = tmp_path / "m.zarr" / "w" / "zarr.json"
    meta = _json.loads(meta_path.read_text())
    meta["codecs"] = [{"name": "numcodecs.pickle", "configuration": {"protocol": 5}}, {"name": "bytes"}]
    meta_path.write_text(_json.dumps(meta))
    with pytest.raises(WeightsError, match="'w'"):
        decompress_weights(tmp_path / "m.zarr", tmp_path / "r.pt", progress=False)
    assert not (tmp_path / "r.pt").exists()


def test_an_allocation_failure_while_encoding_is_a_memory_error_naming_the_options(monkeypatch):
    from sinr_codecs import sparse

    def fail(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(sparse, "batch_omp", fail)
    with pytest.raises(MemoryError, match="dictionary_size=4096.*smaller dictionary"):
        SINR(sparsity=4, dictionary_size=4096, **CPU).encode(gaussian((4, 64)))
    monkeypatch.setattr(sparse, "batch_omp", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not disguised
        SINR(sparsity=4, **CPU).encode(gaussian((4, 64)))


@pytest.mark.parametrize("backend", [1, 2, 3])
def test_a_dense_stream_decodes_in_memory_near_its_output(backend):
    """2**24 float32 values (64 MiB) from a stream of a few kilobytes decode with numpy allocating the output
    and a work block of a few MiB: sections are decoded block by block, never whole (Brotli byte planes, rANS
    lanes, pcodec pieces alike)."""
    from sinr_codecs import entropy

    n = 1 << 24
    q = np.full(n, 3, dtype="<i2")
    step = entropy.compress(np.ones(1, "<f8"), backend)
    data = craft((1 << 12, 1 << 12), mode=1, bits=16, backend=backend, sections=(step, entropy.compress(q, backend)))
    SINR().decode(data)  # imports and caches outside the trace
    out, peak = decode_traced(data)
    assert out.shape == (1 << 12, 1 << 12) and float(out[5, 7]) == 3.0
    assert peak - out.nbytes < 16 << 20, (peak - out.nbytes) / 2**20
