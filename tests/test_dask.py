"""Dask writes a SINR-coded Zarr array from several worker processes; every chunk decodes within the
codec's error bound. Dask is an optional extra (``pip install 'sinr-codecs[dask]'``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import zarr  # noqa: E402

from sinr_codecs.zarr3 import SINRCodec  # noqa: E402

BOUND = 0.05  # per-vector relative L2 error bound (the codec's error-bounded mode)


def smooth(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, 4)) @ rng.standard_normal((4, cols))
            + 0.05 * rng.standard_normal((rows, cols))).astype(np.float32)


def row_errors(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x - y, axis=1) / np.linalg.norm(x, axis=1)


def test_to_zarr_from_worker_processes(tmp_path):
    x = smooth(128, 64)
    path = tmp_path / "w.zarr"
    codec = SINRCodec(max_rel_error=BOUND, value_bits=12, device="cpu")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        darr = da.from_array(x, chunks=(16, 64))  # 8 chunks of whole rows
        with distributed.get_task_stream(client) as stream:
            da.to_zarr(darr, str(path), serializer=codec, compressors=None, mode="w")
        workers = {t["worker"] for t in stream.data}
        back = da.from_zarr(str(path)).compute()  # decoded on the workers too
    assert len(workers) == 2, f"expected both worker processes to write chunks, got {workers}"
    arr = zarr.open_array(str(path), mode="r")
    assert arr.metadata.codecs[0] == codec and arr.nchunks_initialized == 8
    for i in range(0, 128, 16):  # every chunk, decoded here, within the bound
        got = arr[i:i + 16]
        assert row_errors(x[i:i + 16], got).max() <= BOUND
        np.testing.assert_array_equal(back[i:i + 16], got)
