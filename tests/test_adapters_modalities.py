"""Occupancy, audio and NIC point-cloud adapters: signals, decode round trips, and ``sinr evaluate`` end to
end with and without SINR (tiny sizes), through the same open interface as any plugin."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.harness.commands import main_evaluate
from sinr_adapters.harness.config import EvalConfig
from sinr_adapters.harness.plugins import method_spec
from sinr_adapters.methods.audio.adapter import AudioAdapter, snr
from sinr_adapters.methods.audio.waveforms import WAVEFORMS, load_waveform
from sinr_adapters.methods.nic.adapter import NICAdapter, rgb_to_yuv, y_psnr
from sinr_adapters.methods.nic.pointclouds import HELD_OUT_CLOUDS, Cloud, load_cloud
from sinr_adapters.methods.occupancy.adapter import OccupancyAdapter, iou
from sinr_adapters.methods.occupancy.shapes import SHAPES, load_shape
from sinr_codecs.errors import StreamError

pytestmark = pytest.mark.usefixtures("one_thread")

SINR = SINROptions(sparsity=2, device="cpu")


# ------------------------------------------------------------------------------------ signals
def test_procedural_signals_are_deterministic_and_in_range():
    for name in SHAPES:
        occ = load_shape(name, 12).occupancy_grid()
        assert 0 < occ.sum() < occ.size, name
        assert np.array_equal(occ, load_shape(name, 12).occupancy_grid())
    for name in WAVEFORMS:
        w = load_waveform(name, 800)
        assert w.shape == (800,) and np.abs(w).max() == pytest.approx(0.9, abs=1e-6)
        assert np.array_equal(w, load_waveform(name, 800))
    c = load_cloud("torus_coffee", 200)
    assert c.positions.shape == (200, 3) and np.abs(c.positions).max() <= 1.0
    assert np.array_equal(np.round(c.colours * 255), c.colours * 255)  # 8-bit levels
    with pytest.raises(KeyError, match="bundled shapes"):
        load_shape("bunny", 12)
    with pytest.raises(KeyError, match="bundled waveforms"):
        load_waveform("speech", 100)


def test_occupancy_grid_is_evaluated_in_chunks_at_any_size(monkeypatch):
    import tracemalloc

    from sinr_adapters.methods.occupancy import shapes

    for name in SHAPES:
        for size in (5, 17):   # odd sizes: the same cells as the points the network is rendered on
            s = load_shape(name, size)
            direct = s.sdf(shapes.grid_points(size).astype(np.float64)) < 0
            assert np.array_equal(s.occupancy_grid().reshape(-1), direct), (name, size)
    monkeypatch.setattr(shapes, "CHUNK", 4096)
    s = load_shape("statue", 64)
    expected = s.sdf(shapes.grid_points(64).astype(np.float64)) < 0
    tracemalloc.start()
    try:
        occ = s.occupancy_grid()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(occ.reshape(-1), expected)
    assert peak < 8 << 20, f"{peak / 2 ** 20:.1f} MiB for a 64^3 grid"   # whole-grid evaluation: ~48 MiB


def test_metrics():
    ref = np.zeros((4, 4, 4, 1), np.float32)
    ref[:2] = 1
    dec = ref.copy()
    dec[0] = 0.4   # below the threshold: half the occupied cells lost
    assert iou(dec, ref) == pytest.approx(0.5)
    assert iou(np.zeros(3), np.zeros(3)) == 1.0
    x = np.sin(np.linspace(0, 20, 500))[:, None]
    assert snr(x + 0.01 * np.cos(np.linspace(0, 7, 500))[:, None], x) == pytest.approx(
        10 * math.log10(np.sum(x ** 2) / np.sum((0.01 * np.cos(np.linspace(0, 7, 500))) ** 2)))
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(rgb_to_yuv(rgb), torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), atol=1e-4)
    colours = load_cloud("sphere_chelsea", 64).colours
    assert y_psnr(colours, colours) == math.inf and y_psnr(colours * 0.9, colours) < 40


def test_descriptions_name_signals_metric_and_rate_unit():
    expected = {"occupancy": ("occupancy", "IoU", "bytes", None), "audio": ("audio", "SNR", "bits/sample", "sample"),
                "nic": ("point-cloud", "Y-PSNR", "bits/point", "point")}
    for method, (kind, metric, rate, per) in expected.items():
        _, spec = method_spec(method)
        src = spec.signal_source()
        assert (spec.signal, src.kind, spec.metric.name, src.rate.name, src.rate.per) == (kind, kind, metric, rate, per)
        assert spec.bits == "bits" and spec.rate == "widths"
    _, nic = method_spec("nic")
    assert set(nic.signal_source().held_out) <= set(HELD_OUT_CLOUDS)


def test_audio_takes_mono_waveforms_in_range_or_pcm_and_refuses_the_rest():
    a = AudioAdapter(width=8)
    tone = 0.5 * np.sin(np.arange(101) * 0.1)
    assert a.signal_from(tone).shape == (101, 1) and a.signal_from(tone[:, None]).shape == (101, 1)
    pcm = (tone * 32767).astype(np.int16)   # what a WAV reader returns
    assert np.allclose(a.signal_from(pcm).reference[:, 0], tone, atol=1e-4)
    for bad, match in ((np.stack([tone, tone], 1), "mono"), (3 * tone, "divide by the peak"),
                       (np.array([0.1]), "2 samples"), (np.array([0.1, np.nan]), "finite"),
                       (tone.astype(np.int64), "dtype"), (np.zeros((4, 4, 1)), "mono")):
        with pytest.raises(ValueError, match=match):
            a.signal_from(bad)


def test_clouds_from_arrays_are_checked():
    pos = load_cloud("torus_coffee", 50).positions
    col = np.random.default_rng(0).uniform(0, 1, (50, 3)).astype(np.float32)
    sig = NICAdapter(width=8).signal_from(Cloud("mine", pos, col))
    assert sig.shape == (50, 3) and sig.elements == 50
    for p, c, match in ((pos, col[:49], "colours"), (pos[:, :2], col[:, :2], "positions"), (pos, col[:, :1], "colours"),
                        (pos, 255 * col, "divide 8-bit colours by 255"), (3 * pos, col, "scale the cloud"),
                        (pos, np.full_like(col, np.nan), "finite"), (pos[:0], col[:0], "N >= 1")):
        with pytest.raises(ValueError, match=match):
            Cloud("bad", p, c)


def test_clouds_from_other_bundled_images_and_odd_sizes():
    for name in ("wavy_coffee", "torus_chelsea", "sphere_motorcycle"):
        for n in (16, 17, 333):
            c = load_cloud(name, n)
            assert c.positions.shape == c.colours.shape == (n, 3)
            assert np.abs(c.positions).max() <= 1.0 and 0.0 <= c.colours.min() <= c.colours.max() <= 1.0
    # the colours follow the image: two different images give different clouds on the same surface
    assert not np.array_equal(load_cloud("sphere_coffee", 64).colours, load_cloud("sphere_chelsea", 64).colours)


# ------------------------------------------------------------------------------------ round trips
def _fit(adapter, signal, steps=20):
    model, _ = adapter.fit(signal, steps=steps, device="cpu", progress=False)
    return model


@pytest.mark.parametrize("sinr", [None, SINR], ids=["plain", "sinr"])
def test_occupancy_round_trip(sinr):
    a = OccupancyAdapter(width=8, layers=3, bits=8, samples=256)
    sig = a.signal_from(load_shape("blobs", 8))
    assert sig.shape == (8, 8, 8, 1) and sig.reference.shape == (8, 8, 8, 1) and sig.coords.shape == (256, 3)
    model = _fit(a, sig)
    data, info = a.compress_with_info(model, sig, sinr=sinr, finetune_steps=3)
    assert info["sinr_tensors"] == (["net.1.linear.weight", "net.2.linear.weight"] if sinr else [])
    dec = a.decompress(data)
    out = a.render(dec.model, dec.shape)
    assert out.shape == (8, 8, 8, 1) and np.all((out >= 0) & (out <= 1))
    assert np.array_equal(out, a.decode(data))
    # the stream is the INRAdapter container: another bit width is refused by the configuration check
    assert OccupancyAdapter(width=8, layers=3, bits=8).decompress(data).shape == (8, 8, 8, 1)


@pytest.mark.parametrize("sinr", [None, SINR], ids=["plain", "sinr"])
def test_audio_round_trip(sinr):
    a = AudioAdapter(width=8, layers=3)
    sig = a.signal_from(load_waveform("bell", 300), name="bell")
    model = _fit(a, sig)
    data = a.compress(model, sig, sinr=sinr, finetune_steps=2)
    out = a.decode(data)
    assert out.shape == (300, 1) and np.all(np.isfinite(out))
    assert np.array_equal(out, a.decode(data))
    if sinr is None:   # decoding reproduces the stored network (16-bit matrices, float32 first layer, float16 rest)
        assert snr(out, a.render(model, (300, 1))) > 20


def test_nic_meta_learned_init_round_trip(tmp_path):
    base = NICAdapter(width=8, layers=3, bits=6)
    clouds = [load_cloud(n, 100) for n in HELD_OUT_CLOUDS[:2]]
    meta = base.meta_learn(clouds, outer_steps=2, inner_steps=2, device="cpu", progress=False)
    sig = meta.signal_from(load_cloud("sphere_astronaut", 150))
    assert sig.elements == 150 and sig.shape == (150, 3)
    model = _fit(meta, sig)
    for sinr in (None, SINR):
        data = meta.compress(model, sig, sinr=sinr, finetune_steps=2)
        colours = meta.decode(data, positions=sig.coords)
        assert colours.shape == (150, 3) and np.all(np.isfinite(colours))
        with pytest.raises(StreamError, match="reference weights"):
            base.decompress(data)
        with pytest.raises(ValueError, match="150 points"):
            meta.decode(data, positions=sig.coords[:10])
    meta.save_init(tmp_path / "init.npz")
    again = NICAdapter.from_init_file(tmp_path / "init.npz")
    assert np.array_equal(again.decode(data, positions=sig.coords), meta.decode(data, positions=sig.coords))


def test_nic_stores_integers_with_rans_and_per_tensor_steps():
    a = NICAdapter(width=8, layers=3, bits=4)
    sig = a.signal_from(load_cloud("torus_chelsea", 120))
    model = _fit(a, sig, steps=5)
    data = a.compress(model, sig)
    dec = a.decompress(data).model.state_dict()
    for k, t in model.state_dict().items():   # each tensor on its own grid: at most 15 levels of max|t| / 7
        step = float(t.abs().max()) / 7
        assert torch.all((dec[k] - t).abs() <= step / 2 + 1e-6), k
        assert len(torch.unique(dec[k])) <= 15


# ------------------------------------------------------------------------------------ the harness
def _evaluate(tmp_path, argv):
    out = tmp_path / "out"
    rc = main_evaluate([*argv, "--steps", "15", "--finetune-steps", "2", "--sparsity", "2", "--out", str(out),
                        "--quiet", "--no-progress", "--save-streams"])
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def _rows(doc):
    cols = doc["results"]
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


def test_evaluate_occupancy_iou_vs_bytes(tmp_path):
    out, doc = _evaluate(tmp_path, ["--method", "occupancy", "--signals", "capsules", "--size", "8",
                                    "--set", "occupancy.widths=8", "--set", "occupancy.samples=256",
                                    "--baseline-bits", "8,16"])
    rows = _rows(doc)
    assert sorted((r["with_sinr"], r["extra"]["point"]) for r in rows) == [
        (False, "width=8,bits=16"), (False, "width=8,bits=8"), (True, "width=8")]
    for r in rows:
        assert r["extra"]["metric"] == "IoU" and r["extra"]["rate_unit"] == "bytes" and r["bpp"] == r["bytes"]
        assert 0.0 <= r["psnr"] <= 1.0
        data = Path(r["extra"]["stream"]).read_bytes()
        assert len(data) == r["bytes"]
        decoded = OccupancyAdapter(**r["config"]).decode(data)
        assert iou(decoded, load_shape("capsules", 8).occupancy_grid()[..., None]) == pytest.approx(r["psnr"])
    md = (out / "results.md").read_text()
    assert "| method | signal |" in md and "IoU" in md and "at equal IoU" in md and "| bpp |" not in md
    assert (out / "rd.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_audio_snr_vs_bits_per_sample(tmp_path):
    out, doc = _evaluate(tmp_path, ["--method", "audio", "--signals", "chord,arpeggio", "--size", "200",
                                    "--set", "audio.widths=8"])
    rows = _rows(doc)
    assert {r["signal"] for r in rows} == {"chord", "arpeggio"} and {r["with_sinr"] for r in rows} == {True, False}
    for r in rows:
        assert r["elements"] == 200 and r["bpp"] == pytest.approx(8 * r["bytes"] / 200)
        assert r["extra"]["metric"] == "SNR" and r["extra"]["rate_unit"] == "bits/sample"
    assert "bits/sample" in (out / "results.md").read_text() and "Mean over signals" in (out / "results.md").read_text()


def test_evaluate_nic_with_meta_learned_init(tmp_path):
    out, doc = _evaluate(tmp_path, ["--method", "nic", "--signals", "sphere_coffee", "--size", "120",
                                    "--set", "nic.widths=8", "--nic-meta-steps", "2", "--nic-inner-steps", "1",
                                    "--sinr-entropy", "rans"])
    rows = _rows(doc)
    assert doc["config"]["held_out"] == list(method_spec("nic")[1].signal_source().held_out)
    cloud = load_cloud("sphere_coffee", 120)
    for r in rows:
        assert r["extra"]["metric"] == "Y-PSNR" and r["bpp"] == pytest.approx(8 * r["bytes"] / 120)
        assert r["config"]["meta_steps"] == 2 and r["config"]["meta_clouds"]
        adapter = NICAdapter.from_init_file(r["config"]["shared_file"])
        decoded = adapter.decode(Path(r["extra"]["stream"]).read_bytes(), positions=cloud.positions)
        assert y_psnr(decoded, cloud.colours) == pytest.approx(r["psnr"])


def test_signals_are_checked_per_method_and_kinds_mix():
    with pytest.raises(ValueError, match="unknown signal"):
        EvalConfig(methods=["audio"], signals=["astronaut"])
    with pytest.raises(ValueError, match="unknown image"):
        EvalConfig(methods=["coin"], signals=["chord"])
    with pytest.raises(ValueError, match="none of the signals"):
        EvalConfig(methods=["coin", "audio"], signals=["chord"])
    cfg = EvalConfig(methods=["coin", "audio", "occupancy"])
    assert cfg.signals == ["astronaut", "chord", "statue"] and cfg.size is None
    assert [cfg.signals_for(m) for m in cfg.methods] == [["astronaut"], ["chord"], ["statue"]]
    assert [cfg.method_size(m) for m in cfg.methods] == [64, 16000, 32]
    assert EvalConfig(methods=["coin"]).to_dict()["signals"] == ["astronaut"]   # as before: resumable
    assert EvalConfig(methods=["nic"]).held_out_signals("nic") == list(method_spec("nic")[1].signal_source().held_out)


def test_mixed_kinds_in_one_run(tmp_path):
    out, doc = _evaluate(tmp_path, ["--method", "coin,audio", "--signals", "astronaut,bass", "--size", "64",
                                    "--set", "coin.widths=4", "--set", "coin.layers=2", "--set", "audio.widths=4",
                                    "--no-sinr", "--no-anchors"])
    rows = _rows(doc)
    assert sorted((r["method"], r["signal"]) for r in rows) == [("audio", "bass"), ("coin", "astronaut")]
    md = (out / "results.md").read_text()
    assert "| signal |" in md and "| rate |" in md


def test_a_kind_other_than_images_needs_a_source():
    from sinr_adapters.framework.spec import AdapterSpec, SignalSource

    with pytest.raises(ValueError, match="describes no signal source"):
        AdapterSpec(summary="volumes", signal="volume").signal_source()
    src = SignalSource("volume", ("cube",), lambda name, size: np.zeros((size,) * 3), ("cube",))
    spec = AdapterSpec(summary="volumes", source=src)
    assert spec.signal == "volume" and spec.signal_source() is src
    with pytest.raises(ValueError, match="disagrees"):
        AdapterSpec(summary="volumes", signal="audio", source=src)
    with pytest.raises(ValueError, match="among its names"):
        SignalSource("volume", ("cube",), src.load, ("sphere",))


def test_rate_aware_compression_is_refused_where_the_method_has_its_own_loss():
    for method in ("occupancy", "nic"):
        with pytest.raises(ValueError, match="--rate-aware"):
            EvalConfig(methods=[method], rate_aware=[0.01])
