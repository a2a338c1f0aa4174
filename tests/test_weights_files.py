"""The safetensors-shaped API (save_file / load_file / safe_open), sharded checkpoints, tensor-by-tensor
memory, and stores that any Zarr reader decodes without sinr-codecs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import torch

from sinr_codecs import load_file, safe_open, save_file
from sinr_codecs.errors import WeightsError
from sinr_codecs.weights import compress_weights, decompress_weights, inspect_store

safetensors = pytest.importorskip("safetensors.torch")


def model(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(300, 64, generator=g),
        "layers.0.weight": torch.randn(128, 64, generator=g) * 0.05,
        "layers.0.bias": torch.randn(128, generator=g) * 0.01,
        "layers.1.weight": (torch.randn(64, 128, generator=g) * 0.05).to(torch.bfloat16),
        "norm.weight": torch.ones(64, dtype=torch.float16),
        "step": torch.tensor(7),
    }


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / a.double().norm())


def test_save_and_load_file_round_trip_with_dtypes_and_metadata(tmp_path):
    sd = model()
    report = save_file(sd, tmp_path / "m.zip", metadata={"format": "pt", "author": "tests"}, max_rel_error=0.01)
    assert {t.policy for t in report.tensors} == {"global", "lossless"}
    back = load_file(tmp_path / "m.zip")
    assert list(back) == list(sd)
    for name, t in sd.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape
    assert torch.equal(back["step"], sd["step"])
    assert rel(sd["embed.weight"], back["embed.weight"]) < 0.02
    with safe_open(tmp_path / "m.zip", framework="np") as f:
        assert f.metadata() == {"format": "pt", "author": "tests"}
        assert f.get_tensor("layers.0.bias").dtype == np.float32
        assert f.record("layers.0.weight").policy == "global"
        with pytest.raises(KeyError, match="no tensor 'nope'"):
            f.get_tensor("nope")
    with pytest.raises(TypeError, match="torch tensors or numpy arrays"):
        save_file({"x": [1, 2, 3]}, tmp_path / "bad.zip")


def test_one_tensor_is_decoded_without_touching_the_others(tmp_path):
    save_file(model(), tmp_path / "m.zarr")
    tensor = tmp_path / "m.zarr" / "layers.0.weight"
    chunk = next(p for p in tensor.rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"damaged")  # a damaged tensor does not stop the others from being read
    with safe_open(tmp_path / "m.zarr") as f:
        assert f.get_tensor("embed.weight").shape == (300, 64)
        with pytest.raises(WeightsError, match="layers.0.weight"):
            f.get_tensor("layers.0.weight")


def test_a_sharded_checkpoint_goes_in_and_comes_back_as_shards(tmp_path):
    sd = model(1)
    shards = {"model-00001-of-00002.safetensors": ["embed.weight", "layers.0.weight", "layers.0.bias"],
              "model-00002-of-00002.safetensors": ["layers.1.weight", "norm.weight", "step"]}
    src = tmp_path / "src"
    src.mkdir()
    for file, names in shards.items():
        safetensors.save_file({n: sd[n] for n in names}, str(src / file), metadata={"format": "pt"})
    index = {"metadata": {"total_size": 12345}, "weight_map": {n: f for f, ns in shards.items() for n in ns}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))

    report = compress_weights(src / "model.safetensors.index.json", tmp_path / "m.zip", progress=False)
    assert [t.name for t in report.tensors] == [n for ns in shards.values() for n in sorted(ns)]  # shard by shard
    out = tmp_path / "out"
    out.mkdir()
    decompress_weights(tmp_path / "m.zip", out / "model.safetensors.index.json", progress=False)
    back_index = json.loads((out / "model.safetensors.index.json").read_text())
    assert back_index["weight_map"] == index["weight_map"]
    assert back_index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in sd.values())
    for file, names in shards.items():
        restored = safetensors.load_file(str(out / file))
        assert sorted(restored) == sorted(names)
        assert torch.equal(restored["step"], sd["step"]) if "step" in names else True
    # a single file from a sharded store, and no shards from a single-file store
    decompress_weights(tmp_path / "m.zip", tmp_path / "one.safetensors", progress=False)
    assert set(safetensors.load_file(str(tmp_path / "one.safetensors"))) == set(sd)
    save_file(sd, tmp_path / "single.zip")
    with pytest.raises(WeightsError, match="not compressed from a sharded checkpoint"):
        decompress_weights(tmp_path / "single.zip", out / "again.safetensors.index.json", progress=False)


def test_a_damaged_index_is_a_weights_error(tmp_path):
    (tmp_path / "a.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../outside.safetensors"}}))
    with pytest.raises(WeightsError, match="outside its folder"):
        compress_weights(tmp_path / "a.safetensors.index.json", tmp_path / "o.zip", progress=False)
    (tmp_path / "b.safetensors.index.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not a JSON checkpoint index"):
        compress_weights(tmp_path / "b.safetensors.index.json", tmp_path / "o.zip", progress=False)
    safetensors.save_file({"w": torch.ones(8, 8)}, str(tmp_path / "s.safetensors"))
    (tmp_path / "c.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "s.safetensors", "v": "s.safetensors"}}))
    with pytest.raises(WeightsError, match="do not hold"):
        compress_weights(tmp_path / "c.safetensors.index.json", tmp_path / "o.zip", progress=False)


def test_compression_holds_one_tensor_at_a_time(tmp_path):
    """Peak numpy memory while compressing a file of eight 4 MiB tensors stays near a few tensors' worth, not
    the file's 32 MiB (safetensors are read tensor by tensor, and each tensor is coded chunk by chunk)."""
    g = torch.Generator().manual_seed(3)
    sd = {f"layers.{i}.weight": torch.randn(1024, 1024, generator=g) * 0.02 for i in range(8)}
    safetensors.save_file(sd, str(tmp_path / "big.safetensors"))
    tracemalloc.start()
    try:
        compress_weights(tmp_path / "big.safetensors", tmp_path / "big.zip", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one = 1024 * 1024 * 4
    assert peak < 4 * one, peak / one
    tracemalloc.start()
    try:
        decompress_weights(tmp_path / "big.zip", tmp_path / "back.safetensors", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * one, peak / one


def test_global_tensors_are_read_by_plain_zarr_without_sinr_codecs(tmp_path):
    sd = model()
    compress_weights_path = tmp_path / "m.pt"
    torch.save(sd, compress_weights_path)
    report = compress_weights(compress_weights_path, tmp_path / "m.zarr", progress=False)
    expected = {t.name: load_file(tmp_path / "m.zarr")[t.name] for t in report.tensors if t.policy == "global"}
    reader = textwrap.dedent(f"""
        import importlib.abc, json, sys, warnings
        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "sinr_codecs" or name.startswith("sinr_codecs."):
                    raise ImportError("sinr_codecs is not allowed here")
        sys.meta_path.insert(0, Refuse())
        warnings.simplefilter("ignore")
        import base64
        import numpy as np, zarr
        root = zarr.open_group({str(tmp_path / "m.zarr")!r}, mode="r")
        out = {{}}
        for name in root.array_keys():
            arr = root[name]
            if arr.attrs["sinr_codecs"]["policy"] == "global":
                out[arr.attrs["sinr_codecs"]["name"]] = np.asarray(arr[...]).astype("f8").tolist()
        from numcodecs.pcodec import PCodec
        for rec in root.attrs["sinr_codecs"]["tensors"]:  # small tensors: their one chunk in the record
            c = rec["codec"]
            if rec["policy"] == "global" and "inline" in c:
                q = np.asarray(PCodec().decode(base64.b64decode(c["inline"])))
                values = (q / (1 / c["step"])).astype(rec["stored_dtype"])  # as FixedScaleOffset decodes
                out[rec["name"]] = values.astype("f8").tolist()
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plain = json.loads(proc.stdout)
    assert set(plain) == set(expected) and len(plain) == 5
    for name, values in plain.items():  # float16/bfloat16 tensors are held widened to float32
        got = torch.tensor(values, dtype=torch.float32).reshape(sd[name].shape).to(sd[name].dtype)
        assert torch.equal(got, expected[name]), name
    info = inspect_store(tmp_path / "m.zarr")
    assert info.global_step is not None and "global step" in info.format_table()
