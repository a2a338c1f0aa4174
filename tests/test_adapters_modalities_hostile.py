"""Hostile occupancy, audio and NIC streams: every refusal is a StreamError, and cheap.

The same mutations as the image adapters' (tests/test_adapters_hostile.py): cuts, flipped bytes, header
fields set to hostile values and signal shapes the network cannot render, each with the checksum re-fixed
so the header and records are really parsed; then NIC's own records (quantizer bits, the rANS section).
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from sinr_adapters.framework import container
from sinr_adapters.framework.container import Reader, write_section
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.framework.testing import check_refuses_corruption
from sinr_adapters.methods.audio.adapter import AudioAdapter
from sinr_adapters.methods.audio.waveforms import load_waveform
from sinr_adapters.methods.nic.adapter import NICAdapter
from sinr_adapters.methods.nic.pointclouds import load_cloud
from sinr_adapters.methods.occupancy.adapter import OccupancyAdapter
from sinr_adapters.methods.occupancy.shapes import load_shape
from sinr_codecs import rans
from sinr_codecs.errors import StreamError

from .test_adapters_hostile import BAD_VALUES, outcome, refix, refused, restream, set_key

pytestmark = pytest.mark.usefixtures("one_thread")

SINR = SINROptions(sparsity=2, device="cpu")


def _nic_init() -> NICAdapter:
    a = NICAdapter(width=8, layers=3, bits=6)
    return a.meta_learn([load_cloud("sphere_rocket", 64)], outer_steps=1, inner_steps=1, device="cpu", progress=False)


CASES = {
    "occupancy": lambda: (OccupancyAdapter(width=8, layers=3, samples=128), load_shape("blobs", 6), None),
    "occupancy-sinr": lambda: (OccupancyAdapter(width=8, layers=3, bits=8, samples=128), load_shape("blobs", 6), SINR),
    "audio": lambda: (AudioAdapter(width=8, layers=3, bits=12), load_waveform("chord", 64), None),
    "audio-sinr": lambda: (AudioAdapter(width=8, layers=3), load_waveform("chord", 64), SINR),
    "nic": lambda: (NICAdapter(width=8, layers=3, bits=6), load_cloud("sphere_coffee", 64), None),
    "nic-init-sinr": lambda: (_nic_init(), load_cloud("sphere_coffee", 64), SINR),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def valid(request):
    adapter, raw, sinr = CASES[request.param]()
    signal = adapter.signal_from(raw)
    model, _ = adapter.fit(signal, steps=3, device="cpu", progress=False)
    data = adapter.compress(model, signal, sinr=sinr, progress=False)
    adapter.decompress(data)
    return adapter, data


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
    rng = np.random.default_rng(len(data))
    body = bytearray(data[:-4])
    for i in sorted(set(range(0, min(len(body), 48), 2)) | set(rng.integers(0, len(body), 30).tolist())):
        for mask in (0x01, int(rng.integers(2, 256))):
            mutated = bytearray(body)
            mutated[i] ^= mask
            outcome(adapter.decompress, refix(bytes(mutated)))


def test_header_fields_set_to_hostile_values(valid):
    adapter, data = valid
    for key in sorted(adapter.config()):
        for value in BAD_VALUES:
            outcome(adapter.decompress, restream(data, edit=set_key(adapter, key, value)))
    for key in ("width", "layers"):
        refused(adapter.decompress, restream(data, edit=set_key(adapter, key, 10**9)))
        refused(adapter.decompress, restream(data, edit=set_key(adapter, key, 0)))
    refused(adapter.decompress, restream(data, edit=set_key(adapter, "bits", 17)))
    refused(adapter.decompress, restream(data, edit=lambda c: c + [1]), "entries")
    refused(adapter.decompress, restream(data, method="coin"), "written by adapter")


def test_signal_shapes_the_network_cannot_render(valid):
    adapter, data = valid
    shape = container.read_header(data)[0]["shape"]
    bad = {4: [(6, 6, 5, 1), (6, 6, 6, 2), (6, 6, 6)], 2: [(64, 2), (64,), (64, 1, 1)]}[len(shape)]
    if shape[-1] == 3:   # NIC: (N, 3) colours
        bad = [(64, 1), (64, 4), (64, 3, 1), (1 << 24, 1 << 24)]
    for s in bad:
        refused(adapter.decompress, restream(data, shape=s))


# ------------------------------------------------------------------------------------ NIC's own records
def _nic_parts(adapter: NICAdapter, data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """``(header, quantizer records, rANS section)`` of a NIC stream without SINR."""
    header, pos = container.read_header(data)
    r = Reader(data[:-4], pos)
    n = 2 * (adapter.layers + 1)
    records = [r.take(5) for _ in range(n)]
    return data[:pos], records, r.section()


def _nic_stream(header: bytes, records: list[bytes], payload: bytes) -> bytes:
    buf = io.BytesIO()
    buf.write(header + b"".join(records))
    write_section(buf, payload)
    return refix(buf.getvalue())


def test_nic_rans_section_and_quantizers_are_checked():
    a = NICAdapter(width=8, layers=2, bits=4)
    sig = a.signal_from(load_cloud("torus_coffee", 64))
    model, _ = a.fit(sig, steps=2, device="cpu", progress=False)
    data = a.compress(model, sig)
    header, records, payload = _nic_parts(a, data)
    assert _nic_stream(header, records, payload) == data
    count = sum(p.numel() for p in model.parameters())
    assert rans.decode(payload, count).size == count
    # too few and too many symbols, values beyond the 4-bit range, a corrupt rANS section
    refused(a.decompress, _nic_stream(header, records, rans.encode(np.zeros(count - 1, np.int64))))
    refused(a.decompress, _nic_stream(header, records, rans.encode(np.zeros(count + 1, np.int64))))
    refused(a.decompress, _nic_stream(header, records, rans.encode(np.full(count, 8, np.int64))))
    refused(a.decompress, _nic_stream(header, records, rans.encode(np.full(count, -8, np.int64))))
    refused(a.decompress, _nic_stream(header, records, rans.encode(np.arange(count, dtype=np.int64) % 1000)))
    refused(a.decompress, _nic_stream(header, records, payload[:-3] + b"\xff\xff\xff"))
    refused(a.decompress, _nic_stream(header, records, b""))
    # quantizer records: other bits than the configuration's, non-finite or negative steps
    for bits, step in ((5, 0.01), (4, float("nan")), (4, -1.0), (4, 0.0), (4, float("inf")), (0, 0.01)):
        bad = [struct.pack("<Bf", bits, step)] + records[1:]
        refused(a.decompress, _nic_stream(header, bad, payload))
    with pytest.raises(StreamError):
        a.decompress(data[:-1] + bytes([data[-1] ^ 1]))


def test_nic_with_an_init_refuses_a_wider_network_before_building_it():
    a = _nic_init()
    sig = a.signal_from(load_cloud("sphere_coffee", 64))
    model, _ = a.fit(sig, steps=1, device="cpu", progress=False)
    data = a.compress(model, sig)
    # 8192-wide layers fit the parameter limit but not the init's shapes: refused before allocating them
    refused(a.decompress, restream(data, edit=set_key(a, "width", 8192)), "initialisation")
    refused(a.decompress, restream(data, edit=lambda c: set_key(a, "layers", 4)(set_key(a, "width", 8192)(c))),
            "initialisation")
