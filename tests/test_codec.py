"""The `sinr` numcodecs codec: contract, config, layouts, dtypes, error bound, registration."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numcodecs
import numpy as np
import pytest

from sinr_codecs import SINR, NonFiniteError, relative_error
from sinr_codecs.errors import StreamError

from .conftest import gaussian

CPU = dict(device="cpu")

# module-level arrays x codecs, fed to shared checkers (numcodecs' style)
ARRAYS = [
    gaussian((32, 64)),
    gaussian((8, 4, 100), "float64", seed=1),
    gaussian((12, 12), "float16", seed=2),
    gaussian((1000,), seed=3),
    np.asfortranarray(gaussian((30, 64), seed=4)),
    gaussian((20, 64), ">f4", seed=5),
    gaussian((3, 7), seed=6),
]
CODECS = [
    SINR(sparsity=0.5, value_bits=12, **CPU),
    SINR(sparsity=8, dictionary_size=300, layout="blocks", block_size=32, **CPU),
    SINR(max_rel_error=0.05, **CPU),
    SINR(sparsity=0.75, value_bits=16, entropy="raw", index_coding="raw", seed=7, **CPU),
]
# the largest error of each fixed-sparsity codec on ARRAYS (measured 0.04-0.12, 0.18-0.29 and
# 0.0007-0.004), with a margin; the error-bounded codec is held to its bound instead
FIXED_ERROR = {0: 0.13, 1: 0.31, 3: 0.005}


def check_roundtrip(arr: np.ndarray, codec: SINR) -> tuple[np.ndarray, bytes]:
    enc = codec.encode(arr)
    assert isinstance(enc, bytes)
    dec = codec.decode(enc)
    assert dec.dtype == arr.dtype  # byte order included
    assert dec.shape == arr.shape
    if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
        assert dec.flags.f_contiguous
    else:
        assert dec.flags.c_contiguous
    # decode into out=
    out = np.empty_like(arr)
    codec.decode(enc, out=out)
    np.testing.assert_array_equal(out, dec)
    # any buffer type decodes the same
    np.testing.assert_array_equal(codec.decode(bytearray(enc)), dec)
    np.testing.assert_array_equal(codec.decode(np.frombuffer(enc, dtype="u1")), dec)
    return dec, enc


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: repr(c)[:60])
@pytest.mark.parametrize("arr", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_roundtrip_arrays(arr, codec):
    dec, enc = check_roundtrip(arr, codec)
    err = relative_error(arr, dec)
    if codec.max_rel_error is not None:
        v = arr.astype(np.float64).reshape(-1, arr.shape[-1]) if arr.ndim > 1 and arr.shape[-1] >= 50 else None
        if v is not None:
            d = dec.astype(np.float64).reshape(v.shape)
            per = np.linalg.norm(v - d, axis=1) / np.linalg.norm(v, axis=1)
            assert per.max() <= codec.max_rel_error
        assert err <= codec.max_rel_error
    else:
        assert 0 < err < FIXED_ERROR[CODECS.index(codec)]


def test_error_shrinks_with_sparsity_and_bits():
    w = gaussian((64, 128))
    errs = [relative_error(w, SINR(sparsity=s, **CPU).decode(SINR(sparsity=s, **CPU).encode(w)))
            for s in (0.1, 0.3, 0.6)]
    assert errs[0] > errs[1] > errs[2]
    sizes = [len(SINR(sparsity=0.5, value_bits=b, **CPU).encode(w)) for b in (6, 10, 16)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_compresses_smooth_weights():
    # rows that are sparse in the dictionary are coded almost exactly and small
    from sinr_codecs import sensing_matrix
    a = sensing_matrix(128, 1024, 0).numpy()
    rng = np.random.default_rng(0)
    x = np.zeros((256, 1024), dtype=np.float32)
    for r in range(256):
        x[r, rng.choice(1024, 8, replace=False)] = rng.standard_normal(8)
    w = (x @ a.T).astype(np.float32)
    codec = SINR(sparsity=8, value_bits=16, **CPU)
    enc = codec.encode(w)
    assert relative_error(w, codec.decode(enc)) < 1e-3
    assert w.nbytes / len(enc) > 4


@pytest.mark.parametrize("bound", [0.2, 0.05, 0.01])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_error_bound_holds_after_rounding(bound, dtype):
    w = gaussian((24, 64), dtype, seed=9)
    w[3] *= 1e-3  # a tiny row must meet the bound too (per-vector quantizer steps)
    w[5] = 0.0
    codec = SINR(max_rel_error=bound, value_bits=16, **CPU)
    dec = codec.decode(codec.encode(w))
    v, d = w.astype(np.float64), dec.astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    errs = np.linalg.norm(v - d, axis=1)
    assert np.all(errs[norms > 0] <= bound * norms[norms > 0])
    assert np.all(d[5] == 0)


def test_error_bound_beyond_32_bit_integers_is_a_clear_error():
    w = gaussian((64, 64), "float64")
    w[:, 0] *= 1e3  # one value per row far above the rest: a step fine enough for the rest is tiny for it
    with pytest.raises(ValueError, match="max_rel_error=1e-10 needs quantized values .* loosen max_rel_error"):
        SINR(max_rel_error=1e-10, **CPU).encode(w)
    codec = SINR(max_rel_error=1e-8, **CPU)
    out = codec.decode(codec.encode(w))
    assert (np.linalg.norm(out - w, axis=1) <= 1e-8 * np.linalg.norm(w, axis=1)).all()


def test_empty_scalar_tiny_zero():
    codec = SINR(**CPU)
    for arr in [np.zeros((0, 5), "f4"), np.zeros((0,), "f8"), np.float32(3.5).reshape(()),
                np.array([2.0, -1.0], "f4"), np.zeros((10, 64), "f4")]:
        dec, _ = check_roundtrip(arr, codec)
        if arr.size and not arr.any():
            assert not dec.any()
    scalar = np.float64(-2.25).reshape(())
    assert codec.decode(codec.encode(scalar)) == pytest.approx(-2.25, rel=0.02)


def test_non_contiguous_view():
    base = gaussian((40, 200))
    view = base[::2, ::3]
    dec, _ = check_roundtrip(view, SINR(sparsity=0.5, **CPU))
    contiguous = np.ascontiguousarray(view)
    codec = SINR(sparsity=0.5, **CPU)
    np.testing.assert_array_equal(dec, codec.decode(codec.encode(contiguous)))  # as the same values in order


def test_untyped_bytes_need_dtype():
    w = gaussian((4, 64))
    with pytest.raises(TypeError, match="dtype"):
        SINR(**CPU).encode(w.tobytes())
    codec = SINR(dtype="float32", sparsity=0.9, **CPU)
    dec = codec.decode(codec.encode(w.tobytes()))
    assert dec.shape == (256,) and dec.dtype == np.float32


@pytest.mark.parametrize("bad", [np.arange(10), np.ones(4, bool), np.array(["a"], object),
                                 np.ones(3, np.complex64), np.arange(6, dtype=np.uint8)])
def test_non_float_input_is_type_error(bad):
    with pytest.raises(TypeError, match="float"):
        SINR(**CPU).encode(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(value):
    w = gaussian((4, 64))
    w[2, 7] = value
    with pytest.raises(NonFiniteError, match=r"non-finite.*\(2, 7\)"):
        SINR(**CPU).encode(w)
    assert issubclass(NonFiniteError, ValueError)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sparsity=0), "sparsity"), (dict(sparsity=1.5), "sparsity"), (dict(sparsity="a"), "sparsity"),
    (dict(sparsity=True), "sparsity"), (dict(value_bits=1), "value_bits"), (dict(value_bits=40), "value_bits"),
    (dict(layout="cols"), "layout"), (dict(layout="blocks"), "block_size"), (dict(seed=-1), "seed"),
    (dict(max_rel_error=0), "max_rel_error"), (dict(max_rel_error=2.0), "max_rel_error"),
    (dict(dictionary_ratio=0.5), "dictionary_ratio"), (dict(entropy="zip"), "entropy"),
    (dict(index_coding="x"), "index_coding"), (dict(dtype="int8"), "dtype"), (dict(device=3), "device"),
])
def test_bad_config_is_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SINR(**kwargs)


def test_cuda_requested_without_cuda_is_clear():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA"):
        SINR(device="cuda").encode(gaussian((4, 64)))


def test_config_roundtrip_is_json():
    for codec in CODECS:
        cfg = codec.get_config()
        assert cfg["id"] == "sinr"
        assert json.loads(json.dumps(cfg)) == cfg
        again = numcodecs.get_codec(dict(cfg))
        assert again == codec and again.get_config() == cfg
        assert eval(repr(codec), {"SINR": SINR}) == codec
    assert SINR(sparsity=np.float64(0.5)).get_config()["sparsity"].__class__ is float


def test_numcodecs_shared_checkers():
    common = pytest.importorskip("numcodecs.tests.common")  # shipped by numcodecs <= 0.16
    # untyped input arrives 1-D: code it in short blocks so the check stays fast
    for arr in ARRAYS[:3]:
        codec = SINR(sparsity=0.75, layout="blocks", block_size=16, dictionary_ratio=4, value_bits=16,
                     dtype=arr.dtype.name, **CPU)
        common.check_encode_decode(arr, codec, precision=0)
    common.check_config(SINR(**CPU))
    common.check_err_encode_object_buffer(SINR(**CPU))


def test_decode_rejects_garbage():
    with pytest.raises(StreamError):
        SINR().decode(b"not a stream at all")


def test_entry_point_lookup_without_import():
    code = ("import numcodecs, sys; c = numcodecs.get_codec({'id': 'sinr', 'sparsity': 0.5, 'device': 'cpu'}); "
            "import numpy as np; w = np.random.default_rng(0).standard_normal((8, 64)).astype('f4'); "
            "d = c.decode(c.encode(w)); print(type(c).__module__, d.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["sinr_codecs.codec", "(8,", "64)"]


def test_no_warnings_in_normal_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = SINR(sparsity=0.5, **CPU)
        c.decode(c.encode(gaussian((16, 64))))


@pytest.mark.gpu
def test_cuda_encode_cpu_decode_matches():
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    w = gaussian((512, 128))
    enc_gpu = SINR(sparsity=0.25, device="cuda").encode(w)
    enc_cpu = SINR(sparsity=0.25, device="cpu").encode(w)
    dec_gpu = SINR().decode(enc_gpu)
    # decoding is CPU-only and deterministic: the same bytes give the same array anywhere
    np.testing.assert_array_equal(dec_gpu, SINR().decode(bytes(enc_gpu)))
    # GPU and CPU OMP agree up to float32 near-ties
    assert abs(relative_error(w, dec_gpu) - relative_error(w, SINR().decode(enc_cpu))) < 1e-3
    bounded = SINR(max_rel_error=0.05, device="cuda")
    dec = bounded.decode(bounded.encode(w))
    per = np.linalg.norm(w - dec, axis=1) / np.linalg.norm(w, axis=1)
    assert per.max() <= 0.05


def test_presets_fill_only_the_unset_options():
    from sinr_codecs.codec import PRESETS
    from sinr_codecs.zarr3 import SINRCodec

    default, paper = SINR(device="cpu"), SINR(preset="paper", device="cpu")
    assert (default.value_bits, default.index_coding, default.entropy) == (8, "delta", "auto")
    assert (paper.value_bits, paper.index_coding, paper.entropy) == (16, "raw", "brotli")
    assert PRESETS["paper"]["value_bits"] == 16
    mixed = SINR(preset="paper", value_bits=10, device="cpu")
    assert (mixed.value_bits, mixed.index_coding) == (10, "raw")
    again = numcodecs.get_codec(paper.get_config())
    assert again.get_config() == paper.get_config()
    with pytest.raises(ValueError, match="preset"):
        SINR(preset="fast")
    w = np.random.default_rng(3).standard_normal((64, 128)).astype(np.float32)
    a, b = SINR(sparsity=0.25, device="cpu").encode(w), SINR(sparsity=0.25, preset="paper", device="cpu").encode(w)
    # the paper's pipeline spends about twice the bits (16-bit values, unsorted 16-bit indices)
    assert len(b) > 1.5 * len(a)
    assert SINRCodec(preset="paper").to_dict()["configuration"]["value_bits"] == 16


def test_bounded_mode_takes_each_step_from_the_bound_not_from_value_bits():
    from sinr_codecs import quantize
    from sinr_codecs.sparse import SparseCode

    rng = np.random.default_rng(4)
    w = (rng.standard_normal((32, 128)) * np.geomspace(1e-3, 1e3, 32)[:, None]).astype(np.float32)
    streams = {bits: SINR(max_rel_error=0.05, value_bits=bits, device="cpu").encode(w) for bits in (4, 12, "auto")}
    assert len(set(streams.values())) == 1  # value_bits plays no part in error-bounded mode
    code = SparseCode.from_bytes(streams[4])
    assert code.dense and code.step_codes is not None
    # each row's step is the largest on the grid that meets the bound: one grid step more breaks it
    for bigger in (0, 1):
        step = quantize.step_from_code(code.step_codes + bigger)[:, None]
        rec = (np.rint(w / step) * step).astype(np.float32).astype(np.float64)
        err = np.linalg.norm(rec - w, axis=1) / np.linalg.norm(w.astype(np.float64), axis=1)
        assert (err <= 0.05).all() if bigger == 0 else (err > 0.05).mean() > 0.9
    assert numcodecs.get_codec(SINR(max_rel_error=0.05, value_bits="auto").get_config()).value_bits == "auto"
    with pytest.raises(ValueError, match="max_rel_error"):
        SINR(value_bits="auto", sparsity=0.25)


# ---- the safe default: error-bounded, never larger than dense mode ----------------------------------
def test_the_default_codec_bounds_every_rows_error():
    from sinr_codecs.sparse import SparseCode

    rng = np.random.default_rng(7)
    w = (rng.standard_normal((600, 96)) * rng.lognormal(0, 1, (600, 1)) * 0.02).astype(np.float32)
    codec = numcodecs.get_codec({"id": "sinr"})
    assert codec.max_rel_error == 0.02
    enc = codec.encode(w)
    assert SparseCode.from_bytes(enc).layout.kind == "rows"
    dec = codec.decode(enc)
    err = np.linalg.norm(dec - w, axis=1) / np.linalg.norm(w, axis=1)
    assert 0.0195 < err.max() <= 0.02  # every row within 2%, and the steps use the room they have
    fill = np.full((64, 64), 1.5, np.float32)  # a chunk of fill values
    assert np.array_equal(codec.decode(codec.encode(fill)), fill)


def test_rows_shorter_than_fifty_each_keep_the_bound():
    # a narrow input matrix (e.g. a recurrent layer's 3 inputs): no row may hide inside another's bound
    rng = np.random.default_rng(17)
    w = (rng.standard_normal((256, 3)) * rng.lognormal(0, 2, (256, 1))).astype(np.float32)
    for bound in (0.05, 0.02, 0.005):
        codec = SINR(max_rel_error=bound, device="cpu")
        dec = codec.decode(codec.encode(w))
        err = np.linalg.norm(dec - w, axis=1) / np.linalg.norm(w, axis=1)
        assert err.max() <= bound


def test_bounded_mode_stores_densely_only_where_the_dictionary_does_not_pay():
    from sinr_codecs.dictionary import sensing_matrix
    from sinr_codecs.sparse import SparseCode

    rng = np.random.default_rng(8)
    gaussian_w = rng.standard_normal((1200, 32)).astype(np.float32)  # > 2 x the sample: sampled decision
    codec = SINR(max_rel_error=0.02, layout="rows", dictionary_size=256, device="cpu")
    assert SparseCode.from_bytes(codec.encode(gaussian_w)).dense
    a = sensing_matrix(32, 256, 0).numpy()  # vectors of 3 atoms of the codec's own dictionary
    x = np.zeros((1200, 256))
    for i in range(1200):
        x[i, rng.choice(256, 3, replace=False)] = rng.uniform(1, 2, 3) * rng.choice([-1, 1], 3)
    sparse_w = (x @ a.T).astype(np.float32)
    enc = codec.encode(sparse_w)
    code = SparseCode.from_bytes(enc)
    assert not code.dense and float(code.counts.double().median()) <= 4
    assert relative_error(sparse_w, codec.decode(enc)) <= 0.02
    assert len(enc) * 8 / sparse_w.size < 4  # bits per value; dense mode needs about 8 here


def test_an_explicit_layout_is_the_promise_the_bound_keeps():
    from sinr_codecs.sparse import SparseCode

    rng = np.random.default_rng(9)
    w = (rng.standard_t(2, (24, 96)) * rng.lognormal(0, 1, (24, 1))).astype(np.float32)  # heavy-tailed
    for layout, block in (("blocks", 64), ("blocks", 32), ("rows", None), ("flat", None)):
        codec = SINR(max_rel_error=0.05, layout=layout, block_size=block, device="cpu")
        enc = codec.encode(w)
        code = SparseCode.from_bytes(enc)
        assert code.layout.kind == layout and (block is None or code.k1 == block)
        dec = codec.decode(enc)
        k = code.k1
        pad = -w.size % k
        vw = np.concatenate([w.reshape(-1), np.zeros(pad, w.dtype)]).reshape(-1, k).astype(np.float64)
        vd = np.concatenate([dec.reshape(-1), np.zeros(pad, w.dtype)]).reshape(-1, k).astype(np.float64)
        assert (np.linalg.norm(vd - vw, axis=1) <= 0.05 * np.linalg.norm(vw, axis=1)).all(), (layout, block)
