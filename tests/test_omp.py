"""Tests of sinr_codecs.omp.batch_omp (batched Orthogonal Matching Pursuit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sinr_codecs.dictionary import sensing_matrix
from sinr_codecs.omp import OMPResult, batch_omp

from .conftest import benchmark_script

sklearn_omp = pytest.importorskip("sklearn.linear_model")

F64 = torch.float64
F32 = torch.float32


def _signals(n: int, k1: int, seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k1, generator=g, dtype=F64).to(dtype)


def _dense(res: OMPResult, k2: int) -> torch.Tensor:
    """(N, k2) float64 coefficient matrix of a result."""
    x = torch.zeros(res.indices.shape[0], k2, dtype=F64)
    used = res.indices >= 0
    x.scatter_add_(1, res.indices.clamp_min(0), torch.where(used, res.coefs.to(F64), 0.0))
    return x


def _residuals(res: OMPResult, w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    x = _dense(res, a.shape[1])
    return (w.to(F64) - x @ a.to(F64).T).norm(dim=1)


def _sklearn(w: torch.Tensor, a: torch.Tensor, s: int) -> np.ndarray:
    a64 = a.to(F64).numpy()
    coef = sklearn_omp.orthogonal_mp_gram(a64.T @ a64, a64.T @ w.to(F64).numpy().T, n_nonzero_coefs=s)
    return np.asarray(coef).reshape(a64.shape[1], -1).T


def _support_sets(res: OMPResult) -> list[frozenset]:
    return [frozenset(int(v) for v in row if v >= 0) for row in res.indices.tolist()]


def _check_layout(res: OMPResult, n: int, s_max: int, dtype: torch.dtype) -> None:
    assert res.indices.shape == (n, s_max) and res.indices.dtype == torch.int64
    assert res.coefs.shape == (n, s_max) and res.coefs.dtype == dtype
    assert res.counts.shape == (n,) and res.counts.dtype == torch.int64
    pos = torch.arange(s_max).unsqueeze(0)
    used = pos < res.counts.unsqueeze(1)
    assert bool((res.indices[used] >= 0).all())
    assert bool((res.indices[~used] == -1).all())
    assert bool((res.coefs[~used] == 0).all())
    assert bool(torch.isfinite(res.coefs).all())
    for row, c in zip(res.indices.tolist(), res.counts.tolist(), strict=True):  # no atom twice
        assert len(set(row[:c])) == c


# --------------------------------------------------------------------------------------------
# agreement with scikit-learn


@pytest.fixture(scope="module")
def f64_case():
    k1, k2, s, n = 48, 192, 10, 2000
    a = sensing_matrix(k1, k2, seed=7, dtype=F64)
    w = _signals(n, k1, seed=1)
    res = batch_omp(w, a, sparsity=s)
    ref = _sklearn(w, a, s)
    return a, w, s, res, ref


def test_supports_match_sklearn_float64(f64_case):
    a, w, s, res, ref = f64_case
    _check_layout(res, w.shape[0], s, F64)
    assert bool((res.counts == s).all())
    ref_sets = [frozenset(np.flatnonzero(row).tolist()) for row in ref]
    agree = np.mean([o == r for o, r in zip(_support_sets(res), ref_sets, strict=True)])
    assert agree >= 0.999


def test_residuals_and_coefs_match_sklearn_float64(f64_case):
    a, w, s, res, ref = f64_case
    ours = _residuals(res, w, a)
    theirs = (w - torch.from_numpy(ref) @ a.T).norm(dim=1)
    same = torch.tensor([o == r for o, r in zip(_support_sets(res),
                         [frozenset(np.flatnonzero(row).tolist()) for row in ref], strict=True)])
    rel = ((ours - theirs).abs() / theirs)[same]
    assert float(rel.max()) <= 1e-9
    x = _dense(res, a.shape[1])[same]
    assert torch.allclose(x, torch.from_numpy(ref)[same], rtol=1e-9, atol=1e-10)


def test_selection_rule_is_plain_omp():
    """Each step picks argmax_j |a_j^T r| with r the least-squares residual so far (not ORMP/OLS)."""
    k1, k2, s = 24, 96, 8
    g = torch.Generator().manual_seed(3)
    a = sensing_matrix(k1, k2, seed=2, dtype=F64) * (0.5 + torch.rand(k2, generator=g, dtype=F64))
    w = _signals(40, k1, seed=4)
    res = batch_omp(w, a, sparsity=s)
    for i in range(w.shape[0]):
        r = w[i].clone()
        for t in range(s):
            corr = (a.T @ r).abs()
            corr[res.indices[i, :t]] = -1
            assert int(res.indices[i, t]) == int(corr.argmax())
            sub = a[:, res.indices[i, : t + 1]]
            coef = torch.linalg.lstsq(sub, w[i].unsqueeze(1)).solution.squeeze(1)
            r = w[i] - sub @ coef
        assert torch.allclose(res.coefs[i], coef, rtol=1e-9, atol=1e-11)


def test_non_unit_atoms_match_sklearn():
    k1, k2, s = 32, 100, 6
    g = torch.Generator().manual_seed(5)
    a = sensing_matrix(k1, k2, seed=3, dtype=F64) * (0.2 + 3 * torch.rand(k2, generator=g, dtype=F64))
    w = _signals(300, k1, seed=6) * 10.0
    res = batch_omp(w, a, sparsity=s)
    ref = _sklearn(w, a, s)
    ref_sets = [frozenset(np.flatnonzero(row).tolist()) for row in ref]
    assert np.mean([o == r for o, r in zip(_support_sets(res), ref_sets, strict=True)]) >= 0.99
    theirs = (w - torch.from_numpy(ref) @ a.T).norm(dim=1)
    assert torch.allclose(_residuals(res, w, a), theirs, rtol=1e-8)


# --------------------------------------------------------------------------------------------
# float32 and reduced precision


def test_float32_agrees_with_float64_as_a_rate(f64_case):
    a, w, s, res64, _ = f64_case
    res32 = batch_omp(w.float(), a.float(), sparsity=s)
    _check_layout(res32, w.shape[0], s, F32)
    agree = np.mean([x == y for x, y in zip(_support_sets(res32), _support_sets(res64), strict=True)])
    assert agree >= 0.99
    r32, r64 = _residuals(res32, w, a), _residuals(res64, w, a)
    assert float((r32 / r64).max()) <= 1.01
    assert float((r32 / r64).median()) <= 1 + 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype):
    k1, k2, s = 32, 128, 5
    a = sensing_matrix(k1, k2, seed=1, dtype=dtype)
    w = _signals(200, k1, seed=2, dtype=dtype)
    res = batch_omp(w, a, sparsity=s)
    _check_layout(res, 200, s, F32)
    ref = batch_omp(w.float(), a.float(), sparsity=s)
    assert torch.equal(res.indices, ref.indices)
    assert torch.allclose(res.coefs, ref.coefs)


# --------------------------------------------------------------------------------------------
# error-bounded mode


@pytest.mark.parametrize("dtype", [F64, F32])
def test_tol_mode_stops_at_the_bound(dtype):
    k1, k2, tol = 40, 160, 0.3
    a = sensing_matrix(k1, k2, seed=11, dtype=dtype)
    w = _signals(500, k1, seed=12, dtype=dtype)
    res = batch_omp(w, a, tol=tol)
    _check_layout(res, 500, k1 - 1, dtype)
    norms = w.to(F64).norm(dim=1)
    resid = _residuals(res, w, a)
    slack = 1e-9 if dtype == F64 else 1e-4
    assert bool((resid <= (tol + slack) * norms).all())
    assert int(res.counts.min()) >= 1 and int(res.counts.max()) < k1 - 1
    # minimal: with one atom fewer the bound is not met (OMP supports are nested)
    for c in sorted(set(res.counts.tolist())):
        rows = torch.nonzero(res.counts == c).squeeze(1)
        if c > 1:
            fewer = batch_omp(w[rows], a, sparsity=c - 1)
            assert torch.equal(fewer.indices, res.indices[rows, : c - 1])
            assert bool((_residuals(fewer, w[rows], a) > (tol - slack) * norms[rows]).all())


def test_tol_mode_with_cap():
    k1, k2 = 32, 128
    a = sensing_matrix(k1, k2, seed=1, dtype=F64)
    w = _signals(200, k1, seed=2)
    res = batch_omp(w, a, tol=0.05, sparsity=6)
    _check_layout(res, 200, 6, F64)
    resid = _residuals(res, w, a)
    ok = (resid <= 0.05 * w.norm(dim=1) * (1 + 1e-9)) | (res.counts == 6)
    assert bool(ok.all()) and int(res.counts.max()) == 6
    fixed = batch_omp(w, a, sparsity=6)
    capped = res.counts == 6
    assert torch.equal(fixed.indices[capped], res.indices[capped])


def test_tol_at_least_one_needs_no_atoms_and_tol_zero_runs_to_cap():
    a = sensing_matrix(16, 48, seed=0, dtype=F64)
    w = _signals(10, 16, seed=1)
    res = batch_omp(w, a, tol=1.0)
    assert bool((res.counts == 0).all()) and res.indices.shape == (10, 15)
    res = batch_omp(w, a, tol=0.0, sparsity=9)
    assert bool((res.counts == 9).all())


# --------------------------------------------------------------------------------------------
# numerics and guards


@pytest.mark.parametrize("dtype", [F64, F32])
def test_sparsity_k1_minus_one_no_nan_small_residual(dtype):
    k1, k2 = 32, 96
    a = sensing_matrix(k1, k2, seed=5, dtype=dtype)
    w = _signals(300, k1, seed=6, dtype=dtype)
    res = batch_omp(w, a, sparsity=k1 - 1)
    _check_layout(res, 300, k1 - 1, dtype)
    assert int(res.counts.min()) >= k1 - 3
    resid = _residuals(res, w, a) / w.to(F64).norm(dim=1)
    # greedy selection leaves a tiny residual at k1 - 1 atoms; float32 stops at its rounding level
    ref = _residuals(batch_omp(w.to(F64), a.to(F64), sparsity=k1 - 1), w, a) / w.to(F64).norm(dim=1)
    floor = 1e-12 if dtype == F64 else 1e-4
    assert float(resid.max()) <= 1.01 * float(ref.max()) + floor
    assert float(resid.median()) <= 1.01 * float(ref.median()) + floor
    assert float(resid.max()) < 0.01


def test_exactly_representable_signals_stop_early():
    k1, k2 = 32, 128
    a = sensing_matrix(k1, k2, seed=3, dtype=F64)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(k2, 30, dtype=F64)
    for i in range(30):
        x[torch.randperm(k2, generator=g)[:3], i] = 1.0 + torch.rand(3, generator=g, dtype=F64)
    w = (a @ x).T.contiguous()
    res = batch_omp(w, a, sparsity=8)
    # OMP is not guaranteed to find every 3-sparse support at k1 = 32; where it does, it stops
    found = torch.tensor([set(res.indices[i, :3].tolist()) == set(torch.nonzero(x[:, i]).squeeze(1).tolist())
                          for i in range(30)])
    assert float(found.double().mean()) >= 0.8
    assert bool((res.counts[found] == 3).all())
    assert torch.allclose(_dense(res, k2)[found], x.T[found], atol=1e-10)


def test_rank_deficient_dictionary_stops_on_pivot():
    """Atoms spanning only 4 dimensions: the pivot guard stops every signal at <= 4 atoms."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(16, 4, generator=g, dtype=F64) @ torch.randn(4, 40, generator=g, dtype=F64)
    a = a / a.norm(dim=0)
    w = _signals(50, 16, seed=2)
    for dtype in (F64, F32):
        res = batch_omp(w.to(dtype), a.to(dtype), sparsity=10)
        _check_layout(res, 50, 10, dtype)
        assert int(res.counts.max()) <= 4
        proj = a @ torch.linalg.lstsq(a, w.T).solution  # projection on the 4-d span
        target = (w.T - proj).norm(dim=0)
        assert torch.allclose(_residuals(res, w, a), target, rtol=1e-3, atol=1e-4)


