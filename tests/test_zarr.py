"""SINR in Zarr: format 2 (the numcodecs codec as compressor) and format 3 (the native SINRCodec).

Each round trip checks the decoded array against the original within the error that the codec itself
produces on the same chunk (encode/decode with the numcodecs codec directly), so the tests verify the
Zarr plumbing, not a fixed quality number.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import ShardingCodec, ZstdCodec

from sinr_codecs.codec import SINR, relative_error
from sinr_codecs.errors import StreamError
from sinr_codecs.zarr3 import CODEC_NAME, SINRCodec

SHAPE, CHUNKS = (24, 64), (8, 64)
OPTS = {"sparsity": 0.25, "value_bits": 12, "device": "cpu"}


def weights(shape=SHAPE, dtype="float32", seed=0) -> np.ndarray:
    """Low-rank-ish data (a few smooth rows mixed) so that SINR codes it well."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((4, shape[-1]))
    mix = rng.standard_normal((*shape[:-1], 4))
    return (mix @ basis + 0.05 * rng.standard_normal(shape)).astype(dtype)


def chunkwise_error(x: np.ndarray, chunks: tuple[int, ...], codec: SINR) -> float:
    """The largest relative error of the codec on any chunk of ``x`` (edge chunks zero-padded)."""
    worst = 0.0
    for i in range(0, x.shape[0], chunks[0]):
        block = np.zeros(chunks, dtype=x.dtype)
        part = x[i:i + chunks[0]]
        block[:part.shape[0]] = part
        worst = max(worst, relative_error(block, codec.decode(codec.encode(block))))
    return worst


def check_close(decoded: np.ndarray, x: np.ndarray, chunks=CHUNKS, codec=None) -> None:
    codec = codec or SINR(**OPTS)
    assert decoded.shape == x.shape
    bound = chunkwise_error(x, chunks, codec)
    assert 0.2 < bound < 0.31  # a quarter of the atoms on these rows: 0.27-0.30 measured
    for i in range(0, x.shape[0], chunks[0]):
        got = relative_error(x[i:i + chunks[0]], decoded[i:i + chunks[0]])
        assert got <= bound * 1.0001 + 1e-7


# --------------------------------------------------------------------------------------------------
# Zarr format 2
# --------------------------------------------------------------------------------------------------
def v2_store(kind: str, tmp_path: Path):
    if kind == "memory":
        return zarr.storage.MemoryStore()
    if kind == "directory":
        return zarr.storage.LocalStore(tmp_path / "a.zarr")
    return zarr.storage.ZipStore(tmp_path / "a.zip", mode="w")


def reopen(store, kind: str, tmp_path: Path):
    if kind == "zip":  # a zip is finished by closing it; read it back read-only
        store.close()
        return zarr.storage.ZipStore(tmp_path / "a.zip", mode="r")
    if kind == "directory":
        return zarr.storage.LocalStore(tmp_path / "a.zarr", read_only=True)
    return store


@pytest.mark.parametrize("kind", ["memory", "directory", "zip"])
@pytest.mark.parametrize("dtype,order", [("<f4", "C"), (">f8", "F"), ("<f2", "C")])
def test_v2_compressor_round_trip(kind, dtype, order, tmp_path):
    x = weights(dtype=dtype)
    store = v2_store(kind, tmp_path)
    a = zarr.create_array(store=store, shape=x.shape, chunks=CHUNKS, dtype=x.dtype, zarr_format=2,
                          compressors=SINR(**OPTS), order=order)
    a[:] = x
    store = reopen(store, kind, tmp_path)
    b = zarr.open_array(store=store, mode="r" if kind != "memory" else "r+")
    assert b.metadata.compressor.get_config() == SINR(**OPTS).get_config()
    got = b[:]
    assert got.dtype.str == x.dtype.str  # dtype and byte order kept
    check_close(got, x, codec=SINR(**OPTS))
    store.close()


def test_v2_metadata_names_the_numcodecs_codec(tmp_path):
    a = zarr.create_array(store=tmp_path / "a.zarr", shape=(4, 64), chunks=(4, 64), dtype="f4",
                          zarr_format=2, compressors=SINR(**OPTS))
    meta = json.loads((tmp_path / "a.zarr" / ".zarray").read_text())
    assert meta["compressor"] == {**SINR(**OPTS).get_config(), "id": "sinr"}
    assert a.metadata.compressor.codec_id == "sinr"


