"""The stream container: layout facts, the validating reader, fuzzing, frozen fixture streams."""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from pathlib import Path

import numcodecs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinr_codecs import SINR, SparseCode, bitstream
from sinr_codecs.errors import StreamError

from .conftest import gaussian

FIXTURES = Path(__file__).parent / "fixtures" / "streams"
CPU = dict(device="cpu")


def _stream(shape=(6, 64), **kw) -> bytes:
    return SINR(sparsity=0.25, **CPU, **kw).encode(gaussian(shape))


def _recrc(body: bytes) -> bytes:
    """Re-seal a modified stream with a valid checksum (to reach the checks behind the CRC)."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_magic_version_and_checksum():
    s = _stream()
    assert s[:4] == b"SINR" and s[4] == bitstream.VERSION
    assert struct.unpack("<I", s[-4:])[0] == zlib.crc32(s[:-4])


@pytest.mark.parametrize("mutate, match", [
    (lambda s: b"XINR" + s[4:], "magic"),
    (lambda s: s[:4] + b"\x09" + s[5:], "version"),
    (lambda s: s[:-1], "checksum"),
    (lambda s: s[:20], "checksum"),
    (lambda s: s[:6], "too short|checksum"),
    (lambda s: s[:30] + bytes([s[30] ^ 0x10]) + s[31:], "checksum"),
])
def test_corruptions_are_named(mutate, match):
    with pytest.raises(StreamError, match=match):
        SparseCode.from_bytes(mutate(_stream()))


def test_checks_behind_the_checksum():
    body = bytearray(_stream()[:-4])
    # body[5] is the dtype code: an unknown dtype
    bad = bytearray(body)
    bad[5] = 0x3F
    with pytest.raises(StreamError, match="dtype"):
        SparseCode.from_bytes(_recrc(bytes(bad)))
    # trailing junk after the last section
    with pytest.raises(StreamError, match="unexpected bytes"):
        SparseCode.from_bytes(_recrc(bytes(body) + b"\x00\x00"))
    # truncated body with a valid checksum
    with pytest.raises(StreamError, match="truncated|length|exceeds"):
        SparseCode.from_bytes(_recrc(bytes(body[:-10])))


def test_huge_shape_claim_is_refused_before_allocating():
    # a hand-made header declaring 2**40 float32 elements in one flat vector
    head = bytearray(b"SINR\x01")
    head.append(2)  # float32
    head += bitstream._varint(1) + bitstream._varint(1 << 40)
    body = bytes(head) + b"\x02" + bitstream._varint(1 << 40) + b"\x01\x10\x00\x01"
    with pytest.raises(StreamError, match="limit"):
        SparseCode.from_bytes(_recrc(body))


def test_brotli_bomb_section_is_refused(monkeypatch):
    import tracemalloc

    import brotli

    bomb = brotli.compress(b"\x00" * (256 << 20), quality=1)
    real = bitstream.entropy.compress
    calls = []

    def forge(a, backend):  # the values section (written last) becomes a decompression bomb
        calls.append(1)
        return bomb if len(calls) == 3 else real(a, backend)

    code = SparseCode.fit(gaussian((2, 64)), sparsity=4, device="cpu")
    monkeypatch.setattr(bitstream.entropy, "compress", forge)
    forged = code.to_bytes(entropy="brotli")
    monkeypatch.undo()
    tracemalloc.start()
    try:
        with pytest.raises(StreamError, match="section decodes to|header promises"):
            SparseCode.from_bytes(forged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # stopped at the promised size, not after inflating 256 MiB


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), base=st.sampled_from(["brotli", "rans", "pcodec", "pcodec-sparse"]))
def test_fuzz_bitflips_and_truncation(data, base):
    s = bytearray(FUZZ_BASES[base])
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        i = data.draw(st.integers(0, len(s) - 1))
        s[i] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(s)))
    for candidate in (bytes(s), bytes(s[:cut]), _recrc(bytes(s[:-4])), _recrc(bytes(s[: max(cut - 4, 0)]))):
        with contextlib.suppress(StreamError):
            SparseCode.from_bytes(candidate).decode()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(blob):
    for candidate in (blob, b"SINR\x01" + blob, _recrc(b"SINR\x01" + blob)):
        with contextlib.suppress(StreamError):
            SparseCode.from_bytes(candidate).decode()


FUZZ_BASES = {
    "brotli": SINR(sparsity=3, value_bits=8, entropy="brotli", **CPU).encode(gaussian((3, 50), seed=11)),
    "rans": SINR(sparsity=3, value_bits=8, entropy="rans", **CPU).encode(gaussian((3, 50), seed=11)),
    "pcodec": SINR(max_rel_error=0.05, **CPU).encode(gaussian((6, 50), seed=11)),
    "pcodec-sparse": SINR(sparsity=3, value_bits=8, **CPU).encode(gaussian((3, 50), seed=11)),
}


# ---- frozen streams: written once by an earlier release, decoded again on every run ----------
FIXTURE_CASES = {
    "rows_f32": (lambda: gaussian((16, 64), seed=21), dict(sparsity=0.25)),
    "rows_f64_bounded": (lambda: gaussian((8, 60), "float64", seed=22), dict(max_rel_error=0.05)),
    "blocks_be_f4": (lambda: gaussian((500,), ">f4", seed=23), dict(layout="blocks", block_size=50, sparsity=10)),
    "flat_f16": (lambda: gaussian((7, 7), "float16", seed=24), dict(value_bits=10, index_coding="raw")),
    "fortran_raw": (lambda: np.asfortranarray(gaussian((10, 64), seed=25)), dict(entropy="raw", sparsity=0.5)),
    "rows_rans": (lambda: gaussian((12, 64), seed=26), dict(entropy="rans", value_bits=8, sparsity=0.3)),
    "bounded_rans": (lambda: gaussian((6, 80), seed=27), dict(entropy="rans", value_bits=10, max_rel_error=0.05)),
    # step codes (each vector's largest step within the bound) and pcodec sections
    "codes_dense_pcodec": (lambda: gaussian((40, 96), seed=28) * np.geomspace(1e-3, 10, 40)[:, None],
                           dict(entropy="pcodec", max_rel_error=0.02)),
    "codes_sparse_pcodec": (lambda: _sparse_in_dictionary(600, 32, 256, 3, seed=29),
                            dict(entropy="pcodec", max_rel_error=0.05, layout="rows", dictionary_size=256)),
    "codes_f64_huge": (lambda: gaussian((8, 64), "float64", seed=30) * 1e300,
                       dict(entropy="pcodec", max_rel_error=0.05)),
    "codes_f16_short_rows": (lambda: gaussian((50, 3), "float16", seed=31), dict(entropy="pcodec", max_rel_error=0.01)),
    "fixed_pcodec": (lambda: gaussian((12, 64), seed=32), dict(entropy="pcodec", sparsity=0.25, value_bits=9)),
}


def _sparse_in_dictionary(n: int, k1: int, k2: int, atoms_per_vector: int, seed: int) -> np.ndarray:
    """(n, k1) float32 vectors that are each a few atoms of the codec's own dictionary (seed 0)."""
    from sinr_codecs.dictionary import sensing_matrix

    rng = np.random.default_rng(seed)
    a = sensing_matrix(k1, k2, 0).numpy().astype(np.float64)
    x = np.zeros((n, k2))
    for i in range(n):
        x[i, rng.choice(k2, atoms_per_vector, replace=False)] = rng.uniform(1, 2, atoms_per_vector)
    return (x @ a.T).astype(np.float32)


