"""Property tests: any float array, any layout and parameters round-trip with the right dtype/shape/order."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sinr_codecs import SINR, SparseCode, relative_error

DTYPES = st.sampled_from(["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    seed = draw(st.integers(0, 2**31))
    scale = draw(st.sampled_from([1e-3, 1.0, 100.0]))
    a = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    if draw(st.booleans()) and a.ndim > 1:
        a = np.asfortranarray(a)
    return a


@st.composite
def codecs(draw):
    layout = draw(st.sampled_from(["auto", "rows", "flat", "blocks"]))
    kw = dict(layout=layout, device="cpu",
              value_bits=draw(st.integers(4, 20)),
              dictionary_ratio=draw(st.sampled_from([2.0, 4.0, 8.0])),
              seed=draw(st.integers(0, 2**64 - 1)),
              entropy=draw(st.sampled_from(["pcodec", "rans", "brotli", "raw"])),
              index_coding=draw(st.sampled_from(["delta", "raw"])))
    if layout == "blocks":
        kw["block_size"] = draw(st.integers(2, 40))
    if draw(st.booleans()):
        kw["max_rel_error"] = draw(st.sampled_from([0.3, 0.1, 0.02]))
        kw["value_bits"] = max(kw["value_bits"], 12)
    else:
        kw["sparsity"] = draw(st.one_of(st.integers(1, 30), st.floats(0.05, 0.95)))
    return SINR(**kw)


# the error-bounded mode's documented fallback to dense storage warns; that is not what is tested here
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=arrays(), codec=codecs())
def test_roundtrip_properties(arr, codec):
    enc = codec.encode(arr)
    dec = codec.decode(enc)
    assert dec.dtype == arr.dtype and dec.shape == arr.shape
    if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.size > 1:
        assert dec.flags.f_contiguous
    assert np.all(np.isfinite(dec))
    if codec.max_rel_error is not None and arr.size:
        # every vector of the layout asked for meets the bound, so the whole array does too
        assert relative_error(arr, dec) <= codec.max_rel_error
        assert _worst_vector(arr, dec, codec) <= codec.max_rel_error
    # the stream is self-describing: any SINR instance decodes it identically
    np.testing.assert_array_equal(SINR().decode(enc), dec)
    # and the core object reads it to the same array
    assert SparseCode.from_bytes(enc).decode().tobytes() == dec.tobytes()


def _vectors(a: np.ndarray, codec: SINR) -> np.ndarray:
    """The (n, k) float64 vectors of ``a`` under the layout the codec was asked for (the bound's promise:
    "auto" is each row of an array of 2+ dimensions, a 1-D array whole up to 2500 values, else blocks of 64)."""
    from sinr_codecs.sparse import bound_layout

    lay = bound_layout(a.shape, codec.layout, codec.block_size)
    flat = np.asarray(a, dtype=np.float64).reshape(-1)  # C order, as the codec reads an array
    pad = lay.n_vectors * lay.k1 - flat.size
    return np.concatenate([flat, np.zeros(pad)]).reshape(lay.n_vectors, lay.k1) if lay.k1 else flat[:, None]


def _worst_vector(arr: np.ndarray, dec: np.ndarray, codec: SINR) -> float:
    ref, got = _vectors(arr, codec), _vectors(dec, codec)
    unit = np.maximum(np.abs(ref).max(axis=1, initial=0.0), 1e-300)[:, None]
    err = np.linalg.norm((got - ref) / unit, axis=1)
    norm = np.linalg.norm(ref / unit, axis=1)
    live = norm > 0
    assert not np.any(err[~live] > 0), "a zero vector decoded to something else"
    return float((err[live] / norm[live]).max(initial=0.0))


@st.composite
def heavy_tailed(draw):
    dtype = np.dtype(draw(st.sampled_from(["<f2", "<f4", "<f8", ">f4"])))
    rows, cols = draw(st.integers(1, 40)), draw(st.integers(1, 130))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    dof = draw(st.sampled_from([1.5, 2.0, 3.0, 30.0]))
    scale = rng.lognormal(0, 2, (rows, 1)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    a = rng.standard_t(dof, (rows, cols)) * scale
    if dtype.itemsize == 2:
        a = np.clip(a, -6e4, 6e4)
    return a.astype(dtype)


# explicit layouts and block sizes are a promise, whatever the data, dtype and bits
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=heavy_tailed(), layout=st.sampled_from(["auto", "rows", "blocks", "flat"]),
       block=st.sampled_from([8, 32, 64, 100]), bound=st.sampled_from([0.3, 0.05, 0.01]),
       bits=st.sampled_from([4, 8, "auto"]), entropy=st.sampled_from(["pcodec", "brotli", "rans"]))
def test_every_vector_of_the_layout_asked_for_meets_the_bound(arr, layout, block, bound, bits, entropy):
    codec = SINR(max_rel_error=bound, layout=layout, block_size=block if layout == "blocks" else None,
                 value_bits=bits, entropy=entropy, device="cpu")
    dec = codec.decode(codec.encode(arr))
    assert dec.dtype == arr.dtype and np.all(np.isfinite(dec))
    assert _worst_vector(arr, dec, codec) <= bound