def test_zero_signals_and_empty_batch():
    a = sensing_matrix(16, 64, seed=0, dtype=F32)
    w = _signals(6, 16, seed=1, dtype=F32)
    w[1] = 0
    w[4] = 0
    for kw in ({"sparsity": 5}, {"tol": 0.1}):
        res = batch_omp(w, a, **kw)
        assert res.counts[1] == 0 and res.counts[4] == 0
        assert bool((res.indices[[1, 4]] == -1).all()) and bool((res.coefs[[1, 4]] == 0).all())
        assert bool((res.counts[[0, 2, 3, 5]] > 0).all())
    empty = batch_omp(torch.zeros(0, 16), a, sparsity=3)
    assert empty.indices.shape == (0, 3) and empty.coefs.shape == (0, 3) and empty.counts.shape == (0,)
    assert batch_omp(torch.zeros(0, 16), a, tol=0.1).indices.shape == (0, 15)


# --------------------------------------------------------------------------------------------
# chunking, memory budget, progress


def test_chunking_gives_the_same_result():
    k1, k2, s = 32, 128, 7
    a = sensing_matrix(k1, k2, seed=9, dtype=F64)
    w = _signals(301, k1, seed=10)
    w[17] = 0
    whole = batch_omp(w, a, sparsity=s, chunk_size=1000)
    calls = []
    parts = batch_omp(w, a, sparsity=s, chunk_size=37, progress=lambda d, t: calls.append((d, t)))
    assert torch.equal(whole.indices, parts.indices) and torch.equal(whole.counts, parts.counts)
    assert torch.allclose(whole.coefs, parts.coefs, rtol=1e-12, atol=1e-13)
    assert calls == [(min(i + 37, 301), 301) for i in range(0, 301, 37)]
    tiny = batch_omp(w, a, tol=0.2, memory_budget=1 << 21)  # about 50 rows per chunk
    ref = batch_omp(w, a, tol=0.2)
    assert torch.equal(tiny.indices, ref.indices)
    assert torch.allclose(tiny.coefs, ref.coefs, rtol=1e-12, atol=1e-13)


