"""Hostile adapter streams (COIN, INRIC, COIN++, SHACIRA): every refusal is a StreamError, and cheap.

Valid streams of each adapter are mutated (cut, bytes flipped, header fields set to huge, negative,
non-finite or wrongly typed values) with the checksum re-fixed, so the header and the records behind it
are really parsed. Each decode must either succeed or raise :class:`StreamError`, and neither may make the
decoder allocate a network of more than :data:`PARAMETER_BUDGET` values (counted as parameters are made);
crafted streams that declare huge networks or disagree with their own records must be refused.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch

from sinr_adapters.framework import container
from sinr_adapters.framework.container import MAGIC, MAX_STREAM_TENSORS, Reader, write_section, write_varint
from sinr_adapters.framework.inr import INRAdapter
from sinr_adapters.framework.records import read_quantizer
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.framework.testing import check_refuses_corruption
from sinr_adapters.methods.coin import COINAdapter
from sinr_adapters.methods.coinpp.adapter import COINppAdapter
from sinr_adapters.methods.inric import INRICAdapter
from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter
from sinr_codecs.errors import StreamError

pytestmark = pytest.mark.usefixtures("one_thread")

PARAMETER_BUDGET = 1 << 16  # the most parameter values decoding one of these tiny streams may allocate
SIZE = 8


# ------------------------------------------------------------------------------------ crafting
def refix(body: bytes) -> bytes:
    """``body`` with a fresh CRC-32, as an adapter stream ends."""
    return body + struct.pack("<I", zlib.crc32(body))


def restream(data: bytes, *, edit=None, shape=None, method=None, raw_config: bytes | None = None) -> bytes:
    """``data`` with its header rewritten (configuration list edited by ``edit``, another signal shape or
    method, or raw configuration bytes) and the checksum re-fixed; the records are kept."""
    header, pos = container.read_header(data)
    config = list(header["config"])
    if edit is not None:
        config = edit(config)
    buf = io.BytesIO()
    buf.write(MAGIC)
    write_section(buf, (method or header["method"]).encode())
    write_section(buf, raw_config if raw_config is not None else json.dumps(config, separators=(",", ":")).encode())
    shape = header["shape"] if shape is None else shape
    write_varint(buf, len(shape))
    for d in shape:
        write_varint(buf, d)
    buf.write(bytes([int(header["sinr"]) | (2 if header["ref"] else 0)]))
    if header["ref"]:
        buf.write(bytes.fromhex(header["ref"]))
    buf.write(data[pos:-4])
    return refix(buf.getvalue())


def set_key(adapter: INRAdapter, key: str, value):
    """An ``edit`` for :func:`restream` that sets configuration field ``key``."""
    index = sorted(adapter.config()).index(key)

    def edit(config):
        config[index] = value
        return config

    return edit


class _CountParameters:
    """Counts the values of every parameter made on a real device while the block runs."""

    def __enter__(self):
        self.count, self._new = 0, torch.nn.Parameter.__new__
        counter = self

        def new(cls, data=None, requires_grad=True):
            if data is not None and data.device.type != "meta":
                counter.count += data.numel()
            return counter._new(cls, data, requires_grad)

        torch.nn.Parameter.__new__ = new
        return self

    def __exit__(self, *exc):
        torch.nn.Parameter.__new__ = self._new


def outcome(decode, data: bytes) -> BaseException | None:
    """Decode ``data``: ``None`` if it decodes, the StreamError if refused; anything else, or a network of
    more than :data:`PARAMETER_BUDGET` values allocated on the way, fails the test."""
    with _CountParameters() as made:
        try:
            decode(data)
            exc = None
        except StreamError as e:
            exc = e
        except BaseException as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{type(e).__name__} instead of StreamError: {e}")
    assert made.count <= PARAMETER_BUDGET, f"allocated {made.count} parameter values ({exc})"
    return exc


def test_the_parameter_count_sees_what_decoding_builds():
    adapter = COINAdapter(width=8, layers=3)
    with _CountParameters() as made:
        model = adapter.build_model()
    assert made.count == sum(p.numel() for p in model.parameters()) > 0
    with _CountParameters() as made, torch.device("meta"):
        adapter.build_model()
    assert made.count == 0


def refused(decode, data: bytes, match: str | None = None) -> StreamError:
    exc = outcome(decode, data)
    assert exc is not None, "a hostile stream decoded"
    if match is not None:
        assert match in str(exc), str(exc)
    return exc


# ------------------------------------------------------------------------------------ valid streams
def _image() -> np.ndarray:
    return np.random.default_rng(0).random((SIZE, SIZE, 3)).astype(np.float32)


def _stream(adapter, sinr=None, steps=3):
    signal = adapter.signal_from_image(_image())
    model, _ = adapter.fit(signal, steps=steps, device="cpu", progress=False)
    return adapter.compress(model, signal, sinr=sinr, progress=False)


def _coinpp() -> COINppAdapter:
    a = COINppAdapter(width=8, layers=3, latent_dim=4, patch=4, bits=5, quantizer=(0.0, 1.0), inner_steps=1)
    torch.manual_seed(0)
    return COINppAdapter(**a.config(), base=a._fresh_base().state_dict(), quantizer=(0.0, 1.0), inner_steps=1)


def _shacira(**kw) -> SHACIRAAdapter:
    return SHACIRAAdapter(**{"levels": 3, "base_resolution": 2, "finest_resolution": SIZE, "log2_table_size": 5,
                             "hidden": 8, **kw})


SINR = SINROptions(sparsity=2, device="cpu")
CASES = {
    "coin": lambda: (COINAdapter(width=8, layers=3), None),
    "coin-bits": lambda: (COINAdapter(width=8, layers=3, bits=8), None),
    "coin-sinr": lambda: (COINAdapter(width=8, layers=3), SINR),
    "inric": lambda: (INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2), None),
    "inric-sinr": lambda: (INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2), SINR),
    "coinpp": lambda: (_coinpp(), None),
    "coinpp-sinr": lambda: (_coinpp(), SINR),
    "shacira-rans": lambda: (_shacira(entropy="rans"), None),
    "shacira-brotli-q": lambda: (_shacira(entropy="brotli", mlp_bits=8), None),
    "shacira-sinr": lambda: (_shacira(mlp_bits=16, sinr_latents=True), SINROptions(sparsity=2, device="cpu",
                                                                                      block_size=8)),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def valid(request):
    adapter, sinr = CASES[request.param]()
    data = _stream(adapter, sinr)
    adapter.decompress(data)  # the unmutated stream decodes
    return adapter, data


# ------------------------------------------------------------------------------------ fuzzing
def test_cut_streams_are_refused(valid):
    adapter, data = valid
    body = data[:-4]
    header_end = container.read_header(data)[1]
    cuts = sorted(set(range(0, header_end + 2)) | set(np.linspace(header_end, len(body) - 1, 25).astype(int)))
    for cut in cuts:
        refused(adapter.decompress, refix(body[:cut]))
    refused(adapter.decompress, refix(body + b"\0"), "trailing")
    check_refuses_corruption(adapter.decompress, data)


def test_flipped_bytes_decode_or_are_refused(valid):
    adapter, data = valid
    rng = np.random.default_rng(zlib.crc32(data))
    body = bytearray(data[:-4])
    positions = set(range(0, min(len(body), 48), 2)) | set(rng.integers(0, len(body), 30).tolist())
    for i in sorted(positions):
        for mask in (0x01, int(rng.integers(2, 256))):
            mutated = bytearray(body)
            mutated[i] ^= mask
            outcome(adapter.decompress, refix(bytes(mutated)))


BAD_VALUES = [10**30, 2**62, 10**12, 100_000, -1, 0, float("inf"), float("-inf"), float("nan"), 1e308, -1e308,
              "8", [8], None, True, {}]


def test_header_fields_set_to_hostile_values(valid):
    adapter, data = valid
    for key in sorted(adapter.config()):
        for value in BAD_VALUES:
            # json.dumps writes Infinity / NaN, which a strict reader refuses at once
            outcome(adapter.decompress, restream(data, edit=set_key(adapter, key, value)))
    for raw in (b"1e999", b"[" * 30000 + b"]" * 30000, b"[" * 40000 + b"]" * 40000, b'{"a":1}', b"\xff\xfe", b"[1,2"):
        refused(adapter.decompress, restream(data, raw_config=raw))
    # a list of the wrong length, then a value that cannot be the field's type
    refused(adapter.decompress, restream(data, edit=lambda c: c + [1]), "entries")
    refused(adapter.decompress, restream(data, edit=set_key(adapter, sorted(adapter.config())[0], "x")), "x")


def test_signal_shapes_the_network_cannot_render(valid):
    adapter, data = valid
    h, w, c = container.read_header(data)[0]["shape"]
    for shape in ((h, w, c + 1), (h, w, c - 1), (h, w), (h, w, c, 1), (h, 0, c), (1 << 24, 1 << 24, c)):
        refused(adapter.decode, restream(data, shape=shape))


# ------------------------------------------------------------------------------------ crafted classes
def _coin_stream(**config) -> bytes:
    """A COIN stream header of ``config`` followed by an empty integer section (no tensor records)."""
    a = COINAdapter(**config)
    buf = io.BytesIO()
    container.write_header(buf, a, (SIZE, SIZE, a.dim_out), sinr=False, ref=None)
    write_varint(buf, 0)
    return container.finish_stream(buf)


def test_coin_declaring_many_layers_is_refused_at_once():
    data = _coin_stream(width=1, layers=100_000)
    assert len(data) < 50
    refused(COINAdapter().decompress, data, "safety limit")
    # within the tensor limit, but far more tensors than bytes
    layers = MAX_STREAM_TENSORS // 2 - 1
    refused(COINAdapter().decompress, _coin_stream(width=1, layers=layers), "truncated")
    # a network of 2**40 parameters
    refused(COINAdapter().decompress, _coin_stream(width=1 << 20, layers=2), "safety limit")


def test_coin_header_classes():
    a = COINAdapter(width=8, layers=3)
    data = _stream(a)
    for key, value, match in (("width", float("inf"), "non-finite"), ("width", float("nan"), "non-finite"),
                              ("width", 8.0, "integer"), ("width", "8", "integer"), ("layers", -1, "range"),
                              ("w0", 0.0, "range"), ("w0", -30.0, "range"), ("w0", 1e300, "range"),
                              ("w0", 1e-300, "range"),
                              ("w0_initial", 1e300, "range"), ("dim_out", 4, "images"), ("dim_in", 3, "dim_in")):
        refused(a.decode, restream(data, edit=set_key(a, key, value)), match)
    refused(a.decode, restream(data, shape=(SIZE, SIZE, 4)), "images")
    refused(a.decode, restream(data, shape=(1, SIZE, 3)), "H >= 2")
    # dim_out and shape flipped together: the records no longer fit the network
    refused(a.decode, restream(data, edit=set_key(a, "dim_out", 4), shape=(SIZE, SIZE, 4)))


def test_coin_tensor_bits_header_values():
    a = COINAdapter(width=8, layers=3, tensor_bits=[8, 16, 6, 16, 6, 16, 8, 16])
    data = _stream(a)
    assert outcome(a.decode, data) is None
    for value, match in (([8, 16, 6, 16, 6, 16, 8, 17], "range"), ([8, 16, 6, 16, 6, 16, 8, 1], "range"),
                         ([8, 16, 6, 16, 6, 16, 8, 8.0], "integer"), ([8] * 7, "list"),
                         ([8, 16, 6, 16, 6, 16, 8, True], "integer")):
        refused(a.decode, restream(data, edit=set_key(a, "tensor_bits", value)), match)
    # a network of other depth with the same list length: the list no longer matches the network
    refused(a.decode, restream(data, edit=set_key(a, "layers", 2)), "tensor_bits")
    # a stream without tensor_bits read by an adapter expecting one (and the reverse)
    refused(a.decode, _stream(COINAdapter(width=8, layers=3)), "entries")
    refused(COINAdapter(width=8, layers=3).decode, data, "entries")


def test_inric_header_classes():
    a = INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2)
    data = _stream(a)
    for key, value, match in (("hidden_layers", 10**6, "safety limit"), ("hidden_features", 10**9, "safety limit"),
                              ("ff_dims", 10**6, "ff_dims"), ("in_features", 0, "range"),
                              ("out_features", 4, "channels"), ("in_features", 3, "axes"),
                              ("w0", 0.0, "range"), ("bits", 1, "range"), ("bits", 17, "range")):
        refused(a.decode, restream(data, edit=set_key(a, key, value)), match)
    edit = set_key(a, "encoding_scale", 1e6)
    refused(a.decode, restream(data, edit=lambda c: set_key(a, "ff_dims", 20)(edit(c))), "float32")


def test_inric_with_an_init_refuses_a_wider_network_before_building_it():
    a0 = INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2)
    a = INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2, init=a0.build_model().state_dict())
    data = _stream(a)
    assert outcome(a.decode, data) is None
    # within the parameter limit (8192 x 8192 hidden weights), but not the shape of the init the adapter
    # holds: refused from the shapes alone, not after allocating and initialising that network
    refused(a.decompress, restream(data, edit=set_key(a, "hidden_features", 8192)), "initialisation")
    refused(a.decompress, restream(data, edit=lambda c: set_key(a, "hidden_layers", 2)(
        set_key(a, "hidden_features", 8000)(c))), "initialisation")


def test_coinpp_header_classes():
    a = _coinpp()
    data = _stream(a)
    for key, value, match in (("width", 9, "base network"), ("width", 10**9, "base network"),
                              ("latent_dim", 5, "base network"), ("std_range", 0.0, "range"),
                              ("std_range", 1e300, "range"), ("bits", 9, "range"), ("w0", 0.0, "range"),
                              ("patch", [4, 1 << 30], "range"), ("patch", [4], "patch"), ("patch", [4, 1], "range")):
        refused(a.decode, restream(data, edit=set_key(a, key, value)), match)
    refused(a.decode, restream(data, shape=(1 << 14, 1 << 14, 3)))  # 16M latents from a few bytes
    with pytest.raises(ValueError, match="base network"):
        COINppAdapter(width=8, layers=3, latent_dim=4, patch=4).decompress(data)


def test_shacira_header_classes():
    a = _shacira(entropy="rans")
    data = _stream(a)
    for key, value, match in (("levels", 10**9, "range"), ("log2_table_size", 10**18, "range"),
                              ("log2_table_size", 25, "range"), ("finest_resolution", 10**30, "range"),
                              ("base_resolution", 0, "range"), ("latent_init", -1.0, "range"),
                              ("latent_init", 1e300, "range"), ("decoder_scale", 1e300, "range"),
                              ("hidden_layers", 10**6, "safety limit"), ("hidden", 1 << 20, "safety limit"),
                              ("mlp_bits", 20, "mlp_bits"), ("entropy", "zstd", "entropy"),
                              ("sinr_latents", 1, "bool"), ("dim_out", 4, "images")):
        refused(a.decode, restream(data, edit=set_key(a, key, value)), match)
    # 24 levels of 2**24 latents: within the parameter limit's reach only by allocation, refused first
    refused(a.decode, restream(data, edit=lambda c: set_key(a, "levels", 64)(set_key(a, "log2_table_size", 24)(
        set_key(a, "finest_resolution", 1 << 20)(c)))), "safety limit")


def test_quantizer_records_and_reader_bounds():
    for bits, step in ((1, 0.1), (17, 0.1), (8, 0.0), (8, -0.1), (8, float("inf")), (8, float("nan")), (8, 3e38)):
        with pytest.raises(StreamError, match="quantizer"):
            read_quantizer(struct.pack("<Bf", bits, step), "t")
    with pytest.raises(StreamError, match="quantizer"):
        read_quantizer(b"\x08", "t")
    assert read_quantizer(struct.pack("<Bf", 8, 0.5), "t") == (8, 0.5)
    r = Reader(b"abc", 1)
    with pytest.raises(StreamError):
        r.take(-1)
    with pytest.raises(StreamError):
        Reader(b"abc", 4)
    assert r.take(2) == b"bc" and r.left == 0