# --------------------------------------------------------------------------------------------------
# Zarr format 3
# --------------------------------------------------------------------------------------------------
def test_v3_codec_fields_match_the_numcodecs_config():
    """SINRCodec is a frozen keyword-only dataclass whose fields are SINR's options, with SINR's defaults;
    device and dtype are fields that take no part in comparisons and are never stored."""
    import inspect

    core = SINR().get_config()
    core.pop("id")
    core.pop("dtype")
    core.pop("chunk_shape")
    codec = SINRCodec()
    assert {f.name for f in dataclasses.fields(SINRCodec)} == set(core) | {"device", "dtype", "chunk_shape"}
    assert {k: getattr(codec, k) for k in core} == core
    assert set(codec.to_dict()["configuration"]) == set(core)
    params = inspect.signature(SINRCodec).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    for name, p in inspect.signature(SINR).parameters.items():  # the same defaults, written out in both
        assert params[name].default == p.default, name
    with pytest.raises(dataclasses.FrozenInstanceError):
        codec.seed = 3  # type: ignore[misc]
    assert SINRCodec(device="cpu") == codec and SINRCodec(seed=1) != codec


@pytest.mark.parametrize("dtype", [None, "float32", ">f4"])
def test_v3_codec_takes_any_numcodecs_config(dtype):
    """``SINRCodec(**config)`` for any ``SINR(...).get_config()``: ``dtype`` is accepted (the array's dtype
    is used), never stored, and an array of another dtype is refused when created."""
    config = {k: v for k, v in SINR(sparsity=8, value_bits=10, dtype=dtype).get_config().items() if k != "id"}
    codec = SINRCodec(**config)
    assert codec == SINRCodec(sparsity=8, value_bits=10) and "dtype" not in codec.to_dict()["configuration"]
    assert SINRCodec.from_dict({"name": CODEC_NAME, "configuration": config}) == codec
    x = weights(shape=(8, 64))
    a = zarr.create_array(store={}, shape=x.shape, chunks=x.shape, dtype=x.dtype, serializer=codec,
                          compressors=None)
    a[:] = x
    np.testing.assert_array_equal(a[:], SINR(**config).decode(SINR(**config).encode(x)))
    if dtype is not None:
        with pytest.raises(TypeError, match="built with dtype='float32', but the array is float64"):
            zarr.create_array(store={}, shape=x.shape, chunks=x.shape, dtype="f8", serializer=codec,
                              compressors=None)
    with pytest.raises(ValueError, match="dtype must be one of"):
        SINRCodec(**{**config, "dtype": "int32"})


def test_v3_codec_dict_round_trip_and_validation():
    codec = SINRCodec(sparsity=8, value_bits=10, layout="rows", seed=3)
    d = codec.to_dict()
    assert d["name"] == CODEC_NAME == "sinr_codecs.sinr"
    assert d["configuration"]["sparsity"] == 8 and "dtype" not in d["configuration"]
    assert json.loads(json.dumps(d)) == d
    again = SINRCodec.from_dict(d)
    assert again == codec and hash(again) == hash(codec)
    assert SINRCodec.from_dict({"name": CODEC_NAME}) == SINRCodec()
    with pytest.raises(ValueError):
        SINRCodec(sparsity=0)
    with pytest.raises(ValueError):
        SINRCodec(layout="diagonal")
    with pytest.raises(ValueError, match="unknown"):
        SINRCodec.from_dict({"name": CODEC_NAME, "configuration": {"colour": "blue"}})
    with pytest.raises(ValueError):
        SINRCodec.from_dict({"name": "something.else", "configuration": {}})
    with pytest.raises(TypeError):  # keyword-only
        SINRCodec(8)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        codec.sparsity = 4  # type: ignore[misc]


def test_v3_registered_through_entry_point():
    from importlib.metadata import entry_points

    from zarr.registry import get_codec_class

    (ep,) = [e for e in entry_points(group="zarr.codecs") if e.name == CODEC_NAME]
    assert ep.value == "sinr_codecs.zarr3:SINRCodec"
    assert get_codec_class(CODEC_NAME) is SINRCodec


V3_CASES = {
    "plain": dict(compressors=None),
    "zstd after": dict(compressors=ZstdCodec(level=3)),
    "default compressors": dict(),
    "sharded": dict(shards=(16, 64), compressors=None),
}