def test_worker_threads_give_the_same_result_and_restore_threads():
    k1, k2, s = 32, 256, 6
    a = sensing_matrix(k1, k2, seed=3, dtype=F32)
    w = _signals(700, k1, seed=4, dtype=F32)
    before = torch.get_num_threads()
    serial = batch_omp(w, a, sparsity=s, chunk_size=64, workers=1)
    calls = []
    par = batch_omp(w, a, sparsity=s, chunk_size=64, workers=3, progress=lambda d, t: calls.append((d, t)))
    assert torch.get_num_threads() == before
    assert torch.equal(serial.indices, par.indices) and torch.equal(serial.coefs, par.coefs)
    assert calls == [(min(i + 64, 700), 700) for i in range(0, 700, 64)]
    one = batch_omp(w[:40], a, sparsity=s, workers=2)  # a single chunk, single-threaded kernels
    assert torch.get_num_threads() == before and torch.equal(one.indices, serial.indices[:40])
    bounded = batch_omp(w, a, tol=0.3, chunk_size=50, workers=2)
    assert torch.equal(bounded.indices, batch_omp(w, a, tol=0.3, workers=1).indices)
    assert bool((_residuals(bounded, w, a) <= (0.3 + 1e-4) * w.to(F64).norm(dim=1)).all())