def _write_fixtures() -> None:  # pragma: no cover - run by hand when adding a case
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, (make, cfg) in FIXTURE_CASES.items():
        if (FIXTURES / f"{name}.sinr").exists():
            continue
        arr = make()
        codec = SINR(device="cpu", **cfg)
        enc = codec.encode(arr)
        (FIXTURES / f"{name}.sinr").write_bytes(enc)
        np.save(FIXTURES / f"{name}.original.npy", arr)
        np.save(FIXTURES / f"{name}.decoded.npy", codec.decode(enc))
        (FIXTURES / f"{name}.json").write_text(json.dumps(codec.get_config(), sort_keys=True, indent=1))


@pytest.mark.parametrize("name", sorted(FIXTURE_CASES))
def test_frozen_streams_still_decode(name):
    enc = (FIXTURES / f"{name}.sinr").read_bytes()
    original = np.load(FIXTURES / f"{name}.original.npy")
    expected = np.load(FIXTURES / f"{name}.decoded.npy")
    dec = SINR().decode(enc)
    assert dec.dtype == expected.dtype and dec.shape == expected.shape
    assert dec.flags.f_contiguous == expected.flags.f_contiguous
    # float64 CPU reconstruction: identical up to BLAS summation order
    np.testing.assert_allclose(dec.astype(np.float64), expected.astype(np.float64), rtol=1e-6, atol=1e-6)
    cfg = json.loads((FIXTURES / f"{name}.json").read_text())
    unit = float(np.abs(original).max())  # norms of 1e300-sized values would overflow

    def within(a: np.ndarray) -> bool:
        return bool(np.linalg.norm((a.astype(np.float64) - original) / unit)
                    <= cfg["max_rel_error"] * np.linalg.norm(original.astype(np.float64) / unit))

    if cfg.get("max_rel_error"):
        assert within(dec)
    # the current encoder still writes a stream that decodes to nearly the same array (error-bounded:
    # one that meets the same bound, since the encoder may now pick dense mode where it is smaller)
    codec = numcodecs.get_codec(cfg)
    again = codec.decode(codec.encode(original))
    if cfg.get("max_rel_error"):
        assert within(again)
    else:
        np.testing.assert_allclose(again.astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=1e-3)


