"""The rate–distortion harness: sinr evaluate / sinr demo write their table, CSV, JSON and plot."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_adapters.framework.results import Result
from sinr_adapters.harness import commands
from sinr_adapters.harness.config import EvalConfig
from sinr_adapters.harness.evaluate import run
from sinr_adapters.harness.reporting import markdown_table, summary

TINY = ["--images", "astronaut", "--size", "12", "--widths", "8", "--layers", "2", "--steps", "40",
        "--finetune-steps", "4", "--inric-ff-dims", "2", "--quiet", "--no-progress", "--threads", "1", "--no-anchors"]
"""A tiny run of INR methods alone (test_adapters_classic.py runs them beside the classic codecs)."""


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_evaluate_writes_table_csv_json_plot(tmp_path, capsys):
    out = tmp_path / "rd"
    status = commands.main_evaluate(["--method", "coin,inric", *TINY, "--out", str(out), "--save-streams",
                                     "--target-psnr", "5"])
    assert status == 0
    table = capsys.readouterr().out
    assert table.startswith("| method | image |") and "coin+sinr" in table and "inric+sinr" in table
    doc = json.loads((out / "results.json").read_text())
    assert {"name", "description", "results"} <= set(doc)
    assert [c["method"] for c in doc["sinr_savings"]] == ["coin", "inric"]
    assert "SINR against the method alone at equal PSNR" in table
    assert "Smallest stream reaching 5 dB" in table
    assert [(t["method"], t["plain_bytes"] is not None) for t in doc["target"]] == [("coin", True), ("inric", True)]
    res = doc["results"]
    assert sorted(res["label"]) == ["coin", "coin+sinr", "inric", "inric+sinr"]
    assert len(res["bpp"]) == len(res["psnr"]) == 4
    assert doc["config"]["finetune_steps"] == 4 and doc["environment"]["torch"] == torch.__version__
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"bpp", "psnr", "bytes", "encode_seconds"} <= set(rows[0])
    assert (out / "results.md").read_text().count("\n| ") >= 4
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # bytes counted == bytes written, and the written streams decode to the reported PSNR
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.metrics import psnr_8bit
    from sinr_adapters.methods.coin import COINAdapter

    for i in range(4):
        stream = res["extra"][i]["stream"]
        data = Path(stream).read_bytes()
        assert len(data) == res["bytes"][i]
        assert res["bpp"][i] == pytest.approx(8 * len(data) / 12**2)
        if res["method"][i] == "coin":
            adapter = COINAdapter(**{k: v for k, v in res["config"][i].items()})
            img = adapter.decode(data)
            ref = torch.from_numpy(load_image("astronaut", 12))
            assert psnr_8bit(torch.from_numpy(img), ref) == pytest.approx(res["psnr"][i], abs=1e-6)
    # the same fine-tuning budget for both paths
    assert set(res["finetune_steps"]) == {4}


def test_results_round_trip_through_dicts():
    cfg = EvalConfig(methods=["coin"], signals=["chelsea"], size=10, options={"coin": {"widths": [6], "layers": 2}},
                     steps=20, finetune_steps=2, sparsity=[0.25, 4], value_bits=[6], threads=1)
    results = run(cfg, progress=False, log=lambda m: None)
    assert [r.label for r in results] == ["coin", "coin+sinr", "coin+sinr"]
    again = [Result.from_dict(json.loads(json.dumps(r.to_dict()))) for r in results]
    assert again == results
    rows = summary(results)
    assert {(d["label"], d["sparsity"]) for d in rows} == {("coin", None), ("coin+sinr", 0.25), ("coin+sinr", 4)}
    assert "| coin+sinr | chelsea | width=6 | 0.25 | 6 |" in markdown_table(results)


SMALL_COINPP = ["--coinpp-width", "8", "--coinpp-layers", "3", "--coinpp-patch", "8"]
SMALL_SHACIRA = ["--shacira-levels", "3", "--shacira-base-resolution", "2", "--shacira-table-sizes", "5,6"]


def test_coinpp_and_shacira_in_the_harness(tmp_path, capsys):
    """COIN++ (from a saved base network) and SHACIRA run through the same harness: their rate knobs
    are recorded, COIN++ fits by its inner loop, and the streams written decode to the PSNR reported."""
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.metrics import psnr_8bit
    from sinr_adapters.methods.coinpp.adapter import COINppAdapter
    from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter

    base = COINppAdapter(width=8, layers=3, latent_dim=4, patch=8, inner_steps=2).meta_learn(
        [load_image("rocket", 16)], outer_steps=3, batch_size=2, device="cpu", progress=False)
    base.save_base(tmp_path / "base.npz")
    out = tmp_path / "rd"
    status = commands.main_evaluate(["--method", "coinpp,shacira", *TINY, "--size", "16", *SMALL_COINPP,
                                     *SMALL_SHACIRA, "--coinpp-base", str(tmp_path / "base.npz"),
                                     "--out", str(out), "--save-streams"])
    assert status == 0
    doc = json.loads((out / "results.json").read_text())
    res = doc["results"]
    assert res["label"] == ["coinpp", "coinpp+sinr"] + ["shacira", "shacira+sinr"] * 2
    points = [e["point"] for e in res["extra"]]
    assert points == ["latent_dim=4"] * 2 + ["log2_table_size=5"] * 2 + ["log2_table_size=6"] * 2
    assert res["steps"][:2] == [2, 2] and res["steps"][2:] == [40] * 4   # COIN++: its inner loop
    assert res["config"][0]["base_fingerprint"] == base.base_fingerprint()
    ref = torch.from_numpy(load_image("astronaut", 16))
    for i, label in enumerate(res["label"]):
        data = Path(res["extra"][i]["stream"]).read_bytes()
        assert len(data) == res["bytes"][i]
        adapter = base if label.startswith("coinpp") else SHACIRAAdapter(**res["config"][i])
        assert psnr_8bit(torch.from_numpy(adapter.decode(data)), ref) == pytest.approx(res["psnr"][i], abs=1e-6)
    # a larger table is a larger stream for plain SHACIRA
    assert res["bytes"][4] > res["bytes"][2]
    assert "log2_table_size=5" in capsys.readouterr().out


def test_baseline_bits_give_the_method_without_sinr_a_bit_width_search():
    cfg = EvalConfig(methods=["coin"], signals=["chelsea"], size=10, options={"coin": {"widths": [6], "layers": 3}},
                     steps=20, finetune_steps=2, baseline_bits=[6, 10, 16], with_sinr=False, threads=1)
    results = run(cfg, progress=False, log=lambda m: None)
    assert [r.extra["point"] for r in results] == ["width=6,bits=6", "width=6,bits=10", "width=6,bits=16"]
    assert [r.config.get("bits", 16) for r in results] == [6, 10, 16]
    assert results[0].bytes < results[1].bytes < results[2].bytes
    assert len(summary(results)) == 3   # three rate points, not one


def test_coinpp_meta_learns_on_held_out_images_only(tmp_path):
    cfg = EvalConfig(methods=["coinpp"], signals=["astronaut"], size=16,
                     options={"coinpp": {"latent_dims": [4], "width": 8, "layers": 3, "patch": 8, "meta_steps": 2,
                                         "meta_batch": 2}},
                     held_out=["astronaut", "rocket"], steps=0, finetune_steps=1, with_sinr=False, threads=1)
    lines: list[str] = []
    (r,) = run(cfg, progress=False, log=lines.append, streams_dir=tmp_path)
    assert r.config["meta_images"] == ["rocket"] and r.config["meta_steps"] == 2
    from sinr_adapters.methods.coinpp.adapter import COINppAdapter

    base = COINppAdapter.from_base_file(r.config["shared_file"])   # the saved base decodes the saved stream
    assert base.decode(Path(r.extra["stream"]).read_bytes()).shape == (16, 16, 3)
    assert "meta-learned the base network on ['rocket']" in lines[0]
    with pytest.raises(ValueError, match="base network"):
        EvalConfig(methods=["coinpp"], options={"coinpp": {"meta_steps": 0}})
    with pytest.raises(ValueError, match="not evaluated"):
        EvalConfig(methods=["coinpp"], signals=["rocket"], held_out=["rocket"])
    with pytest.raises(ValueError, match="larger than the images"):
        EvalConfig(methods=["coinpp"], size=8, options={"coinpp": {"patch": 16}})


def test_bad_options_fail_cleanly(tmp_path, capsys):
    assert commands.main_evaluate(["--method", "bpg", "--out", str(tmp_path)]) == 1
    assert "unknown method" in capsys.readouterr().err
    assert commands.main_evaluate(["--images", "lena", "--out", str(tmp_path)]) == 1
    assert commands.main_evaluate(["--sparsity", "1.5", "--out", str(tmp_path)]) == 2   # a usage error
    assert commands.main_evaluate(["--widths", "a,b"]) == 2
    with pytest.raises(ValueError):
        EvalConfig(with_sinr=False, without_sinr=False)


def test_demo_help(capsys):
    assert commands.main_demo(["--help"]) == 0
    assert "COIN" in capsys.readouterr().out


def test_sinr_cli_has_the_commands(tmp_path, capsys):
    cli = pytest.importorskip("sinr_codecs.cli")
    status = cli.main(["evaluate", "--method", "coin", *TINY, "--sinr-only", "--out", str(tmp_path), "--json"])
    assert status == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"]["label"] == ["coin+sinr"]


@pytest.mark.slow
def test_demo_runs(tmp_path, capsys):
    assert commands.main_demo(["--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "rd.png").exists()
    assert "coin+sinr" in capsys.readouterr().out


def test_comparisons_against_each_baseline_setting():
    from sinr_adapters.harness.reporting import comparisons_at_equal_psnr

    def row(label, point, bpp, psnr):
        return {"label": label, "point": point, "bpp": bpp, "psnr": psnr}

    rows = [row("coin", "width=16,bits=16", 4.0, 25.0), row("coin", "width=32,bits=16", 8.0, 30.0),
            row("coin", "width=16,bits=8", 2.0, 24.9), row("coin", "width=32,bits=8", 4.0, 29.9),
            row("coin+sinr", "width=16", 2.5, 25.0), row("coin+sinr", "width=32", 5.0, 30.0)]
    got = {c["method"]: c for c in comparisons_at_equal_psnr(rows)}
    assert set(got) == {"coin", "coin (bits=16)", "coin (bits=8)"}
    assert got["coin (bits=16)"]["best_saving"] == pytest.approx(0.375)   # 2.5 vs 4.0 bpp at 25 dB
    assert got["coin (bits=8)"]["best_saving"] < -0.2          # the 8-bit curve is cheaper where it reaches
    assert got["coin"]["at_quality"] == 30.0                    # the whole curve: only float16 reaches 30 dB


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_harness_on_cuda_matches_the_cpu_stream_contract(tmp_path):
    """Every method fits, compresses and decodes on the GPU; the streams decode on the CPU to the PSNR
    the GPU run reported (decoding is device-independent)."""
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.metrics import psnr_8bit
    from sinr_adapters.methods.coin import COINAdapter
    from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter

    out = tmp_path / "rd"
    status = commands.main_evaluate(["--method", "coin,shacira", *TINY, "--size", "16", *SMALL_SHACIRA,
                                     "--device", "cuda", "--out", str(out), "--save-streams"])
    assert status == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert all(d.startswith("cuda") for d in res["device"])
    ref = torch.from_numpy(load_image("astronaut", 16))
    for i, label in enumerate(res["label"]):
        data = Path(res["extra"][i]["stream"]).read_bytes()
        cls = COINAdapter if label.startswith("coin") else SHACIRAAdapter
        img = cls(**res["config"][i]).decode(data, device="cpu")
        assert psnr_8bit(torch.from_numpy(img), ref) == pytest.approx(res["psnr"][i], abs=0.05)


def test_an_interrupted_run_resumes_and_a_changed_one_is_refused(tmp_path, capsys, monkeypatch):
    out = tmp_path / "rd"
    argv = ["--method", "coin", *TINY, "--widths", "6,8", "--out", str(out)]
    write = commands.write_outputs

    def interrupted(results, *args, complete=True, **kw):   # stop once the first point is on disk
        paths = write(results, *args, complete=complete, **kw)
        if not complete:
            raise KeyboardInterrupt
        return paths

    monkeypatch.setattr(commands, "write_outputs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        commands.main_evaluate(argv)
    monkeypatch.undo()
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and partial["results"]["label"] == ["coin"]
    first = {k: v[0] for k, v in partial["results"].items()}
    assert "Partial" in (out / "results.md").read_text() and not (out / "rd.png").exists()

    assert commands.main_evaluate(argv) == 0
    assert "resuming from" in capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is True and doc["results"]["label"] == ["coin", "coin+sinr"] * 2
    assert {k: v[0] for k, v in doc["results"].items()} == first   # reused, not measured again

    assert commands.main_evaluate([*argv, "--size", "14"]) == 1
    err = capsys.readouterr().err
    assert "another configuration" in err and "size: 12 -> 14" in err and "--fresh" in err
    # more rate points and another SINR setting extend the finished run: only the new points are measured
    more = [*argv, "--widths", "6,8,10", "--sparsity", "0.25,0.5"]
    assert commands.main_evaluate(more) == 0
    assert "4 point(s) already measured" in capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["results"]["label"]) == 9 and {k: v[0] for k, v in doc["results"].items()} == first
    assert commands.main_evaluate([*argv, "--widths", "6", "--fresh"]) == 0
    assert json.loads((out / "results.json").read_text())["results"]["label"] == ["coin", "coin+sinr"]
    (out / "results.json").write_text("{not json")
    assert commands.main_evaluate(argv) == 1
    assert "cannot be resumed" in capsys.readouterr().err


def test_run_pins_threads_and_shows_the_time_left(capsys):
    torch.set_num_threads(2)
    cfg = EvalConfig(methods=["coin"], signals=["chelsea"], size=10, options={"coin": {"widths": [6], "layers": 2}},
                     steps=5, finetune_steps=1, with_sinr=False)
    seen = []
    cfg_threads = cfg.threads
    from sinr_adapters.harness import evaluate

    results = evaluate.run(cfg, progress=True, log=lambda m: seen.append(torch.get_num_threads()))
    assert cfg_threads == 1 and seen == [1]            # one thread while running, as in the demo
    assert torch.get_num_threads() == 2                # restored afterwards
    err = capsys.readouterr().err
    assert "sinr evaluate" in err and re.search(r"<\d\d:\d\d", err)   # tqdm's time-left estimate
    assert len(results) == 1


@pytest.mark.parametrize("method, options", [("coin", {"widths": [6], "layers": 2}),
                                             ("inric", {"widths": [6], "layers": 2, "meta_steps": 0})])
def test_rate_aware_curves_end_to_end(method, options):
    cfg = EvalConfig(methods=[method], signals=["chelsea"], size=10, options={method: options}, steps=20,
                     finetune_steps=2, sparsity=[0.5], rate_aware=[1e-3, 1e-2], rate_aware_seed=3, threads=1)
    results = run(cfg, progress=False, log=lambda m: None)
    labels = [r.label for r in results]
    for path in ("rate-aware", "rate-aware+SINR", "rate-aware+seed"):
        assert labels.count(f"{method} {path}") == 2, labels  # one point per rate weight
    ra_points = [r for r in results if r.extra.get("path")]
    assert all(r.bytes > 0 and np.isfinite(r.psnr) for r in ra_points)
    assert all(r.with_sinr == (r.extra["path"] == "rate-aware+SINR") for r in ra_points)
    seeded = [r for r in ra_points if r.extra["path"] == "rate-aware+seed"]
    # the stream decodes to what training saw (the decoder regenerates theta0 from the seed)
    assert all(abs(r.psnr - r.extra["psnr_finetuned"]) < 1e-3 for r in seeded)
    for r in ra_points:
        assert abs(r.psnr - r.extra["psnr_finetuned"]) < 1e-3
    with pytest.raises(ValueError, match="rate_aware_seed"):
        EvalConfig(methods=[method], signals=["chelsea"], size=10, options={method: options}, rate_aware_seed=3)


def test_rate_aware_curve_stays_beside_the_bit_search():
    """--baseline-bits replaces the method's own storage point, never the rate-aware point without SINR."""
    cfg = EvalConfig(methods=["coin"], signals=["chelsea"], size=10, options={"coin": {"widths": [6], "layers": 2}},
                     steps=5, finetune_steps=1, sparsity=[0.5], baseline_bits=[6, 8], rate_aware=[1e-3, 1e-2])
    results = run(cfg, progress=False, log=lambda m: None)
    by_label: dict[str, list[str]] = {}
    for r in results:
        by_label.setdefault(r.label, []).append(r.rate_point)
    assert sorted(by_label["coin"]) == ["width=6,bits=6", "width=6,bits=8"]
    assert by_label["coin rate-aware"] == ["width=6,lam=0.001", "width=6,lam=0.01"]
    assert by_label["coin rate-aware+SINR"] == ["width=6,lam=0.001", "width=6,lam=0.01"]