def test_worker_errors_propagate_and_restore_threads():
    a = sensing_matrix(16, 64, seed=0, dtype=F32)
    w = _signals(300, 16, seed=1, dtype=F32)
    w[250, 3] = float("nan")
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="NaN or Inf"):
        batch_omp(w, a, sparsity=4, chunk_size=32, workers=2)
    assert torch.get_num_threads() == before
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            batch_omp(w[:5], a, sparsity=4, workers=bad)


def test_policy_block_shape_float32_agrees_with_sklearn_as_a_rate():
    """The default policy's blocks (32 values, 1024 atoms, 8 atoms) on the parallel float32 path:
    supports equal to scikit-learn's float64 ones as a rate, residuals within a fraction of a percent."""
    k1, k2, s = 32, 1024, 8
    a = sensing_matrix(k1, k2, seed=0, dtype=F32)
    w = _signals(400, k1, seed=21, dtype=F32)
    res = batch_omp(w, a, sparsity=s, chunk_size=100, workers=2)
    _check_layout(res, 400, s, F32)
    ref = _sklearn(w.to(F64), a, s)
    ref_sets = [frozenset(np.flatnonzero(row).tolist()) for row in ref]
    agree = np.mean([o == r for o, r in zip(_support_sets(res), ref_sets, strict=True)])
    assert agree >= 0.99
    ours = _residuals(res, w, a)
    theirs = (w.to(F64) - torch.from_numpy(ref) @ a.to(F64).T).norm(dim=1)
    assert bool((ours <= theirs * 1.01 + 1e-6).all())
    assert float(ours.mean()) <= float(theirs.mean()) * 1.001


