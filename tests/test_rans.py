"""Static interleaved rANS (sinr_codecs.rans): round trips, size against the entropy, corrupt input."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinr_codecs import rans
from sinr_codecs.errors import StreamError


def roundtrip(a) -> bytes:
    a = np.asarray(a, dtype=np.int64)
    data = rans.encode(a)
    out = rans.decode(data, a.size)
    assert out.dtype == np.int64 and out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    return data


def laplace(n, scale, seed=0):
    return np.rint(np.random.default_rng(seed).laplace(0, scale, n)).astype(np.int64)


def gaps(n, p, seed=0):
    return np.random.default_rng(seed).geometric(p, n).astype(np.int64) - 1


# ------------------------------------------------------------------------------------ round trips


def test_empty():
    assert rans.encode(np.zeros(0, dtype=np.int64)) == b""
    assert rans.decode(b"", 0).shape == (0,)
    assert rans.cost_bits(np.zeros(0, dtype=np.int64)) == 0.0


@pytest.mark.parametrize("a", [[0], [-3], [2**40], [-(2**63)], [2**63 - 1], [5] * 1000, [-7] * 3])
def test_single_value(a):
    data = roundtrip(a)
    assert len(data) <= 12  # tag, value, count
    assert rans.cost_bits(np.array(a)) == 0.0


@pytest.mark.parametrize("a", [
    [0, 1], [1, 0], [-1, 1], [0, 70000], [0, 70000] * 50 + [0] * 500,
    [-5, -3, -4, -5], list(range(-1000, 1000)), [2**62, 2**62 + 3, 2**62 + 1], [-(2**31), 2**31 - 1],
    [-(2**63), -(2**63) + 2], [2**63 - 2, 2**63 - 1],
])
def test_small_alphabets(a):
    roundtrip(a)


@pytest.mark.parametrize("n", [2, 3, 17, 1000, 20000])
@pytest.mark.parametrize("scale", [0.3, 3.0, 40.0, 3000.0])
def test_laplacian_values(n, scale):
    roundtrip(laplace(n, scale, seed=n))


@pytest.mark.parametrize("n", [5, 999, 30000])
@pytest.mark.parametrize("p", [0.5, 0.05, 0.0005])
def test_geometric_gaps(n, p):
    roundtrip(gaps(n, p, seed=n))


def test_wide_sparse_alphabet():
    rng = np.random.default_rng(3)
    a = np.where(rng.random(5000) < 0.1, 70000, 0)
    data = roundtrip(a)
    assert data[0] in range(1, rans.MAX_SCALE + 1)  # direct, with a two-entry sparse table
    assert len(data) < 1.05 * rans.cost_bits(a) / 8 + 40
    roundtrip(rng.integers(0, 2**17, 3000))  # 2**17-wide, mostly distinct
    roundtrip(rng.integers(-(2**31), 2**31, 500))  # 2**32-wide


@pytest.mark.parametrize("offset", [-(2**63), 2**63 - 2**31, -(2**62)])
def test_wide_values_at_the_int64_ends(offset):
    a = np.random.default_rng(5).integers(0, 2**31, 2000) + offset  # binned, offset mapping
    data = roundtrip(a)
    assert data[0] == 0x40
    # the top bin may reach past the largest value: only the values themselves must fit int64
    a = np.minimum(np.random.default_rng(5).geometric(1 / 200, 2000) - 1, 2999) + (2**63 - 3000)
    assert roundtrip(a)[0] == 0x40


def test_unsigned_and_bool_input():
    roundtrip(np.arange(300, dtype=np.uint16) % 7)
    assert np.array_equal(rans.decode(rans.encode(np.array([True, False, True])), 3), [1, 0, 1])


def test_refuses_bad_input():
    with pytest.raises(TypeError):
        rans.encode(np.array([0.5, 1.0]))
    with pytest.raises(ValueError):
        rans.encode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError):
        rans.encode(np.array([-(2**62), 2**62]))  # wider than MAX_ALPHABET
    with pytest.raises(ValueError):
        rans.encode(np.array([-(2**31), 2**31]))  # 2**32 + 1 wide
    with pytest.raises(ValueError):
        rans.decode(b"", -1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2000), spread=st.sampled_from([1, 4, 100, 5000, 2**20, 2**31]),
       offset=st.integers(-(2**40), 2**40), kind=st.sampled_from(["laplace", "uniform", "geometric"]),
       seed=st.integers(0, 2**32 - 1))
def test_random_roundtrips(n, spread, offset, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "laplace":
        a = np.rint(rng.laplace(0, spread, n))
    elif kind == "uniform":
        a = rng.integers(0, spread, n)
    else:
        a = rng.geometric(1 / (1 + spread), n) - 1
    a = np.clip(a, -(2**31), 2**31 - 1).astype(np.int64) + offset
    roundtrip(a)


# ------------------------------------------------------------------------------------------- size


@pytest.mark.parametrize("make", [lambda: laplace(100_000, 20.0), lambda: laplace(100_000, 0.7),
                                  lambda: gaps(100_000, 0.03), lambda: laplace(100_000, 2000.0)])
def test_size_near_entropy(make):
    a = make()
    data = roundtrip(a)
    h = rans.cost_bits(a) / 8
    if np.unique(a).size < 1000:  # narrow: within ~1 % + the table of the empirical entropy
        assert len(data) <= 1.01 * h + 2 * np.unique(a).size + 64
    else:  # wide: the empirical entropy overfits; no worse than the model's ~1 % above it
        assert len(data) <= 1.03 * h + 64


def test_binned_beats_table_on_wide_values():
    a = laplace(20_000, 4000.0, seed=7)  # ~16-bit values: a per-value table would be huge
    data = roundtrip(a)
    assert data[0] in (0x40, 0x41)
    true_bits = np.log2(2 * np.e * 4000.0) / 8 * a.size  # the Laplacian's differential entropy
    assert len(data) < 1.02 * true_bits


# ------------------------------------------------------------------------------------- corruption


def _decode_or_streamerror(data: bytes, n: int) -> None:
    """Random data decodes or is refused, allocating no more than the declared symbols need."""
    tracemalloc.start()
    try:
        try:
            out = rans.decode(data, n)
        except StreamError:
            pass
        else:
            assert out.shape == (n,) and out.dtype == np.int64
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * n + (1 << 20)


SMALL = {
    "direct": np.random.default_rng(1).integers(0, 6, 300),
    "binned": laplace(300, 500.0, seed=2),
    "gaps": gaps(200, 0.1, seed=3),
    "sparse": np.array([0, 70000] * 20),
    "constant": np.full(50, -9),
}
LANES = laplace(30_000, 3000.0, seed=4)  # several lanes (vectorised path)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_truncation_raises(name):
    a = SMALL[name]
    data = rans.encode(a)
    for cut in range(len(data)):
        with pytest.raises(StreamError):
            rans.decode(data[:cut], a.size)
    for extra in (b"\x00", b"\x01\x02\x03\x04"):
        with pytest.raises(StreamError):
            rans.decode(data + extra, a.size)


def test_truncations_of_a_many_lane_stream():
    data = rans.encode(LANES)
    assert data[0] in (0x40, 0x41)
    rng = np.random.default_rng(0)
    cuts = list(range(60)) + rng.integers(60, len(data), 20).tolist() + [len(data) - 4, len(data) - 1]
    for cut in cuts:
        with pytest.raises(StreamError):
            rans.decode(data[:cut], LANES.size)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_wrong_count_raises(name):
    a = SMALL[name]
    data = rans.encode(a)
    for count in (0, 1, a.size - 1, a.size + 1, 2 * a.size, rans.MAX_COUNT):
        with pytest.raises(StreamError):
            rans.decode(data, count)
    with pytest.raises(StreamError):
        rans.decode(data, rans.MAX_COUNT + 1)


def test_wrong_count_many_lanes():
    data = rans.encode(LANES)
    for count in (LANES.size - 1, LANES.size + 1, LANES.size - 1000, LANES.size + 1000):
        with pytest.raises(StreamError):
            rans.decode(data, count)


def _flips(data: bytes, n: int, trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(len(buf) * 8))
            buf[j // 8] ^= 1 << (j % 8)
        _decode_or_streamerror(bytes(buf), n)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_bit_flips(name):
    a = SMALL[name]
    data = rans.encode(a)
    _flips(data, a.size, 200, len(data))
    rng = np.random.default_rng(0)
    for i in range(min(len(data), 12)):  # header bytes: all values of the first ones, some of the next
        for v in range(256) if i < 4 else rng.integers(0, 256, 40).tolist():
            buf = bytearray(data)
            buf[i] = v
            _decode_or_streamerror(bytes(buf), a.size)


def test_bit_flips_many_lanes():
    _flips(rans.encode(LANES), LANES.size, 20, 1)


def test_random_garbage():
    rng = np.random.default_rng(9)
    for _ in range(300):
        data = rng.integers(0, 256, int(rng.integers(0, 60)), dtype=np.uint8).tobytes()
        _decode_or_streamerror(data, int(rng.integers(1, 5000)))


def test_huge_count_small_data_is_refused_before_allocating():
    data = rans.encode(laplace(1000, 5.0))
    tracemalloc.start()
    try:
        for count in (10**6, 10**8, rans.MAX_COUNT):
            with pytest.raises(StreamError):
                rans.decode(data, count)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_max_alphabet():
    data = rans.encode(np.array([0, 70000] * 10))
    assert rans.decode(data, 20, max_alphabet=70001).size == 20
    with pytest.raises(StreamError):
        rans.decode(data, 20, max_alphabet=70000)


def test_corrupt_frequency_sum():
    a = SMALL["direct"]
    data = bytearray(rans.encode(a))
    assert data[0] in range(1, rans.MAX_SCALE + 1)
    # a frequency byte in the table changes the sum: must be refused, never decoded wrongly
    hits = 0
    for i in range(3, 20):
        buf = bytearray(data)
        buf[i] = (buf[i] + 1) & 0x7F | (buf[i] & 0x80)
        try:
            rans.decode(bytes(buf), a.size)
        except StreamError:
            hits += 1
    assert hits > 10


@pytest.mark.parametrize("a", [laplace(1500, 5.0, seed=11), laplace(1500, 3000.0, seed=12), gaps(1500, 0.01),
                               np.array([0, 70000] * 500)])
def test_scalar_and_vector_paths_agree(a, monkeypatch):
    """Few-lane streams run a per-symbol Python loop; it must match the numpy lane loop exactly."""
    for lanes in (1, 3, 8):
        monkeypatch.setattr(rans, "_lanes_for", lambda n, bits, lanes=lanes: lanes)
        monkeypatch.setattr(rans, "_SCALAR_LANES", 8)
        scalar = rans.encode(a)
        monkeypatch.setattr(rans, "_SCALAR_LANES", 0)
        vector = rans.encode(a)
        assert scalar == vector
        np.testing.assert_array_equal(rans.decode(vector, a.size), a)
        monkeypatch.setattr(rans, "_SCALAR_LANES", 8)
        np.testing.assert_array_equal(rans.decode(vector, a.size), a)
        for cut in (len(vector) - 4, len(vector) - 1):  # truncated words: same error on both paths
            for limit in (0, 8):
                monkeypatch.setattr(rans, "_SCALAR_LANES", limit)
                with pytest.raises(StreamError):
                    rans.decode(vector[:cut], a.size)


def test_zigzag_scalars_and_arrays_agree():
    v = np.array([0, -1, 1, -2, 2, -(1 << 40), (1 << 40), -(1 << 61), (1 << 61)], dtype=np.int64)
    u = rans.zigzag(v)
    assert u.dtype == np.int64 and u[:5].tolist() == [0, 1, 2, 3, 4]
    assert [rans.zigzag(int(x)) for x in v] == u.tolist()
    assert [rans.unzigzag(int(x)) for x in u] == v.tolist()
    np.testing.assert_array_equal(rans.unzigzag(u), v)
    # Python ints of any size (stream headers hold values up to the int64 range)
    assert rans.zigzag(-(1 << 63)) == (1 << 64) - 1 and rans.unzigzag((1 << 64) - 1) == -(1 << 63)
    assert rans.zigzag(np.int32(-3)) == 5 and isinstance(rans.zigzag(np.int32(-3)), int)
    # narrow unsigned arrays are widened before the arithmetic (nothing wraps)
    top = np.array([65533, 65534, 65535], dtype="<u2")
    np.testing.assert_array_equal(rans.unzigzag(top), [-32767, 32767, -32768])


def test_a_model_both_sides_know_codes_without_a_table():
    rng = np.random.default_rng(5)
    freqs = np.array([1, 30, 200, 700, 90, 2, 1])  # sums to 1024 = 2**10
    s = rng.choice(7, 5000, p=freqs / 1024)
    blob = rans.encode_with_model(s, freqs, 10)
    assert np.array_equal(rans.decode_with_model(blob, s.size, freqs, 10), s)
    ideal = -np.log2(freqs[s] / 1024).sum() / 8
    assert len(blob) < min(ideal * 1.02 + 16, len(rans.encode(s)))  # near the ideal, below a table's
    assert rans.encode_with_model(np.zeros(0, np.int64), freqs, 10) == b""
    with pytest.raises(StreamError):
        rans.decode_with_model(blob[:-4], s.size, freqs, 10)
    with pytest.raises(StreamError):
        rans.decode_with_model(blob + b"\0\0\0\0", s.size, freqs, 10)
    with pytest.raises(ValueError):
        rans.encode_with_model(s, freqs[:-1], 10)  # does not sum to 2**scale
    with pytest.raises(ValueError):
        rans.encode_with_model(np.array([7]), freqs, 10)  # outside the table
