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
              entropy=draw(st.sampled_from(["brotli", "raw"])),
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
        # the stream's own vectors each meet the bound, so the whole array does too
        assert relative_error(arr, dec) <= codec.max_rel_error
    # the stream is self-describing: any SINR instance decodes it identically
    np.testing.assert_array_equal(SINR().decode(enc), dec)
    # and the core object reads it to the same array
    assert SparseCode.from_bytes(enc).decode().tobytes() == dec.tobytes()
