"""The classic image codecs (JPEG, WebP, JPEG 2000, AVIF) as methods of the harness without a network: whole
files, the same pixels and PSNR as the INR methods, no path with SINR, skipped with a message where Pillow
lacks an encoder, and every summary's comparison of the INR paths with them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_adapters.framework import testing
from sinr_adapters.framework.spec import AdapterSpec, describe
from sinr_adapters.harness import commands
from sinr_adapters.harness.config import EvalConfig
from sinr_adapters.harness.evaluate import run
from sinr_adapters.harness.plugins import method_spec, unavailable
from sinr_adapters.methods.classic import AVIFCodec, JPEG2000Codec, JPEGCodec, PillowCodec, WebPCodec
from sinr_adapters.methods.classic.headers import header_bytes
from sinr_codecs.errors import StreamError
from sinr_codecs.limits import limits_set_to

CODECS = {"jpeg": JPEGCodec, "webp": WebPCodec, "jpeg2000": JPEG2000Codec, "avif": AVIFCodec}
TINY = ["--images", "coffee", "--size", "12", "--widths", "6,8", "--layers", "2", "--steps", "30",
        "--finetune-steps", "2", "--quiet", "--no-progress", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _need(name: str) -> type[PillowCodec]:
    why = unavailable(name)
    if why is not None:
        pytest.skip(why)
    return CODECS[name]


def _pixels(size: int = 16) -> np.ndarray:
    from sinr_adapters.framework.images import load_image

    return load_image("coffee", size)


# ---- the codecs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_codec_describes_itself_as_a_method_without_a_network(name):
    cls, spec = method_spec(name)
    assert cls is CODECS[name] and cls.name == name
    assert not spec.weights and spec.bits is None and not spec.rate_aware and spec.rate_key == "quality"
    assert spec.suffix == cls.suffix and spec.signal_source().kind == "image"
    assert spec.option("qualities").multiple and len(spec.defaults()["qualities"]) >= 8


@pytest.mark.parametrize("name", sorted(CODECS))
def test_the_file_is_what_pillow_writes_and_decodes_to_its_pixels(name):
    from PIL import Image

    cls = _need(name)
    img = _pixels()
    codec = cls(quality=cls.default_qualities[3])
    data = codec.encode(codec.signal_from_image(img, name="coffee"))
    buf = io.BytesIO()
    pixels = np.round(img * 255).astype(np.uint8)
    Image.fromarray(pixels).save(buf, format=cls.pillow_format, **codec.save_options(pixels.shape))
    assert data == buf.getvalue()                      # the whole file, nothing added or left out
    with Image.open(io.BytesIO(data)) as f:
        assert f.format == cls.pillow_format
        direct = np.asarray(f.convert("RGB"), dtype=np.float32) / 255
    assert np.array_equal(codec.decode(data), direct)
    lossy = codec.decode(data)
    assert lossy.shape == img.shape and 0 < np.abs(lossy - img).max() < 0.5


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_higher_quality_is_a_larger_file_and_a_better_image(name):
    cls = _need(name)
    img = _pixels(32)
    low, high = cls(quality=cls.default_qualities[1]), cls(quality=cls.default_qualities[-1])
    signal = low.signal_from_image(img)
    a, b = low.encode(signal), high.encode(signal)
    assert len(a) < len(b)
    assert np.mean((low.decode(a) - img) ** 2) > np.mean((high.decode(b) - img) ** 2)


def test_options_are_checked_with_the_method_named():
    with pytest.raises(ValueError, match=r"jpeg.quality: 0 is below the minimum 1"):
        JPEGCodec(quality=0)
    with pytest.raises(ValueError, match=r"webp.method: 7 is above the maximum 6"):
        WebPCodec(method=7)
    with pytest.raises(ValueError, match=r"avif.subsampling: '4:1:1' is not one of"):
        AVIFCodec(subsampling="4:1:1")
    with pytest.raises(TypeError, match="unknown option"):
        JPEGCodec(speed=3)
    assert JPEG2000Codec(quality=31).quality == 31.0 and JPEG2000Codec().config() == {"quality": 30.0,
                                                                                      "irreversible": True}


def test_decoding_refuses_another_format_and_oversized_images():
    jpeg, webp = _need("jpeg")(quality=50), _need("webp")(quality=50)
    data = webp.encode(webp.signal_from_image(_pixels()))
    with pytest.raises(StreamError, match="not a readable JPEG file"):
        jpeg.decode(data)
    ok = jpeg.encode(jpeg.signal_from_image(_pixels()))
    with limits_set_to(max_output_bytes=16 * 16 * 12 - 1), pytest.raises(StreamError, match="16x16 pixels"):
        jpeg.decode(ok)
    with pytest.raises(ValueError, match=r"codes \(H, W, 3\) images"):
        jpeg.encode(jpeg.signal_from_image(np.zeros((4, 4), np.float32)).__class__(
            torch.zeros(4, 1), torch.zeros(4, 1), (4, 1), kind="audio"))


def test_the_shared_checkers_hold_a_codec_to_its_protocol_and_catch_its_mistakes():
    cls = _need("jpeg")
    testing.check_adapter(cls(quality=50))                 # the codec branch of every check
    signal = testing.sample_signal(cls(quality=50), 8)
    calls: list[int] = []

    class Drifting(JPEGCodec):
        def encode(self, signal):
            calls.append(1)
            return super().encode(signal) + bytes(len(calls))

    with pytest.raises(AssertionError, match="different bytes"):
        testing.check_codec_round_trip(Drifting(quality=50), signal)

    class Flat(JPEGCodec):
        def decode(self, data):
            return super().decode(data).reshape(-1, 3)

    with pytest.raises(AssertionError, match=r"decode returned shape \(64, 3\)"):
        testing.check_codec_round_trip(Flat(quality=50), signal)
    data = cls(quality=50).encode(signal)

    def sloppy(blob: bytes):
        if len(blob) < 8:
            raise IndexError("short")
        return cls().decode(blob)

    with pytest.raises(AssertionError, match="raised IndexError"):
        testing.check_refuses_corruption(sloppy, data, checksum=False)
    # without a checksum a flipped bit may decode; with one it must be refused
    testing.check_refuses_corruption(cls().decode, data, checksum=False)
    with pytest.raises(AssertionError, match="was decoded instead of refused"):
        testing.check_refuses_corruption(cls().decode, data)
    with pytest.raises(AssertionError, match="registry maps 'jpeg' to"):
        testing.check_decode_by_header(Drifting(quality=50), data)


def test_a_method_without_a_network_describes_nothing_to_fit():
    with pytest.raises(ValueError, match="leave bits unset"):
        AdapterSpec(summary="x", weights=False, bits="bits")
    assert AdapterSpec(summary="x", weights=False).rate_aware is False
    with pytest.raises(ValueError, match="suffix"):
        AdapterSpec(summary="x", suffix="jpg")


# ---- headers ---------------------------------------------------------------------------------------------
def test_header_bytes_are_every_byte_but_the_coded_image():
    jpeg = _need("jpeg")(quality=50)
    data = jpeg.encode(jpeg.signal_from_image(_pixels(32)))
    sos = data.index(b"\xff\xda")
    scan_starts = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    assert header_bytes(data, "JPEG") == scan_starts + 2           # everything before the scan, and EOI
    assert jpeg.stream_info(data) == {"header_bytes": scan_starts + 2}
    webp = _need("webp")(quality=50)
    assert header_bytes(webp.encode(webp.signal_from_image(_pixels(32))), "WEBP") == 30   # RIFF, chunk, frame
    from PIL import Image

    j2k = _need("jpeg2000")(quality=30.0)
    signal = j2k.signal_from_image(_pixels(32))
    jp2 = j2k.encode(signal)
    buf = io.BytesIO()
    Image.fromarray(np.round(_pixels(32) * 255).astype(np.uint8)).save(
        buf, format="JPEG2000", no_jp2=True, **j2k.save_options((32, 32, 3)))
    bare = buf.getvalue()
    assert header_bytes(jp2, "JPEG2000") - header_bytes(bare, "JPEG2000") == len(jp2) - len(bare)   # the boxes
    avif = _need("avif")(quality=50)
    data = avif.encode(avif.signal_from_image(_pixels(32)))
    mdat = data.index(b"mdat") - 4
    assert header_bytes(data, "AVIF") == len(data) - (int.from_bytes(data[mdat:mdat + 4], "big") - 8)
    assert header_bytes(b"\xff\xd8\x00", "JPEG") is None and header_bytes(data, "BMP") is None


# ---- availability ----------------------------------------------------------------------------------------
def test_a_pillow_without_an_encoder_skips_that_codec_with_a_message(monkeypatch, tmp_path):
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda name: False if name == "avif" else real(name))
    why = AVIFCodec.unavailable()
    assert "without AVIF" in why and "pip install --upgrade pillow" in why
    with pytest.raises(ImportError, match="without AVIF"):
        AVIFCodec().encode(AVIFCodec().signal_from_image(_pixels()))
    lines: list[str] = []
    cfg = EvalConfig(methods=["coin", "avif", "jpeg"], signals=["coffee"], size=12, steps=5, finetune_steps=0,
                     options={"coin": {"widths": [6], "layers": 2}, "jpeg": {"qualities": [50]}}, with_sinr=False)
    results = run(cfg, progress=False, log=lines.append)
    assert [r.method for r in results] == ["coin", "jpeg"]
    assert any(line.startswith("avif: skipped: this Pillow") for line in lines)
    from sinr_adapters.harness.reporting import write_outputs

    paths = write_outputs(results, tmp_path, config=cfg)
    assert "avif" in json.loads(paths["json"].read_text())["skipped"]
    assert "Skipped avif: this Pillow" in paths["md"].read_text()


def test_the_codecs_load_without_pillow_and_say_what_to_install():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'PIL' or name.startswith('PIL.'):\n"
            "            raise ImportError('no Pillow here')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from sinr_adapters.methods.classic import JPEGCodec\n"
            "assert JPEGCodec.describe().weights is False\n"
            "print(JPEGCodec.unavailable())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "needs Pillow" in out.stdout and "pip install 'sinr-codecs[inr]'" in out.stdout


# ---- in the harness --------------------------------------------------------------------------------------
def test_the_harness_measures_a_codec_on_its_own_path_only():
    _need("jpeg")
    cfg = EvalConfig(methods=["coin", "jpeg"], signals=["coffee"], size=12, steps=10, finetune_steps=1,
                     options={"coin": {"widths": [6], "layers": 2}, "jpeg": {"qualities": [10, 90]}},
                     baseline_bits=[8, 16], rate_aware=[1e-3], sparsity=[0.5])
    lines: list[str] = []
    results = run(cfg, progress=False, log=lines.append)
    jpeg = [r for r in results if r.method == "jpeg"]
    assert [r.rate_point for r in jpeg] == ["quality=10", "quality=90"]   # no bit search, SINR or rate-aware path
    assert all(r.extra["anchor"] and r.psnr_fitted is None and not r.with_sinr and r.steps == 0 for r in jpeg)
    assert all(r.extra["header_bytes"] < r.bytes for r in jpeg)
    assert "jpeg: no network, so no path with SINR" in lines[0]
    img = np.round(_pixels(12) * 255) / 255
    for r in jpeg:   # the same PSNR definition as every method: the decoded 8-bit image against the original
        codec = JPEGCodec(**r.config)
        dec = codec.decode(codec.encode(codec.signal_from_image(img)))
        assert r.psnr == pytest.approx(10 * np.log10(1 / np.mean((dec - img) ** 2)), abs=1e-4)
        assert r.bpp == pytest.approx(8 * r.bytes / 144)
    only = EvalConfig(methods=["coin", "jpeg"], signals=["coffee"], size=12, steps=5, finetune_steps=0,
                      options={"coin": {"widths": [6], "layers": 2}, "jpeg": {"qualities": [50]}}, without_sinr=False)
    assert [r.label for r in run(only, progress=False, log=lambda m: None)] == ["coin+sinr", "jpeg"]


def test_sinr_evaluate_runs_inr_and_classic_codecs_in_one_command(tmp_path, capsys):
    for name in ("jpeg", "webp", "avif"):
        _need(name)
    out = tmp_path / "rd"
    assert commands.main_evaluate(["--method", "coin,jpeg,webp,avif", *TINY, "--out", str(out), "--save-streams",
                                   "--set", "webp.qualities=0,50,90", "--baseline-bits", "8,16"]) == 0
    table = capsys.readouterr().out
    section = table.split("INR paths against the classic codecs")[1]
    assert "| INR path | vs best classic | vs avif | vs jpeg | vs webp |" in section
    for path in ("coin", "coin+sinr", "coin (bits=8)", "coin (bits=16)"):
        assert f"\n| {path} | " in section
    doc = json.loads((out / "results.json").read_text())
    res = doc["results"]
    assert set(res["method"]) == {"coin", "jpeg", "webp", "avif"}              # only the codecs named
    assert res["label"].count("webp") == 3 and doc["classic"]["anchors"] == ["avif", "jpeg", "webp"]
    from sinr_adapters.harness.decode import decode_file

    for i, method in enumerate(res["method"]):
        stream = Path(res["extra"][i]["stream"])
        assert stream.stat().st_size == res["bytes"][i]
        if method != "coin":
            assert stream.suffix == CODECS[method].suffix
            decoded = decode_file(stream)                                      # `sinr decode` reads them too
            assert decoded.method == method and decoded.values.shape == (12, 12, 3)
    assert (out / "rd.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_of_inr_methods_adds_the_installed_codecs_unless_told_not_to(tmp_path, capsys):
    assert commands.main_evaluate(["--method", "coin", *TINY, "--no-sinr", "--out", str(tmp_path / "a")]) == 0
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    expected = {m for m in CODECS if unavailable(m) is None}
    assert set(doc["config"]["methods"]) == {"coin", *CODECS} and set(doc["results"]["method"]) == {"coin", *expected}
    assert "INR paths against the classic codecs" in capsys.readouterr().out
    assert commands.main_evaluate(["--method", "coin", *TINY, "--no-sinr", "--no-anchors",
                                   "--out", str(tmp_path / "b")]) == 0
    assert set(json.loads((tmp_path / "b" / "results.json").read_text())["results"]["method"]) == {"coin"}
    assert "INR paths against the classic codecs" not in capsys.readouterr().out


def test_the_plot_draws_the_classic_codecs_in_grey_under_the_inr_curves(monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    from sinr_adapters.harness.reporting import plot_rd

    _need("jpeg")
    _need("webp")
    cfg = EvalConfig(methods=["coin", "jpeg", "webp"], signals=["coffee"], size=12, steps=20, finetune_steps=0,
                     options={"coin": {"widths": [6, 8], "layers": 2}}, sparsity=[0.5])
    results = run(cfg, progress=False, log=lambda m: None)
    figures: list[Figure] = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figures.append(self), save(self, *a, **k))[1])
    plot_rd(results, tmp_path / "rd.png")
    lines = {line.get_label(): line for line in figures[0].axes[0].get_lines()}
    assert {"coin", "coin+sinr", "jpeg", "webp", "best classic"} <= set(lines)
    for label in ("jpeg", "webp", "best classic"):
        r, g, b, _ = matplotlib.colors.to_rgba(lines[label].get_color())
        assert r == g == b                                                      # grey
    for label in ("coin", "coin+sinr"):
        r, g, b, _ = matplotlib.colors.to_rgba(lines[label].get_color())
        assert not r == g == b
        assert lines[label].get_zorder() > lines["jpeg"].get_zorder() > lines["best classic"].get_zorder()
    assert lines["jpeg"].get_linestyle() == ":" and lines["jpeg"].get_marker() != lines["webp"].get_marker()


def test_every_summary_says_when_no_classic_codec_was_measured():
    cfg = EvalConfig(methods=["coin"], signals=["coffee"], size=12, steps=5, finetune_steps=0,
                     options={"coin": {"widths": [6], "layers": 2}}, with_sinr=False)
    from sinr_adapters.harness.reporting import markdown_table

    assert "INR paths against the classic codecs" not in markdown_table(run(cfg, progress=False, log=lambda m: None))
    assert describe(JPEGCodec).weights is False


# ---- the documented plugin -------------------------------------------------------------------------------
STAND_IN = {   # cjxl and djxl stand-ins: a "JXL" file is a marker and a whole PNG; djxl refuses anything else
    "cjxl": ("import sys\nfrom PIL import Image\nimport io\nbuf = io.BytesIO()\n"
             "Image.open(sys.argv[1]).save(buf, format='PNG')\n"
             "open(sys.argv[2], 'wb').write(b'JXL?' + buf.getvalue())\n"),
    "djxl": ("import sys, io\nfrom PIL import Image\ndata = open(sys.argv[1], 'rb').read()\n"
             "if not data.startswith(b'JXL?') or not data.endswith(bytes.fromhex('49454e44ae426082')):\n"
             "    sys.exit('not a whole JPEG XL file')\n"
             "try:\n    Image.open(io.BytesIO(data[4:])).save(sys.argv[2])\n"
             "except Exception as exc:\n    sys.exit(str(exc))\n"),
}


def _documented_plugin() -> dict:
    text = (Path(__file__).resolve().parents[1] / "docs" / "adapters.md").read_text()
    block = next(b for b in text.split("```python\n")[1:] if "class JXLCodec" in b).split("```")[0]
    namespace: dict = {"__name__": "my_codecs"}
    exec(compile(block, "docs/adapters.md", "exec"), namespace)
    return namespace


def test_the_documented_command_line_codec_plugin_keeps_the_protocol(tmp_path, monkeypatch):
    cls = _documented_plugin()["JXLCodec"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "needs libjxl's cjxl and djxl" in describe(cls).unavailable()
    for name, body in STAND_IN.items():
        tool = tmp_path / name
        tool.write_text(f"#!{sys.executable}\n{body}")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert describe(cls).unavailable() is None and describe(cls).weights is False
    codec = cls(quality=50)
    testing.check_adapter(codec, registered=False)
    signal = codec.signal_from_image(_pixels(8))
    assert np.array_equal(codec.decode(codec.encode(signal)), np.round(_pixels(8) * 255) / 255)


# ---- the size sweep --------------------------------------------------------------------------------------
def test_the_size_sweep_benchmark_runs_tiny_and_names_its_machine(tmp_path, capsys):
    from .conftest import benchmark_script

    for name in CODECS:
        _need(name)
    sweep = benchmark_script("classic_anchors")
    out = tmp_path / "sweep.json"
    assert sweep.main(["--sizes", "12,16", "--widths", "6", "--steps", "5", "--finetune-steps", "1", "--jobs", "1",
                       "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert {"name", "description", "machine", "results"} <= set(doc) and doc["machine"]["gpu"] == "none"
    assert set(doc["results"]) == {f"{s} px, {p}" for s in (12, 16) for p in sweep.PATHS}
    assert set(doc["headers"]["12"]) == set(CODECS) and doc["headers"]["12"]["webp"]["header_bytes"] == 30
    assert doc["headers"]["12"]["jpeg"]["header_bpp"] > doc["headers"]["16"]["jpeg"]["header_bpp"]
    assert "| 16 px, coin rate-aware+SINR |" in printed and "| 12 px | avif |" in printed
    # the runs resume: nothing is measured twice
    assert sweep.main(["--sizes", "12", "--widths", "6", "--steps", "5", "--finetune-steps", "1", "--jobs", "1",
                       "--runs", str(tmp_path / "runs")]) == 0
    assert "resuming from" in capsys.readouterr().err