def test_numcodecs_backwards_compatibility(monkeypatch):
    common = pytest.importorskip("numcodecs.tests.common")
    monkeypatch.chdir(Path(__file__).parent / "fixtures")
    arrays = [gaussian((16, 64), seed=31), gaussian((6, 6), "float64", seed=32)]
    # the fixtures were written before the default preset changed: their configs say 16-bit values
    codecs = [SINR(sparsity=0.5, value_bits=16, entropy="brotli", device="cpu"),
              SINR(max_rel_error=0.1, value_bits=16, entropy="brotli", device="cpu")]
    common.check_backwards_compatibility("sinr", arrays, codecs, precision=[0, 0])


if __name__ == "__main__":  # pragma: no cover
    _write_fixtures()


@pytest.mark.parametrize("shape,max_rel_error", [((10, 64), None), ((40, 48), 0.05), ((300, 256), 0.02)])
def test_auto_back_end_keeps_the_smallest_stream(shape, max_rel_error):
    """``entropy="auto"`` (the default) writes a short stream with every candidate and keeps the smallest; a
    long one with pcodec. The stream records the back end, and decodes like one written with it directly."""
    from sinr_codecs import entropy

    w = gaussian(shape)
    mode = dict(max_rel_error=max_rel_error) if max_rel_error else dict(sparsity=0.25)
    auto = SINR(**mode, **CPU).encode(w)
    assert SINR(**CPU, **mode).entropy == "auto"
    sizes = {name: len(SINR(entropy=name, **mode, **CPU).encode(w)) for name in entropy.AUTO_CANDIDATES}
    chosen = bitstream.read(auto).backend
    if w.size <= entropy.AUTO_TRIAL_ITEMS:
        assert len(auto) == min(sizes.values()) and sizes[chosen] == len(auto)
    else:
        assert chosen == "pcodec" and len(auto) == sizes["pcodec"]
    back = SINR(**CPU).decode(auto)
    assert np.array_equal(back, SINR(**CPU).decode(SINR(entropy=chosen, **mode, **CPU).encode(w)))