def test_without_gram_budget_and_with_given_gram():
    k1, k2, s = 24, 80, 5
    a = sensing_matrix(k1, k2, seed=4, dtype=F64)
    w = _signals(100, k1, seed=5)
    ref = batch_omp(w, a, sparsity=s)
    given_gram = batch_omp(w, a, sparsity=s, gram=a.T @ a)
    no_gram = batch_omp(w, a, sparsity=s, memory_budget=2 * k2 * k2 * 8 - 8)  # Gram does not fit
    for other in (given_gram, no_gram):
        assert torch.equal(other.indices, ref.indices)
        assert torch.allclose(other.coefs, ref.coefs, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# input validation


def test_errors():
    a = sensing_matrix(16, 64, seed=0, dtype=F32)
    w = torch.randn(4, 16)
    with pytest.raises(ValueError, match="sparsity 16 must be < k1 = 16"):
        batch_omp(w, a, sparsity=16)
    with pytest.raises(ValueError, match="must be < k1"):
        batch_omp(w, a, sparsity=40, tol=0.1)
    with pytest.raises(ValueError, match="sparsity must be >= 1"):
        batch_omp(w, a, sparsity=0)
    with pytest.raises(TypeError, match="sparsity must be an int"):
        batch_omp(w, a, sparsity=2.0)
    with pytest.raises(ValueError, match="tol"):
        batch_omp(w, a, tol=-0.1)
    with pytest.raises(ValueError, match="tol"):
        batch_omp(w, a, tol=math.nan)
    with pytest.raises(ValueError, match="sparsity.*tol"):
        batch_omp(w, a)
    with pytest.raises(ValueError, match="k1 = 16"):
        batch_omp(torch.randn(4, 15), a, sparsity=2)
    with pytest.raises(ValueError, match="2-D"):
        batch_omp(torch.randn(16), a, sparsity=2)
    with pytest.raises(TypeError, match="dtype"):
        batch_omp(w.double(), a, sparsity=2)
    with pytest.raises(TypeError, match="floating"):
        batch_omp(w.long(), a.long(), sparsity=2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        batch_omp(w.numpy(), a, sparsity=2)
    with pytest.raises(ValueError, match="gram"):
        batch_omp(w, a, sparsity=2, gram=torch.eye(16))
    with pytest.raises(ValueError, match="chunk_size"):
        batch_omp(w, a, sparsity=2, chunk_size=0)
    with pytest.raises(ValueError, match="memory_budget"):
        batch_omp(w, a, sparsity=2, memory_budget=-1)
    bad = w.clone()
    bad[2, 3] = math.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        batch_omp(bad, a, sparsity=2)


# --------------------------------------------------------------------------------------------
# property test (few examples: each one is a full OMP run)


@settings(max_examples=12, deadline=None)
@given(
    k1=st.integers(2, 20),
    extra=st.integers(0, 30),
    n=st.integers(0, 25),
    frac=st.floats(0.0, 1.0),
    tol=st.one_of(st.none(), st.floats(0.0, 1.2)),
    seed=st.integers(0, 2**16),
)
def test_invariants(k1, extra, n, frac, tol, seed):
    k2 = k1 + extra
    s = 1 + int(frac * (min(k1 - 1, k2) - 1))
    a = sensing_matrix(k1, k2, seed=seed, dtype=F64)
    w = _signals(n, k1, seed=seed)
    res = batch_omp(w, a, sparsity=s, tol=tol)
    _check_layout(res, n, s, F64)
    resid = _residuals(res, w, a)
    norms = w.norm(dim=1)
    assert bool((resid <= norms * (1 + 1e-12) + 1e-12).all())
    if tol is None:
        assert bool((res.counts <= s).all())
    else:
        assert bool(((resid <= (tol + 1e-9) * norms) | (res.counts == s)).all())


# --------------------------------------------------------------------------------------------
# benchmark smoke test and GPU


def test_benchmark_main_smoke(capsys):
    mod = benchmark_script("omp_speed")
    rows = mod.main(["--case", "16,64,4", "--n", "64", "--repeats", "1", "--sklearn-seconds", "0.01"])
    assert len(rows) == 1
    row = rows[0]
    for key in ("case", "device", "device_name", "n", "dtype", "vectors_per_s", "sklearn_n",
                "sklearn_vectors_per_s", "ratio", "support_agreement", "peak_memory_bytes"):
        assert key in row
    assert row["case"] == [16, 64, 4] and row["n"] == 64 and row["support_agreement"] >= 0.9
    assert '"vectors_per_s"' in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    k1, k2, s = 64, 256, 12
    a = sensing_matrix(k1, k2, seed=1, dtype=F64)
    w = _signals(3000, k1, seed=2)
    cpu = batch_omp(w, a, sparsity=s)
    gpu = batch_omp(w.cuda(), a.cuda(), sparsity=s)
    assert gpu.indices.device.type == "cuda"
    agree = np.mean([x == y for x, y in zip(_support_sets(cpu), _support_sets(gpu.__class__(
        gpu.indices.cpu(), gpu.coefs.cpu(), gpu.counts.cpu())), strict=True)])
    assert agree >= 0.999
    g32 = batch_omp(w.float().cuda(), a.float().cuda(), tol=0.2, chunk_size=500)
    c32 = batch_omp(w.float(), a.float(), tol=0.2)
    assert np.mean((g32.counts.cpu() == c32.counts).numpy()) >= 0.99
