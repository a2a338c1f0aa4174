"""Whole-model compression: model file -> Zarr group -> model file, the policy, and bad inputs."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_codecs import weights
from sinr_codecs.codec import relative_error
from sinr_codecs.weights import (
    MIN_SINR_ELEMENTS,
    WeightsError,
    choose_policy,
    compress_weights,
    decompress_weights,
    inspect_store,
)

OPTS = {"sparsity": 0.25, "value_bits": 12}


def smooth(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, 3)) @ rng.standard_normal((3, cols))
            + 0.05 * rng.standard_normal((rows, cols))).astype(np.float32) / 8


def model_tensors(fmt: str) -> dict:
    """A small model exercising every policy branch; torch tensors, or numpy arrays for npz."""
    t = {
        "layers.0.weight": smooth(64, 64),                          # sinr / rows
        "layers.0.bias": np.linspace(-1, 1, 64, dtype=np.float32),  # lossless: 1-D
        "blk/attn.qkv.weight": smooth(96, 64, 1).astype(np.float16),  # sinr, float16, a slash in the name
        "conv.weight": smooth(8, 36, 2).reshape(8, 4, 3, 3),        # sinr / flat (k1 = 36 < 50)
        "Layers.0.weight": smooth(4, 4, 3),                         # lossless: tiny; name clash if
                                                                    # case is ignored
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),      # lossless: integer scalar
        "mask": np.array([True, False, True]),                      # lossless: bool
        "broken": np.full((20, 20), np.nan, dtype=np.float32),      # lossless: non-finite
        "empty": np.zeros((0, 8), dtype=np.float32),                # lossless: empty
    }
    if fmt == "npz":
        t["big_endian"] = smooth(64, 64, 4).astype(">f4")           # sinr, byte order kept
        return t
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in t.items()}
    out["bf16.weight"] = torch.from_numpy(smooth(64, 64, 5)).to(torch.bfloat16)  # sinr via float32
    out["bf16.bias"] = torch.linspace(-1, 1, 10).to(torch.bfloat16)                # lossless bits
    return out


def save(tensors: dict, path: Path, fmt: str) -> None:
    if fmt == "torch":
        torch.save(tensors, path)
    elif fmt == "safetensors":
        pytest.importorskip("safetensors")  # an optional extra
        from safetensors.torch import save_file

        save_file(tensors, str(path), metadata={"author": "tests"})
    else:
        np.savez(path, **tensors)


def load(path: Path, fmt: str) -> dict:
    if fmt == "torch":
        return torch.load(path, weights_only=True)
    if fmt == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


SUFFIX = {"torch": ".pt", "safetensors": ".safetensors", "npz": ".npz"}


def as_f64(x) -> np.ndarray:
    return x.to(torch.float64).numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def same_bits(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return a.numel() == 0 or torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("store", ["dir", "zip"])
@pytest.mark.parametrize("fmt", ["torch", "safetensors", "npz"])
def test_round_trip(fmt, store, tmp_path):
    original = model_tensors(fmt)
    src = tmp_path / f"model{SUFFIX[fmt]}"
    save(original, src, fmt)
    dst = tmp_path / ("model.zarr" if store == "dir" else "model.zip")
    report = compress_weights(src, dst, codec_config=OPTS, lossy="sinr", device="cpu", progress=False)
    assert dst.exists() and not list(tmp_path.glob(".*partial*"))
    assert report.bytes_after < report.bytes_before

    back_path = tmp_path / f"restored{SUFFIX[fmt]}"
    back_report = decompress_weights(dst, back_path, progress=False)
    back = load(back_path, fmt)
    if fmt == "npz":
        assert list(back) == list(original)  # order kept too
    assert set(back) == set(original)
    records = {r.name: r for r in back_report.tensors}
    for name, want in original.items():
        got, rec = back[name], records[name]
        assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), name
        if rec.policy == "lossless":
            assert same_bits(got, want), name
            assert rec.rel_error == 0
        else:
            measured = relative_error(as_f64(want), as_f64(got))
            assert measured == pytest.approx(rec.rel_error, rel=1e-6, abs=1e-9), name
            assert 0.2 < measured < 0.31, name  # 1/4 of the atoms of Gaussian rows: 0.27-0.30 measured
    policies = {n: (r.policy, r.layout) for n, r in records.items()}
    assert policies["layers.0.weight"] == ("sinr", "rows")
    assert policies["conv.weight"] == ("sinr", "flat")
    for name in ("layers.0.bias", "Layers.0.weight", "bn.num_batches_tracked", "mask", "broken", "empty"):
        assert policies[name][0] == "lossless", name
    if fmt != "npz":
        assert policies["bf16.weight"] == ("sinr", "rows") and records["bf16.weight"].encoding == "float32"
        assert records["bf16.bias"].encoding == "bits"
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(back_path), framework="pt") as f:
            assert f.metadata() == {"author": "tests"}


def test_info_reads_metadata_only(tmp_path):
    src = tmp_path / "m.pt"
    save(model_tensors("torch"), src, "torch")
    dst = tmp_path / "m.zarr"
    written = compress_weights(src, dst, codec_config=OPTS, lossy="sinr", device="cpu", progress=False)
    for chunk in dst.glob("*/c/**/*"):  # info must not need any chunk
        if chunk.is_file():
            chunk.write_bytes(b"garbage")
    info = inspect_store(dst)
    assert [t.name for t in info.tensors] == list(model_tensors("torch"))
    assert [t.rel_error for t in info.tensors] == [t.rel_error for t in written.tensors]
    assert info.bytes_before == written.bytes_before and info.bytes_after == written.bytes_after
    d = json.loads(json.dumps(info.to_dict()))
    assert d["totals"]["tensors"] == len(info.tensors)
    rec = next(t for t in d["tensors"] if t["name"] == "layers.0.weight")
    assert rec["codec"]["id"] == "sinr" and rec["codec"]["value_bits"] == 12
    assert rec["codec"]["layout"] == "rows"
    table = info.format_table()
    assert "blk/attn.qkv.weight" in table and "sinr/sparse/flat" in table and "total: 11 tensors" in table


def test_group_attributes_record_everything(tmp_path):
    import zarr

    src = tmp_path / "m.pt"
    save(model_tensors("torch"), src, "torch")
    compress_weights(src, tmp_path / "m.zarr", codec_config=OPTS, lossy="sinr", device="cpu", progress=False)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    meta = group.attrs["sinr_codecs"]
    assert meta["format"] == "sinr-weights" and meta["version"] == 2 and meta["source_format"] == "torch"
    inline = 0
    for rec in meta["tensors"]:
        keys = {"name", "dtype", "shape", "policy", "codec", "bytes_before", "bytes_after", "rel_error"}
        assert keys <= set(rec)
        if rec["codec"].get("id") == "inline" or "inline" in rec["codec"]:  # a bias: in its record
            inline += 1
            assert rec["bytes_before"] <= weights.INLINE_MAX_BYTES and rec["array"] not in group
            continue
        arr = group[rec["array"]]
        assert arr.attrs["sinr_codecs"]["name"] == rec["name"]  # each array is self-describing too
    assert 0 < inline < len(meta["tensors"])
    names = [r["array"] for r in meta["tensors"]]
    assert len({n.lower() for n in names}) == len(names)  # unique even on case-insensitive filesystems
    assert all("/" not in n for n in names)


def test_restore_into_another_format(tmp_path):
    src = tmp_path / "m.pt"
    tensors = {k: v for k, v in model_tensors("torch").items() if not k.startswith("bf16")}
    save(tensors, src, "torch")
    compress_weights(src, tmp_path / "m.zip", codec_config=OPTS, lossy="sinr", device="cpu", progress=False)
    decompress_weights(tmp_path / "m.zip", tmp_path / "m.npz", progress=False)
    back = load(tmp_path / "m.npz", "npz")
    assert {k: v.dtype for k, v in back.items()} == {k: v.numpy().dtype for k, v in tensors.items()}


def test_bfloat16_cannot_go_to_npz(tmp_path):
    save({"w": torch.randn(4, 4).bfloat16()}, tmp_path / "m.pt", "torch")
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False)
    with pytest.raises(WeightsError, match="bfloat16.*npz"):
        decompress_weights(tmp_path / "m.zarr", tmp_path / "m.npz", progress=False)
    assert not (tmp_path / "m.npz").exists()


def test_checkpoint_wrapper_is_unwrapped_with_a_note(tmp_path):
    sd = {"w": torch.from_numpy(smooth(64, 64))}
    torch.save({"state_dict": sd, "epoch": 3, "lr": 0.1}, tmp_path / "ckpt.ckpt")
    report = compress_weights(tmp_path / "ckpt.ckpt", tmp_path / "c.zarr", codec_config=OPTS, lossy="sinr",
                              progress=False)
    assert [t.name for t in report.tensors] == ["w"]
    assert any("state_dict" in n and "epoch" in n for n in report.notes)
    assert any("state_dict" in n for n in inspect_store(tmp_path / "c.zarr").notes)


def test_policy_overrides_with_options(tmp_path):
    sd = {"a.weight": torch.from_numpy(smooth(64, 64)), "a.bias": torch.linspace(0, 1, 300),
          "b.weight": torch.from_numpy(smooth(64, 64, 1)), "n": torch.arange(5)}
    torch.save(sd, tmp_path / "m.pt")
    overrides = {"a.*": {"policy": "sinr", "value_bits": 8}, "b.*": "lossless", "n": "sinr"}
    report = compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", codec_config=OPTS, lossy="sinr",
                              policy_overrides=overrides, progress=False)
    rec = {t.name: t for t in report.tensors}
    assert rec["a.weight"].policy == "sinr" and rec["a.weight"].codec["value_bits"] == 8
    assert rec["a.bias"].policy == "sinr" and rec["a.bias"].layout == "flat"
    assert rec["b.weight"].policy == "lossless" and rec["b.weight"].reason == "override b.*"
    assert rec["n"].policy == "lossless" and "ignored" in rec["n"].reason
    decompress_weights(tmp_path / "m.zarr", tmp_path / "back.pt", progress=False)
    assert torch.equal(torch.load(tmp_path / "back.pt", weights_only=True)["b.weight"], sd["b.weight"])


# --------------------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,shape,finite,policy,layout", [
    ("float32", (64, 64), True, "sinr", "rows"),
    ("float16", (128, 3, 3, 3), True, "sinr", "blocks"),      # conv, k1 = 27 < 50, 3456 values
    ("bfloat16", (32, 64), True, "sinr", "rows"),
    (">f8", (16, 64), True, "sinr", "rows"),
    ("float32", (16, 16), True, "sinr", "flat"),              # k1 = 16 < 50, 256 values: flattened
    ("float32", (1000, 10), True, "sinr", "blocks"),          # short rows, too big to flatten
    ("float32", (2, 50), True, "lossless", None),             # < MIN_SINR_ELEMENTS
    ("float32", (4, 11008), True, "sinr", "blocks"),          # rows too long for one dictionary
    ("float32", (64,), True, "lossless", None),
    ("float32", (), True, "lossless", None),
    ("float32", (8, 8), True, "lossless", None),              # tiny
    ("float32", (64, 64), False, "lossless", None),           # NaN/inf
    ("float32", (0, 64), True, "lossless", None),
    ("int64", (64, 64), True, "lossless", None),
    ("bool", (64, 64), True, "lossless", None),
    ("complex64", (64, 64), True, "lossless", None),
    ("float8_e4m3fn", (64, 64), True, "lossless", None),
])
def test_default_policy(dtype, shape, finite, policy, layout):
    d = choose_policy("x", dtype=dtype, shape=shape, finite=finite)
    assert (d.policy, d.layout) == (policy, layout if policy == "sinr" else None)
    assert d.reason


def test_long_rows_are_cut_into_equal_blocks():
    d = choose_policy("mlp.up", dtype="bfloat16", shape=(4096, 11008))
    assert d.layout == "blocks" and 11008 % d.options["block_size"] == 0
    assert d.options["block_size"] <= 4096


def test_policy_thresholds_and_override_order():
    assert choose_policy("w", dtype="float32", shape=(1, MIN_SINR_ELEMENTS)).policy == "sinr"
    assert choose_policy("w", dtype="float32", shape=(1, MIN_SINR_ELEMENTS - 1)).policy == "lossless"
    over = {"*": "lossless", "enc.*": "sinr", "enc.5.*": {"policy": "sinr", "sparsity": 4}}
    assert choose_policy("dec.0.weight", dtype="float32", shape=(64, 64), overrides=over).policy == "lossless"
    d = choose_policy("enc.5.weight", dtype="float32", shape=(64, 64), overrides=over)
    assert d.policy == "sinr" and dict(d.options) == {"sparsity": 4} and d.reason == "override enc.5.*"
    d = choose_policy("enc.5.weight", dtype="float32", shape=(64, 64),
                      overrides={"enc.*": {"policy": "sinr", "layout": "flat"}})
    assert d.layout == "flat"
    for bad in ({"x": "zip"}, {"x": 3}, {"x": {"policy": "lossless", "sparsity": 3}}, {"": "sinr"},
                {"x": {"policy": "sinr", "dtype": "float16"}}):
        with pytest.raises(ValueError):
            choose_policy("x", dtype="float32", shape=(64, 64), overrides=bad)


def test_bad_codec_options_fail_before_any_work(tmp_path):
    save({"w": torch.zeros(64, 64)}, tmp_path / "m.pt", "torch")
    for config in ({"sparsity": 0}, {"value_bits": 99}, {"layout": "diagonal"}, {"dtype": "float16"}):
        with pytest.raises(ValueError):
            compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", codec_config=config, progress=False)
    with pytest.raises(ValueError):
        compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False,
                         policy_overrides={"w": {"policy": "sinr", "value_bits": 0}})
    assert not (tmp_path / "m.zarr").exists()


# --------------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.zeros(2), "evil": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="refused") as err:
        compress_weights(tmp_path / "evil.pt", tmp_path / "out.zarr", progress=False)
    assert "weights_only" in str(err.value) and "state_dict()" in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("obj,match", [
    ([torch.zeros(2)], "list, not a state_dict"),
    (torch.zeros(3), "single tensor"),
    ({"w": torch.zeros(2), "step": 3}, "entry 'step' is a int"),
    ({"w": torch.zeros(2), "sub": {"x": 1}}, "entry 'sub'"),
    ({1: torch.zeros(2)}, "entry 1"),
])
def test_pickle_that_is_not_a_state_dict(obj, match, tmp_path):
    torch.save(obj, tmp_path / "x.pt")
    with pytest.raises(WeightsError, match=match):
        compress_weights(tmp_path / "x.pt", tmp_path / "out.zarr", progress=False)


def test_missing_unknown_and_garbage_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        compress_weights(tmp_path / "nope.pt", tmp_path / "o.zarr", progress=False)
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown model file format '.onnx'"):
        compress_weights(tmp_path / "m.onnx", tmp_path / "o.zarr", progress=False)
    (tmp_path / "junk.pt").write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsError, match="not a readable PyTorch file"):
        compress_weights(tmp_path / "junk.pt", tmp_path / "o.zarr", progress=False)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(WeightsError, match="safetensors"):
        compress_weights(tmp_path / "junk.safetensors", tmp_path / "o.zarr", progress=False)
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(WeightsError, match="unpickling"):
        compress_weights(tmp_path / "obj.npz", tmp_path / "o.zarr", progress=False)
    torch.save({}, tmp_path / "empty.pt")
    with pytest.raises(WeightsError, match="no tensors"):
        compress_weights(tmp_path / "empty.pt", tmp_path / "o.zarr", progress=False)
    with pytest.raises(WeightsError, match="does not exist"):
        compress_weights(tmp_path / "empty.pt", tmp_path / "no" / "such" / "o.zarr", progress=False)
    assert not (tmp_path / "o.zarr").exists()


def test_missing_safetensors_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    save({"w": torch.zeros(2)}, tmp_path / "m.safetensors", "safetensors")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(WeightsError, match=r"pip install 'sinr-codecs\[safetensors\]'"):
        compress_weights(tmp_path / "m.safetensors", tmp_path / "o.zarr", progress=False)


def test_existing_destinations(tmp_path):
    save({"w": torch.zeros(4)}, tmp_path / "m.pt", "torch")
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False)
    with pytest.raises(WeightsError, match="already exists"):
        compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False)
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False, overwrite=True)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    with pytest.raises(WeightsError, match="refusing to replace .*precious: it is a folder without zarr.json"):
        compress_weights(tmp_path / "m.pt", tmp_path / "precious", progress=False, overwrite=True)
    assert (tmp_path / "precious" / "thesis.tex").exists()
    decompress_weights(tmp_path / "m.zarr", tmp_path / "back.pt", progress=False)
    with pytest.raises(WeightsError, match="already exists"):
        decompress_weights(tmp_path / "m.zarr", tmp_path / "back.pt", progress=False)
    with pytest.raises(WeightsError, match="unknown output format"):
        decompress_weights(tmp_path / "m.zarr", tmp_path / "back.h5", progress=False)


@pytest.fixture
def store_pair(tmp_path):
    """A model with one SINR and one lossless tensor, compressed to a directory and to a zip."""
    sd = {"w": torch.from_numpy(smooth(64, 64)), "b": torch.linspace(-1, 1, 64)}
    save(sd, tmp_path / "m.pt", "torch")
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", codec_config=OPTS, lossy="sinr", progress=False)
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zip", codec_config=OPTS, lossy="sinr", progress=False)
    return tmp_path


def test_truncated_zip_store(store_pair):
    z = store_pair / "m.zip"
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    calls = (lambda: inspect_store(z), lambda: decompress_weights(z, store_pair / "o.pt", progress=False))
    for call in calls:
        with pytest.raises(WeightsError, match="not a valid zip file"):
            call()


def test_missing_chunk(store_pair):
    for chunk in (store_pair / "m.zarr" / "w" / "c").rglob("*"):
        if chunk.is_file():
            chunk.unlink()
    with pytest.raises(WeightsError, match=r"tensor 'w'.*0 of its 1 chunks"):
        decompress_weights(store_pair / "m.zarr", store_pair / "o.pt", progress=False)
    assert not (store_pair / "o.pt").exists()


def test_corrupt_chunk(store_pair):
    (chunk,) = [p for p in (store_pair / "m.zarr" / "w" / "c").rglob("*") if p.is_file()]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="cannot be decoded"):
        decompress_weights(store_pair / "m.zarr", store_pair / "o.pt", progress=False)


def _edit_record(store: Path, name: str, edit) -> None:
    meta_path = store / "zarr.json"
    doc = json.loads(meta_path.read_text())
    (rec,) = [t for t in doc["attributes"]["sinr_codecs"]["tensors"] if t["name"] == name]
    edit(rec)
    meta_path.write_text(json.dumps(doc))


def _flip_one(data: str) -> str:
    i = len(data) // 2
    return data[:i] + ("A" if data[i] != "A" else "B") + data[i + 1:]


@pytest.mark.parametrize("edit,match", [
    (lambda r: r["codec"].update(data=_flip_one(r["codec"]["data"])), "checksum"),
    (lambda r: r["codec"].update(data=r["codec"]["data"][:-4]), "does not hold 256 bytes"),
    (lambda r: r["codec"].update(data="!" * len(r["codec"]["data"])), "not base64"),
    (lambda r: r["codec"].update(data=123), "does not hold"),
    (lambda r: r.update(stored_shape=[1 << 40]), "does not hold"),  # a size claim is checked before decoding
    (lambda r: r.update(stored_dtype="|O"), "damaged"),
])
def test_corrupt_inline_tensor(store_pair, edit, match):
    """A bias kept in its record (no array of its own): every damage is named, nothing is allocated first."""
    _edit_record(store_pair / "m.zarr", "b", edit)
    with pytest.raises(WeightsError, match=match):
        decompress_weights(store_pair / "m.zarr", store_pair / "o.pt", progress=False)


def test_corrupt_zip_member(store_pair):
    z = store_pair / "m.zip"
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("w/c/0/0")
    # the member's data starts after its local header (30 bytes + name + extra)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0x55
    z.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="tensor 'w'.*cannot be decoded.*CRC"):
        decompress_weights(z, store_pair / "o.pt", progress=False)


def test_not_a_store(tmp_path):
    import zarr

    with pytest.raises(FileNotFoundError):
        inspect_store(tmp_path / "nothing.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="not a Zarr group"):
        inspect_store(tmp_path / "empty")
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(WeightsError, match="without sinr-weights metadata"):
        inspect_store(tmp_path / "plain.zarr")
    g = zarr.open_group(tmp_path / "future.zarr", mode="w")
    g.attrs["sinr_codecs"] = {"format": "sinr-weights", "version": 99, "tensors": []}
    with pytest.raises(WeightsError, match="version 99"):
        inspect_store(tmp_path / "future.zarr")
    g = zarr.open_group(tmp_path / "damaged.zarr", mode="w")
    g.attrs["sinr_codecs"] = {"format": "sinr-weights", "version": 1, "tensors": [{"name": "x"}]}
    with pytest.raises(WeightsError, match="damaged"):
        inspect_store(tmp_path / "damaged.zarr")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(WeightsError, match="not a compressed store"):
        inspect_store(tmp_path / "m.pt")


def test_report_pickles_and_is_json_safe(store_pair):
    report = inspect_store(store_pair / "m.zip")
    assert pickle.loads(pickle.dumps(report)).to_dict() == report.to_dict()
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("given,expect", [
    ({}, {"layout": "blocks", "block_size": 32, "dictionary_size": 1024}),
    ({"dictionary_ratio": 4.0}, {"layout": "blocks", "block_size": 32, "dictionary_size": None,
                                  "dictionary_ratio": 4.0}),
    ({"layout": "rows"}, {"layout": "rows", "block_size": None, "dictionary_size": None}),
    ({"layout": "blocks", "block_size": 64}, {"layout": "blocks", "block_size": 64, "dictionary_size": None}),
])
def test_explicit_options_win_over_the_policy_layout(given, expect, tmp_path):
    src, dst = tmp_path / "m.pt", tmp_path / "m.zarr"
    torch.save({"fc.weight": torch.from_numpy(smooth(8, 256))}, src)
    report = compress_weights(src, dst, codec_config={"sparsity": 4, **given}, lossy="sinr", device="cpu",
                              progress=False)
    codec = next(t for t in report.tensors if t.name == "fc.weight").codec
    assert {k: codec.get(k) for k in expect} == expect


def test_the_report_says_when_the_error_bounded_codec_stored_a_tensor_densely(tmp_path):
    rng = np.random.default_rng(3)
    torch.save({"fc.weight": torch.from_numpy((rng.standard_normal((96, 256)) * 0.02).astype(np.float32))},
               tmp_path / "m.pt")
    bounded = compress_weights(tmp_path / "m.pt", tmp_path / "a.zarr", lossy="sinr", device="cpu", progress=False)
    (rec,) = bounded.tensors
    assert rec.storage == "dense" and rec.layout == "rows" and rec.rel_error <= 0.02
    assert "sinr/dense/rows" in bounded.format_table()
    fixed = compress_weights(tmp_path / "m.pt", tmp_path / "b.zarr", codec_config={"sparsity": 0.25}, lossy="sinr",
                             device="cpu", progress=False)
    assert fixed.tensors[0].storage == "sparse" and fixed.tensors[0].rel_error > 0.1
    default = compress_weights(tmp_path / "m.pt", tmp_path / "c.zarr", progress=False)
    assert default.tensors[0].policy == "global" and "global/" in default.format_table()


def test_version_1_stores_still_read(tmp_path, monkeypatch):
    """A store written before tensors could be held in their records (every tensor an array, version 1)."""
    sd = {"w": torch.from_numpy(smooth(64, 64)), "b": torch.linspace(-1, 1, 64), "n": torch.ones(8)}
    save(sd, tmp_path / "m.pt", "torch")
    monkeypatch.setattr(weights, "INLINE_MAX_BYTES", -1)
    compress_weights(tmp_path / "m.pt", tmp_path / "old.zarr", progress=False)
    monkeypatch.undo()
    meta_path = tmp_path / "old.zarr" / "zarr.json"
    doc = json.loads(meta_path.read_text())
    doc["attributes"]["sinr_codecs"]["version"] = 1
    meta_path.write_text(json.dumps(doc))
    assert all((tmp_path / "old.zarr" / name / "zarr.json").is_file() for name in sd)
    compress_weights(tmp_path / "m.pt", tmp_path / "new.zarr", progress=False)
    decompress_weights(tmp_path / "old.zarr", tmp_path / "old.pt", progress=False)
    decompress_weights(tmp_path / "new.zarr", tmp_path / "new.pt", progress=False)
    old, new = (torch.load(tmp_path / f, weights_only=True) for f in ("old.pt", "new.pt"))
    assert old.keys() == new.keys() == sd.keys() and all(torch.equal(old[k], new[k]) for k in sd)
    assert not (tmp_path / "new.zarr" / "b").exists() and not (tmp_path / "new.zarr" / "n").exists()


@pytest.mark.parametrize("edit,match", [
    (lambda r: r["codec"].update(inline=_flip_one(r["codec"]["inline"])), "checksum"),
    (lambda r: r["codec"].update(inline="!" * 8), "not base64"),
    (lambda r: r["codec"].update(inline="A" * 4096), "inline chunk is damaged"),
    (lambda r: r.update(stored_shape=[1 << 40], chunks=[1 << 40]), "more than 1024 bytes"),
    (lambda r: r.update(sha256=None) or r["codec"].update(inline=base64.b64encode(b"\0" * 40).decode()),
     "cannot be decoded|another number"),
])
def test_corrupt_inline_global_tensor(tmp_path, edit, match):
    """A small one-step tensor keeps its one pcodec chunk in its record: damage there is named too."""
    save({"w": torch.from_numpy(smooth(64, 64)), "b": torch.linspace(-1, 1, 64)}, tmp_path / "m.pt", "torch")
    compress_weights(tmp_path / "m.pt", tmp_path / "m.zarr", progress=False)
    rec = next(t for t in inspect_store(tmp_path / "m.zarr").tensors if t.name == "b")
    assert rec.policy == "global" and "inline" in rec.codec and not (tmp_path / "m.zarr" / "b").exists()
    _edit_record(tmp_path / "m.zarr", "b", edit)
    with pytest.raises(WeightsError, match=match):
        decompress_weights(tmp_path / "m.zarr", tmp_path / "o.pt", progress=False)