@pytest.mark.parametrize("case", list(V3_CASES))
def test_v3_serializer_round_trip(case, tmp_path):
    x = weights()
    a = zarr.create_array(store=tmp_path / "a.zarr", shape=x.shape, chunks=CHUNKS, dtype=x.dtype,
                          serializer=SINRCodec(**OPTS), **V3_CASES[case])
    a[:] = x
    b = zarr.open_array(store=zarr.storage.LocalStore(tmp_path / "a.zarr", read_only=True), mode="r")
    check_close(b[:], x)
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    codecs = meta["codecs"]
    if case == "sharded":
        assert codecs[0]["name"] == "sharding_indexed"
        codecs = codecs[0]["configuration"]["codecs"]
    assert codecs[0] == SINRCodec(**OPTS).to_dict()
    # a partial read decodes only what it needs and agrees with the full read
    np.testing.assert_array_equal(b[3:5, 10:20], b[:][3:5, 10:20])


def test_v3_explicit_sharding_codec(tmp_path):
    x = weights()
    codec = ShardingCodec(chunk_shape=CHUNKS, codecs=[SINRCodec(**OPTS), ZstdCodec()])
    a = zarr.create_array(store={}, shape=x.shape, chunks=(24, 64), dtype=x.dtype, serializer=codec,
                          compressors=None)
    a[:] = x
    check_close(a[:], x)


@pytest.mark.parametrize("dtype", [">f4", ">f8", "<f2", "<f8"])
def test_v3_byte_orders_and_dtypes(dtype):
    x = weights(dtype=dtype)
    store = zarr.storage.MemoryStore()
    a = zarr.create_array(store=store, shape=x.shape, chunks=CHUNKS, dtype=x.dtype,
                          serializer=SINRCodec(**OPTS), compressors=None)
    a[:] = x  # big-endian chunks reach the codec as they are
    got = zarr.open_array(store=store)[:]
    assert got.dtype.newbyteorder("=") == x.dtype.newbyteorder("=")
    check_close(got, x, codec=SINR(**OPTS))


def test_v3_edge_chunks_and_fortran_order():
    x = weights(shape=(21, 70))
    a = zarr.create_array(store={}, shape=x.shape, chunks=(8, 70), dtype=x.dtype, config={"order": "F"},
                          serializer=SINRCodec(**OPTS), compressors=None)
    a[:] = x
    check_close(a[:], x, chunks=(8, 70))


def test_v3_three_d_array_rows_along_last_axis():
    x = weights(shape=(4, 6, 64))
    a = zarr.create_array(store={}, shape=x.shape, chunks=(2, 6, 64), dtype=x.dtype,
                          serializer=SINRCodec(**OPTS), compressors=None)
    a[:] = x
    assert 0.2 < relative_error(x, a[:]) < 0.31  # as check_close: 0.29 measured


def test_v3_error_bounded_mode():
    x = weights()
    a = zarr.create_array(store={}, shape=x.shape, chunks=CHUNKS, dtype=x.dtype,
                          serializer=SINRCodec(max_rel_error=0.02, device="cpu"), compressors=None)
    a[:] = x
    got = a[:]
    rows = np.linalg.norm(x - got, axis=1) / np.linalg.norm(x, axis=1)
    assert rows.max() <= 0.02


def test_v3_refuses_non_float_arrays():
    with pytest.raises(TypeError, match="float16/float32/float64"):
        zarr.create_array(store={}, shape=(4, 64), dtype="int32", serializer=SINRCodec())


