"""Whole models: the uniform quantizer beside SINR (policies uniform and best), bfloat16/float16 model files,
the large-error warning, the progress bar's ETA and encoding on a Dask cluster."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from sinr_codecs import uniform
from sinr_codecs.cli import main
from sinr_codecs.codec import SINR, relative_error
from sinr_codecs.weights import compress_weights, decompress_weights, inspect_store


def smooth(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, 3)) @ rng.standard_normal((3, cols))
            + 0.3 * rng.standard_normal((rows, cols))).astype(np.float32) / 8


def state_dict(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    return {"fc1.weight": torch.from_numpy(smooth(64, 64)).to(dtype),
            "fc1.bias": torch.linspace(-1, 1, 64).to(dtype),
            "fc2.weight": torch.from_numpy(smooth(32, 64, 1)).to(dtype)}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return relative_error(a.double().numpy(), b.double().numpy())


# ------------------------------------------------------------------------------------ the quantizer
@pytest.mark.parametrize("target", [0.3, 0.05, 0.01])
def test_uniform_fit_meets_the_target_with_the_largest_step(target):
    w = smooth(128, 64)
    f = uniform.fit(w, target)
    got = relative_error(w, f.restore(f.quantize(w)).astype(np.float32))
    assert got <= target and got > 0.9 * target  # tight: a larger step would break the bound
    levels = int(np.abs(f.quantize(w)).max())
    assert f.astype == ("<i2" if levels <= 127 else "<i2") and 2 <= f.bits <= 10


def test_uniform_fit_bits_and_dtype_floor():
    w = smooth(64, 64)
    f = uniform.fit_bits(w, 8)
    assert int(np.abs(f.quantize(w)).max()) == 127 and f.bits == 8
    rnd = lambda a: torch.from_numpy(a).to(torch.bfloat16).double().numpy()  # noqa: E731
    g = uniform.fit(w, 1e-5, round_to=rnd)  # float32 values restored as bfloat16: below its rounding
    assert g.rel_error > 1e-5 and g.rel_error < 5e-3  # stops at the floor, does not loop or blow up
    with pytest.raises(ValueError, match="finite"):
        uniform.fit(np.array([1.0, np.nan], dtype=np.float32), 0.1)


# ------------------------------------------------------------------------------- policies in stores
def test_uniform_and_best_policies_round_trip_and_read_with_plain_zarr(tmp_path):
    import warnings

    import zarr

    src = tmp_path / "m.pt"
    torch.save(state_dict(), src)
    rep = compress_weights(src, tmp_path / "m.zarr", codec_config={"max_rel_error": 0.05}, device="cpu",
                           progress=False, lossy="best",
                           policy_overrides={"fc2.*": {"policy": "uniform", "bits": 6}})
    recs = {t.name: t for t in rep.tensors}
    assert recs["fc1.bias"].policy == "lossless"
    assert recs["fc2.weight"].policy == "uniform" and recs["fc2.weight"].codec["bits"] == 6
    best = recs["fc1.weight"]
    assert best.policy in ("sinr", "uniform") and best.reason.startswith(("best", "matrix"))
    assert best.uniform_bytes is not None and best.uniform_bytes > 0
    if best.policy == "sinr":  # kept because it was smaller
        assert best.bytes_after <= best.uniform_bytes and "best: sinr" in best.reason
    else:
        assert best.bytes_after < 2 * best.uniform_bytes and best.rel_error <= 0.051
    decompress_weights(tmp_path / "m.zarr", tmp_path / "r.pt", progress=False)
    back, orig = torch.load(tmp_path / "r.pt", weights_only=True), state_dict()
    for name, t in orig.items():
        assert back[name].dtype == t.dtype
        assert rel(orig[name], back[name]) == pytest.approx(recs[name].rel_error, rel=1e-6, abs=1e-9)
    # the uniform array decodes with the store alone: plain zarr returns the floats
    arr = recs["fc2.weight"].array
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = zarr.open_group(str(tmp_path / "m.zarr"), mode="r")[arr][...]
    np.testing.assert_array_equal(plain, back["fc2.weight"].numpy())
    table = inspect_store(tmp_path / "m.zarr").format_table()
    assert "uniform/6b" in table and " uniform " in table.splitlines()[0] + " "


def test_every_sinr_tensor_records_what_uniform_needs(tmp_path):
    src = tmp_path / "m.pt"
    torch.save(state_dict(), src)
    rep = compress_weights(src, tmp_path / "m.zarr", codec_config={"sparsity": 0.25, "value_bits": 8}, lossy="sinr",
                           device="cpu", progress=False)
    sinr = [t for t in rep.tensors if t.policy == "sinr"]
    assert sinr and all(t.uniform_bytes and t.uniform_bits for t in sinr)
    d = rep.to_dict()["totals"]
    assert d["bytes_if_uniform"] == rep.bytes_if_uniform != rep.bytes_after


def test_lossy_uniform_everywhere_and_bad_options(tmp_path):
    src = tmp_path / "m.pt"
    torch.save(state_dict(), src)
    rep = compress_weights(src, tmp_path / "u.zarr", codec_config={"max_rel_error": 0.01}, device="cpu",
                           progress=False, lossy="uniform")
    lossy = [t for t in rep.tensors if t.policy != "lossless"]
    assert {t.policy for t in lossy} == {"uniform"} and all(0 < t.rel_error <= 0.01 for t in lossy)
    with pytest.raises(ValueError, match="lossy"):
        compress_weights(src, tmp_path / "x.zarr", lossy="zfp", progress=False)
    with pytest.raises(ValueError, match="bits"):
        compress_weights(src, tmp_path / "x.zarr", progress=False,
                         policy_overrides={"*": {"policy": "uniform", "bits": 40}})
    assert not (tmp_path / "x.zarr").exists()


# ---------------------------------------------------------------------------- bfloat16 and float16
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("lossy", ["sinr", "uniform"])
def test_half_precision_files_restore_to_their_dtype(fmt, dtype, lossy, tmp_path):
    sd = state_dict(dtype)
    src = tmp_path / f"m.{fmt}"
    if fmt == "pt":
        torch.save(sd, src)
    else:
        from safetensors.torch import load_file, save_file

        save_file(sd, str(src))
    rep = compress_weights(src, tmp_path / "m.zarr", codec_config={"max_rel_error": 0.02}, device="cpu",
                           progress=False, lossy=lossy)
    back_path = tmp_path / f"r.{fmt}"
    decompress_weights(tmp_path / "m.zarr", back_path, progress=False)
    back = torch.load(back_path, weights_only=True) if fmt == "pt" else load_file(str(back_path))
    recs = {t.name: t for t in rep.tensors}
    for name, t in sd.items():
        assert back[name].dtype == dtype and back[name].shape == t.shape, name
        if recs[name].policy == "lossless":
            assert torch.equal(back[name], t)
        else:
            assert recs[name].policy == lossy and recs[name].dtype == str(dtype).removeprefix("torch.")
            assert rel(t, back[name]) <= 0.02 + 1e-9


def test_codec_refuses_bfloat16_numpy_arrays_with_a_way_out():
    # ml_dtypes is not among the test extras: its bfloat16 is a 2-byte void-kind numpy dtype, like this one
    fake = np.zeros((4, 64), dtype="V2")
    with pytest.raises(TypeError, match=r"bfloat16.*astype\('float32'\)"):
        SINR(sparsity=4).encode(fake)


# ------------------------------------------------------------------------------------- the command
def test_compress_warns_once_about_large_errors(tmp_path, capsys):
    src = tmp_path / "m.pt"
    torch.save(state_dict(), src)
    assert main(["compress", str(src), "-o", str(tmp_path / "a.zarr"), "--sparsity", "0.1",
                 "--value-bits", "6", "--device", "cpu", "-q"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1 and "fc1.weight" in lines[0] and "--max-rel-error" in lines[0]
    assert main(["compress", str(src), "-o", str(tmp_path / "b.zarr"), "--max-rel-error", "0.02",
                 "--lossy", "best", "--policy", "fc2.*=uniform:bits=8", "--device", "cpu", "--json"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err and '"bytes_if_uniform"' in out.out and '"policy": "uniform"' in out.out


def test_progress_shows_overall_eta_and_tensor_count(tmp_path, capsys, monkeypatch):
    from sinr_codecs import progress

    monkeypatch.setattr(progress, "enabled", lambda quiet=False: not quiet)
    src = tmp_path / "m.pt"
    torch.save(state_dict(), src)
    compress_weights(src, tmp_path / "m.zarr", codec_config={"sparsity": 8}, lossy="sinr", device="cpu", progress=True)
    err = capsys.readouterr().err
    assert "compress:" in err and "3/3 tensors" in err and "<00:00" in err and "100%" in err


# ------------------------------------------------------------------------------------------- Dask
def test_compress_on_a_local_cluster_of_worker_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "m.pt"
    sd = {"w": torch.from_numpy(smooth(512, 64))}  # one chunk per 16 rows: several chunks to spread
    torch.save(sd, src)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        import sinr_codecs.weights as weights

        old = weights.CHUNK_WORK
        weights.CHUNK_WORK = 64 * 64 * 64  # 64 rows a chunk: 8 tasks
        try:
            with distributed.get_task_stream(client) as stream:
                rep = compress_weights(src, tmp_path / "d.zarr", codec_config={"max_rel_error": 0.05}, lossy="sinr",
                                       device="cpu", progress=False, scheduler=cluster.scheduler_address)
        finally:
            weights.CHUNK_WORK = old
    workers = {t["worker"] for t in stream.data}
    assert len(workers) == 2 and len(stream.data) >= 8
    decompress_weights(tmp_path / "d.zarr", tmp_path / "r.pt", progress=False)
    back = torch.load(tmp_path / "r.pt", weights_only=True)["w"]
    assert 0 < rel(sd["w"], back) <= 0.05 and rep.tensors[0].chunks[0] == 64
