"""Any adapter stream decodes in one call (sinr_adapters.harness.decode) and one command (``sinr decode``)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.framework.testing import sample_image
from sinr_adapters.harness.decode import decode_file, decode_stream, stream_method, write_signal
from sinr_codecs.cli import main
from sinr_codecs.errors import StreamError

pytestmark = pytest.mark.usefixtures("one_thread")


def _coin_stream(sinr=None):
    from sinr_adapters.methods.coin import COINAdapter

    adapter = COINAdapter(width=6, layers=2)
    signal = adapter.signal_from_image(sample_image(8))
    model, _ = adapter.fit(signal, steps=5, progress=False)
    return adapter, adapter.compress(model, signal, sinr=sinr)


@pytest.mark.parametrize("sinr", [None, SINROptions(sparsity=0.5, value_bits=8, device="cpu")], ids=["plain", "sinr"])
def test_a_stream_decodes_by_its_header_alone(sinr):
    adapter, data = _coin_stream(sinr)
    out = decode_stream(data)
    assert (out.method, out.kind) == ("coin", "image") and stream_method(data) == "coin"
    np.testing.assert_array_equal(out.values, adapter.decode(data))


def test_the_command_writes_png_npy_and_refuses_to_overwrite(tmp_path, capsys):
    adapter, data = _coin_stream()
    src = tmp_path / "coin.sia"
    src.write_bytes(data)
    assert main(["decode", str(src), "-o", str(tmp_path / "out.png")]) == 0
    assert "decoded a coin stream (image, 8x8x3)" in capsys.readouterr().err
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "out.png"))
    expected = np.round(np.clip(adapter.decode(data), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(png, expected)
    assert main(["decode", str(src), "-o", str(tmp_path / "out.png")]) == 1
    assert "exists; pass -f" in capsys.readouterr().err
    assert main(["decode", str(src), "-o", str(tmp_path / "out.png"), "-f"]) == 0
    assert main(["decode", str(src), "-o", str(tmp_path / "out.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), adapter.decode(data))
    assert main(["decode", str(src), "-o", str(tmp_path / "out.jpg")]) == 1
    assert "must be .png, .wav or .npy" in capsys.readouterr().err
    src.write_bytes(data[:-1])
    assert main(["decode", str(src), "-o", str(tmp_path / "cut.npy")]) == 1
    assert "checksum" in capsys.readouterr().err and not (tmp_path / "cut.npy").exists()


def test_a_stream_written_relative_to_shared_state_needs_its_file(tmp_path):
    from sinr_adapters.methods.inric import INRICAdapter

    torch.manual_seed(0)
    init = INRICAdapter(hidden_features=6, hidden_layers=1, ff_dims=2).build_model().state_dict()
    adapter = INRICAdapter(hidden_features=6, hidden_layers=1, ff_dims=2, adaround=False, init=init)
    signal = adapter.signal_from_image(sample_image(8))
    model, _ = adapter.fit(signal, steps=3, progress=False)
    src = tmp_path / "inric.sia"
    src.write_bytes(adapter.compress(model, signal))
    adapter.save_init(tmp_path / "init.npz")
    with pytest.raises(StreamError, match="shared state"):
        decode_file(src)
    out = decode_file(src, shared=tmp_path / "init.npz")
    np.testing.assert_array_equal(out.values, adapter.decode(src.read_bytes()))
    (tmp_path / "coin.sia").write_bytes(_coin_stream()[1])
    with pytest.raises(ValueError, match="coin keeps no shared state"):
        decode_file(tmp_path / "coin.sia", shared=tmp_path / "init.npz")


def test_waveforms_grids_and_rate_aware_streams(tmp_path):
    from sinr_adapters.methods.audio.adapter import AudioAdapter
    from sinr_adapters.methods.audio.waveforms import load_waveform
    from sinr_adapters.methods.occupancy.adapter import OccupancyAdapter
    from sinr_adapters.methods.occupancy.shapes import load_shape
    from sinr_adapters.rate_coding import rate_aware

    audio = AudioAdapter(width=6, layers=2)
    signal = audio.signal_from(load_waveform("chord", 64))
    model, _ = audio.fit(signal, steps=3, progress=False)
    (tmp_path / "a.sia").write_bytes(audio.compress(model, signal))
    out = decode_file(tmp_path / "a.sia")
    assert out.kind == "audio" and out.values.shape == (64, 1)
    write_signal(out.values, tmp_path / "a.wav", sample_rate=8000)
    with wave.open(str(tmp_path / "a.wav")) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()) == (1, 2, 8000, 64)
    data, _ = rate_aware.compress(audio, model, signal, rate_aware.RateAwareOptions(lam=1e-3, steps=1))
    assert decode_stream(data).values.shape == (64, 1) and stream_method(data) == "audio"

    occ = OccupancyAdapter(width=6, layers=2, samples=64)
    signal = occ.signal_from(load_shape("blobs", 6))
    model, _ = occ.fit(signal, steps=2, progress=False)
    grid = decode_stream(occ.compress(model, signal)).values
    assert grid.shape == (6, 6, 6, 1)
    with pytest.raises(ValueError, match="not an image: write it as .npy"):
        write_signal(grid, tmp_path / "o.png")


def test_side_information_is_asked_for_and_used():
    from sinr_adapters.methods.nic.adapter import NICAdapter
    from sinr_adapters.methods.nic.pointclouds import load_cloud

    nic = NICAdapter(width=6, layers=2)
    cloud = load_cloud("torus_coffee", 32)
    signal = nic.signal_from(cloud)
    model, _ = nic.fit(signal, steps=2, progress=False)
    data = nic.compress(model, signal)
    with pytest.raises(ValueError, match="side information"):
        decode_stream(data)
    out = decode_stream(data, positions=cloud.positions)
    assert out.values.shape == (32, 3) and out.kind == "point-cloud"


def test_streams_saved_by_sinr_evaluate_decode_with_the_shared_file_beside_them(tmp_path, capsys):
    import json

    from sinr_adapters.harness import commands

    out = tmp_path / "rd"
    assert commands.main_evaluate(["--method", "inric", "--images", "astronaut", "--size", "8", "--widths", "6",
                                   "--layers", "2", "--steps", "3", "--finetune-steps", "1", "--set",
                                   "inric.meta_steps=2", "--set", "inric.ff_dims=2", "--set", "inric.adaround=false",
                                   "--meta-signals", "rocket", "--quiet", "--no-progress", "--save-streams",
                                   "--no-anchors", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    shared = res["config"][0]["shared_file"]
    for stream in (e["stream"] for e in res["extra"]):
        assert main(["decode", stream, "--shared", shared, "-o", str(tmp_path / "x.npy"), "-f"]) == 0
        assert np.load(tmp_path / "x.npy").shape == (8, 8, 3)
    capsys.readouterr()
    assert main(["decode", res["extra"][0]["stream"], "-o", str(tmp_path / "y.npy")]) == 1
    assert "shared state" in capsys.readouterr().err
