"""The seeded dictionary: golden values, the written specification, statistics, caching, speed."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import torch

from sinr_codecs.dictionary import GENERATORS, gaussian_stream, sensing_matrix

# sha256 of the float64 and float32 bytes (C order) of sensing_matrix(k1, k2, seed). A change here breaks
# every stream ever written: add a new generator id instead.
GOLDEN = {
    (8, 16, 0): ("0258002c43b407068d29c661f50de39b54ea61ea644d15bc023071e05f0f6909",
                 "4e3917db2e31f9180ddf107e23eec419bb47935547b88097f94db3fa1ddd70b5"),
    (64, 512, 1): ("9cb931af60eca171f8036cd8d8f7932f5559edaff89619499938ad30bc7fa0d7",
                   "b5311808b54b13d35e079cb1a7ed77f722490308f2533f57a8797332a1ff0085"),
    (100, 37, 2**63 + 5): ("e27f2aae56de5ed9c7022b84982c9b4f7998a4a8f9f3e8f6c11cfb41a8262357",
                           "c5bc8dcfacdbceb0bb0d58950a0b8d336ab77bc5e2e89eb22c8ccba6e965402b"),
    (128, 1024, 0): ("d5f1751f6525456ba879201108a3c623482881cb096630ccf896b89398081870",
                     "e409976460048630e878f435234ce79bea458093d2042fa18cb0509a1fef5b66"),
}


@pytest.mark.parametrize("args", sorted(GOLDEN))
def test_golden_checksums(args):
    f64, f32 = GOLDEN[args]
    assert hashlib.sha256(sensing_matrix(*args, dtype=torch.float64).numpy().tobytes()).hexdigest() == f64
    assert hashlib.sha256(sensing_matrix(*args, dtype=torch.float32).numpy().tobytes()).hexdigest() == f32


def test_golden_values():
    a = sensing_matrix(8, 16, 0, dtype=torch.float64)
    assert float(a[0, 0]) == 0.21234160972703778
    assert float(a[-1, -1]) == 0.26976941564811996


# --- an independent, scalar, pure-Python implementation of docs/format.md's "Dictionary" section ----
MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def _mix64(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK
    return z ^ (z >> 31)


def _log(x):
    m, e = np.frexp(x)  # exact: any frexp gives the same split
    m, e = float(m), int(e)
    if m < 0.7071067811865476:
        m, e = m * 2.0, e - 1
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    acc = 1.0 / 23
    for k in range(10, -1, -1):
        acc = acc * t2 + 1.0 / (2 * k + 1)
    return e * 0.6931471805599453 + 2.0 * t * acc


A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
     -3.066479806614716e01, 2.506628277459239e00)
B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
     -1.328068155288572e01)
C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549671010115819e00,
     4.374664141464968e00, 2.938163982698783e00)
D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def _horner(coefs, x):
    acc = coefs[0]
    for c in coefs[1:]:
        acc = acc * x + c
    return acc


def _reference(k1, k2, seed):
    key = _mix64((seed + GAMMA) & MASK)
    g = [[0.0] * k2 for _ in range(k1)]
    for j in range(k2):
        for i in range(k1):
            h = _mix64((key + (j * k1 + i + 1) * GAMMA) & MASK)
            u = ((h >> 11) + 0.5) * 2.0**-53
            if u < 0.02425 or u > 1 - 0.02425:
                p = u if u < 0.02425 else 1.0 - u
                q = (-2.0 * _log(p)) ** 0.5
                v = _horner(C, q) / (_horner(D, q) * q + 1.0)
                g[i][j] = v if u < 0.02425 else -v
            else:
                q = u - 0.5
                r = q * q
                g[i][j] = _horner(A, r) * q / (_horner(B, r) * r + 1.0)
    for j in range(k2):
        s = 0.0
        for i in range(k1):
            s = s + g[i][j] * g[i][j]
        n = s**0.5
        for i in range(k1):
            g[i][j] = g[i][j] / n
    return np.array(g)


@pytest.mark.parametrize("args", [(8, 16, 0), (5, 300, 12345), (33, 7, 2**64 - 1)])
def test_matches_written_specification(args):
    np.testing.assert_array_equal(sensing_matrix(*args, dtype=torch.float64).numpy(), _reference(*args))


def test_gaussian_statistics():
    g = gaussian_stream(7, 0, 400_000)
    assert abs(g.mean()) < 0.01 and abs(g.std() - 1) < 0.01
    assert abs((g**4).mean() - 3) < 0.1  # Gaussian kurtosis
    assert np.all(np.isfinite(g)) and np.abs(g).max() < 7


def test_unit_columns_nested_and_seeds_differ():
    a = sensing_matrix(64, 512, 3, dtype=torch.float64)
    np.testing.assert_allclose(a.norm(dim=0).numpy(), 1.0, atol=1e-12)
    assert torch.equal(sensing_matrix(64, 256, 3, dtype=torch.float64), a[:, :256])
    assert not torch.equal(sensing_matrix(64, 512, 4, dtype=torch.float64), a)


def test_cache_and_errors():
    a = sensing_matrix(16, 32, 1)
    assert sensing_matrix(16, 32, 1) is a and a.dtype == torch.float32
    with pytest.raises(ValueError, match="seed"):
        sensing_matrix(4, 4, -1)
    with pytest.raises(ValueError, match="generator"):
        sensing_matrix(4, 4, 0, generator=99)
    with pytest.raises(ValueError, match=">= 1"):
        sensing_matrix(0, 4)
    with pytest.raises(TypeError, match="floating"):
        sensing_matrix(4, 4, dtype=torch.int32)
    assert 1 in GENERATORS


@pytest.mark.slow  # a speed check: wall-clock bounds belong outside the default suite
def test_large_matrix_is_fast():
    t = time.perf_counter()
    a = sensing_matrix(1024, 16384, 99)
    elapsed = time.perf_counter() - t
    assert a.shape == (1024, 16384)
    assert elapsed < 3.0, f"1024x16384 dictionary took {elapsed:.2f} s"


# --------------------------------------------------------------------------------------------------
# the least-recently-used cache


def test_cache_is_lru_bounded_in_bytes_and_values_never_change(monkeypatch):
    from sinr_codecs import dictionary as d

    d.clear_cache()
    fresh = {seed: d._matrix_f64(8, 32, seed).to(torch.float32) for seed in range(4)}
    one = 8 * 32 * 4  # bytes of one float32 dictionary
    monkeypatch.setattr(d, "CACHE_BYTES", 2 * one + 8 * 32 * 8)  # room for two float32 + one float64
    a0 = d.sensing_matrix(8, 32, seed=0)
    assert d.sensing_matrix(8, 32, seed=0) is a0  # a hit
    d.sensing_matrix(8, 32, seed=1)
    d.sensing_matrix(8, 32, seed=0)  # seed 0 is now the most recently used
    d.sensing_matrix(8, 32, seed=2)  # evicts the least recently used entries
    assert d._cache_bytes <= d.CACHE_BYTES
    assert d.sensing_matrix(8, 32, seed=0) is a0
    for seed in range(4):  # evicted or not, regenerated values are bit-identical
        assert torch.equal(d.sensing_matrix(8, 32, seed=seed), fresh[seed])
    assert d._cache_bytes <= d.CACHE_BYTES
    monkeypatch.setattr(d, "CACHE_BYTES", one - 1)  # too large to cache: returned, not kept
    d.clear_cache()
    big = d.sensing_matrix(8, 32, seed=3)
    assert torch.equal(big, fresh[3]) and d._cache_bytes == 0 and not d._cache
    d.clear_cache()


def test_other_dtypes_from_the_cached_float64_are_identical():
    from sinr_codecs import dictionary as d

    d.clear_cache()
    a32 = d.sensing_matrix(12, 40, seed=5)  # caches the float64 values too
    a64 = d.sensing_matrix(12, 40, seed=5, dtype=torch.float64)
    a16 = d.sensing_matrix(12, 40, seed=5, dtype=torch.float16)
    d.clear_cache()
    assert torch.equal(a64, d._matrix_f64(12, 40, 5))
    assert torch.equal(a32, d.sensing_matrix(12, 40, seed=5, dtype=torch.float32))
    assert torch.equal(a16, d._matrix_f64(12, 40, 5).to(torch.float16))
    d.clear_cache()


def test_atoms_of_short_vectors_cost_little_more_than_the_array(monkeypatch):
    import tracemalloc

    from sinr_codecs import dictionary

    # 32 MiB of float64 atoms of 2 values: one norm per atom in whole-dictionary work arrays would add
    # 16 MiB per array; the generator's blocks in flight (2 here) add a few MiB each
    k1, k2 = 2, 1 << 21
    monkeypatch.setattr(dictionary.os, "cpu_count", lambda: 2)
    tracemalloc.start()
    try:
        at = dictionary._atoms_f64(k1, k2, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert at.shape == (k2, k1)
    assert np.allclose(np.linalg.norm(at, axis=1), 1.0)
    assert peak < at.nbytes + (24 << 20), (peak, at.nbytes)