def test_v3_corrupt_chunk_raises_stream_error():
    store = zarr.storage.MemoryStore()
    x = weights()
    a = zarr.create_array(store=store, shape=x.shape, chunks=CHUNKS, dtype=x.dtype,
                          serializer=SINRCodec(**OPTS), compressors=None)
    a[:] = x
    key = "c/0/0"
    raw = bytearray(store._store_dict[key].to_bytes())
    raw[len(raw) // 2] ^= 0xFF
    store._store_dict[key] = store._store_dict[key].from_bytes(bytes(raw))
    with pytest.raises(StreamError):
        a[:]


def test_v3_chunk_of_wrong_shape_is_refused():
    """A stream from another array (another chunk shape) is not silently reshaped into garbage."""
    store = zarr.storage.MemoryStore()
    a = zarr.create_array(store=store, shape=(8, 64), chunks=(8, 64), dtype="f4",
                          serializer=SINRCodec(**OPTS), compressors=None)
    other = SINR(**OPTS).encode(weights(shape=(4, 64)))
    store._store_dict["c/0/0"] = store._store_dict["zarr.json"].from_bytes(other)
    with pytest.raises(StreamError, match="shape"):
        a[:]


def test_v3_same_stream_as_numcodecs_codec():
    """One code path writes streams: a Zarr 3 chunk is exactly the numcodecs codec's output."""
    store = zarr.storage.MemoryStore()
    x = weights(shape=CHUNKS)
    a = zarr.create_array(store=store, shape=x.shape, chunks=CHUNKS, dtype=x.dtype,
                          serializer=SINRCodec(**OPTS), compressors=None)
    a[:] = x
    stream = store._store_dict["c/0/0"].to_bytes()
    np.testing.assert_array_equal(SINR(**OPTS).decode(stream), a[:])


def test_v3_codec_pickles():
    import pickle

    codec = SINRCodec(**OPTS)
    again = pickle.loads(pickle.dumps(codec))
    assert again == codec and again.to_dict() == codec.to_dict()


# --------------------------------------------------------------------------------------------------
# fresh process: no import of sinr_codecs, only the installed entry points
# --------------------------------------------------------------------------------------------------
READER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import zarr

    assert "sinr_codecs" not in sys.modules
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        if path.endswith(".zip"):
            store = zarr.storage.ZipStore(path, mode="r")
        else:
            store = zarr.storage.LocalStore(path, read_only=True)
        out[name] = zarr.open_array(store=store, mode="r")[:].tolist()
        store.close()
    out["loaded"] = sorted(m for m in sys.modules if m.startswith("sinr_codecs"))
    print(json.dumps(out))
""")


def test_fresh_process_reads_v2_and_v3(tmp_path):
    x = weights()
    paths = {}
    for fmt in (2, 3):
        for kind in ("dir", "zip"):
            path = tmp_path / f"v{fmt}.{'zarr' if kind == 'dir' else 'zip'}"
            store = zarr.storage.LocalStore(path) if kind == "dir" else zarr.storage.ZipStore(path, mode="w")
            kwargs = ({"compressors": SINR(**OPTS)} if fmt == 2 else
                      {"serializer": SINRCodec(**OPTS), "shards": (16, 64)})
            a = zarr.create_array(store=store, shape=x.shape, chunks=CHUNKS, dtype=x.dtype, zarr_format=fmt,
                                  **kwargs)
            a[:] = x
            store.close()
            paths[f"v{fmt}-{kind}"] = str(path)
    expected = {}
    for key, p in paths.items():
        store = (zarr.storage.LocalStore(p, read_only=True) if p.endswith(".zarr")
                 else zarr.storage.ZipStore(p, mode="r"))
        expected[key] = zarr.open_array(store=store, mode="r")[:]
        store.close()
    script = tmp_path / "reader.py"
    script.write_text(READER)
    assert "import sinr_codecs" not in READER and "from sinr_codecs" not in READER
    proc = subprocess.run([sys.executable, "-W", "error", str(script), json.dumps(paths)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key, want in expected.items():
        np.testing.assert_array_equal(np.asarray(out[key], dtype=np.float32), want)
    # the codec came in through the entry points, not through an import in the script
    assert "sinr_codecs.codec" in out["loaded"] and "sinr_codecs.zarr3" in out["loaded"]


def test_format_2_refuses_a_chunk_of_another_shape_when_the_shape_is_configured(tmp_path):
    """Format 2 hands a compressor bytes only: with dtype and chunk_shape in its configuration, SINR refuses
    a chunk of another shape (same dtype, same number of values) instead of reading it silently."""
    a = zarr.create_array(str(tmp_path / "a.zarr"), shape=(64, 256), chunks=(64, 256), dtype="f4", zarr_format=2,
                          compressors=SINR(max_rel_error=0.05, dtype="f4", chunk_shape=[64, 256]))
    b = zarr.create_array(str(tmp_path / "b.zarr"), shape=(128, 128), chunks=(128, 128), dtype="f4", zarr_format=2,
                          compressors=SINR(max_rel_error=0.05, dtype="f4", chunk_shape=[128, 128]))
    a[:] = np.random.default_rng(0).standard_normal((64, 256)).astype("f4")
    b[:] = np.random.default_rng(1).standard_normal((128, 128)).astype("f4")
    assert json.loads((tmp_path / "a.zarr" / ".zarray").read_text())["compressor"]["chunk_shape"] == [64, 256]
    (tmp_path / "a.zarr" / "0.0").write_bytes((tmp_path / "b.zarr" / "0.0").read_bytes())
    with pytest.raises(StreamError, match=r"shape \(128, 128\).*chunks of shape \(64, 256\)"):
        zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[:]
    with pytest.raises(ValueError, match="chunk_shape"):
        SINR(chunk_shape=[2, -1])
    assert SINRCodec(**{k: v for k, v in SINR(chunk_shape=[4, 4]).get_config().items() if k != "id"}) == SINRCodec()
