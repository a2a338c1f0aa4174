"""The example plugin in examples/sinr-adapter-example, a distribution of its own, is a full citizen of
the harness: registered through its entry point only, listed, evaluated with and without SINR, its options
set from the command line, and its streams decoded, with nothing in sinr-codecs naming it.

The distribution is "installed" the way pip would expose it, without touching the environment: its
source folder and a ``.dist-info`` folder holding its metadata and the entry points declared in its
pyproject.toml are put on ``sys.path`` (in-process, and via PYTHONPATH for the ``sinr`` command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sinr-adapter-example"


def _install(site: Path) -> list[str]:
    """A .dist-info for the example in ``site`` (from its pyproject.toml); the folders to put on sys.path."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, eps in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return [str(site), str(EXAMPLE / "src")]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    paths = _install(tmp_path / "site")
    for p in reversed(paths):
        monkeypatch.syspath_prepend(p)
    return paths


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


TINY = ["--images", "astronaut", "--size", "12", "--steps", "30", "--finetune-steps", "3", "--quiet",
        "--no-progress"]


def test_the_example_is_found_through_its_entry_point_only(plugin):
    from sinr_codecs.registry import adapter_info, load_adapter

    info = {i.name: i for i in adapter_info()}
    assert info["ffmlp"].distribution == "sinr-adapter-example"
    assert load_adapter("ffmlp").__name__ == "FourierMLPAdapter"


def test_sinr_evaluate_runs_the_example_with_and_without_sinr(plugin, tmp_path, capsys):
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.metrics import psnr_8bit
    from sinr_adapters.harness import commands
    from sinr_codecs.registry import load_adapter

    out = tmp_path / "rd"
    status = commands.main_evaluate(["--method", "ffmlp", *TINY, "--set", "ffmlp.widths=6,10", "--ffmlp-layers", "2",
                                     "--set", "ffmlp.frequencies=2", "--baseline-bits", "6,8", "--out", str(out),
                                     "--save-streams"])
    assert status == 0
    table = capsys.readouterr().out
    assert "| ffmlp+sinr | astronaut | width=6 |" in table and "ffmlp (bits=6)" in table
    doc = json.loads((out / "results.json").read_text())
    res = doc["results"]
    mine = [i for i, m in enumerate(res["method"]) if m == "ffmlp"]   # the classic codecs ran beside it
    assert [res["label"][i] for i in mine] == ["ffmlp", "ffmlp", "ffmlp+sinr"] * 2
    assert [res["extra"][i]["point"] for i in mine][:3] == ["width=6,bits=6", "width=6,bits=8", "width=6"]
    assert doc["config"]["options"]["ffmlp"] == {"widths": [6, 10], "layers": 2, "frequencies": 2, "bits": 8}
    assert [c["method"] for c in doc["sinr_savings"]][0] == "ffmlp"
    # a plugin's curves are compared with the classic codecs like the bundled methods' ones
    assert {c["path"] for c in doc["classic"]["paths"]} >= {"ffmlp", "ffmlp+sinr", "ffmlp (bits=6)"}
    assert "| ffmlp+sinr | " in table.split("INR paths against the classic codecs")[1]
    cls = load_adapter("ffmlp")
    ref = torch.from_numpy(load_image("astronaut", 12))
    for i in mine:
        data = Path(res["extra"][i]["stream"]).read_bytes()
        assert len(data) == res["bytes"][i]
        img = cls(**res["config"][i]).decode(data)
        assert psnr_8bit(torch.from_numpy(img), ref) == pytest.approx(res["psnr"][i], abs=1e-6)
    assert res["bytes"][0] < res["bytes"][1]   # 6-bit storage is smaller than 8-bit
    # a bad option of the plugin is refused with its name
    assert commands.main_evaluate(["--method", "ffmlp", "--set", "ffmlp.layers=1", "--out", str(out)]) == 1
    assert "ffmlp.layers: 1 is below the minimum 2" in capsys.readouterr().err


def test_the_examples_own_tests_run_the_shared_checkers(plugin):
    """The example distribution's test suite (examples/sinr-adapter-example/tests) is one call of
    sinr_adapters.framework.check_adapter; it passes with the plugin installed."""
    import importlib.util

    path = EXAMPLE / "tests" / "test_ffmlp.py"
    assert "check_adapter(" in path.read_text()
    spec = importlib.util.spec_from_file_location("example_plugin_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_the_sinr_command_lists_and_runs_the_example(plugin, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*plugin, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "sinr_codecs.cli"]
    listed = subprocess.run([*run, "adapters"], capture_output=True, text=True, env=env, timeout=300)
    assert listed.returncode == 0 and "ffmlp" in listed.stdout and "sinr-adapter-example" in listed.stdout
    helped = subprocess.run([*run, "evaluate", "--help"], capture_output=True, text=True, env=env, timeout=300)
    assert "--ffmlp-frequencies" in helped.stdout
    done = subprocess.run([*run, "evaluate", "--method", "ffmlp", *TINY, "--set", "ffmlp.widths=6",
                           "--sinr-only", "--no-anchors", "--json", "--out", str(tmp_path / "cli")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"]["label"] == ["ffmlp+sinr"]
