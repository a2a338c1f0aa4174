"""The ``sinr`` command: in-process through main(argv), and through its installed console script."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_codecs import cli, progress
from sinr_codecs.cli import main, parse_policy


def smooth(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, 3)) @ rng.standard_normal((3, cols))
    w += 0.05 * rng.standard_normal((rows, cols))
    return torch.from_numpy(w.astype(np.float32))


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "tiny.pt"
    torch.save({"net.0.weight": smooth(64, 64), "net.0.bias": torch.linspace(-1, 1, 64),
                "net.1.weight": smooth(3, 64, 1), "net.1.bias": torch.zeros(3)}, path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------------------------------
# in-process
# --------------------------------------------------------------------------------------------------
def test_compress_info_decompress(model, tmp_path, capsys):
    store = tmp_path / "tiny.zarr"
    rc, out, err = run(capsys, "compress", str(model), "-o", str(store), "--sparsity", "16",
                       "--value-bits", "12", "--device", "cpu", "--policy", "net.1.weight=lossless")
    assert rc == 0, err
    assert "net.0.weight" in out and "sinr/sparse/rows" in out and "total: 4 tensors" in out
    # no bars (stderr is not a terminal here), only the one warning line: sparsity 16 of 64 is coarse
    assert [ln for ln in err.splitlines() if not ln.startswith("sinr: warning: 1 tensor(s)")] == []

    rc, out, err = run(capsys, "info", str(store))
    assert rc == 0 and "rel.err" in out and "override net.1.weight" in out

    rc, out, _ = run(capsys, "info", str(store), "--json")
    info = json.loads(out)
    rec = {t["name"]: t for t in info["tensors"]}
    assert rec["net.0.weight"]["codec"]["sparsity"] == 16 and rec["net.0.weight"]["codec"]["value_bits"] == 12
    assert rec["net.1.weight"]["policy"] == "lossless"
    assert info["totals"]["tensors"] == 4 and info["totals"]["bytes_after"] > 0

    restored = tmp_path / "restored.pt"
    rc, out, err = run(capsys, "decompress", str(store), "-o", str(restored))
    assert rc == 0 and "restored 4 tensors" in out
    back, orig = torch.load(restored, weights_only=True), torch.load(model, weights_only=True)
    assert list(back) == list(orig)
    assert torch.equal(back["net.1.weight"], orig["net.1.weight"])


def only_the_error_warning(err: str) -> bool:
    """Nothing on stderr but, at the codec's default sparsity, the one line about large errors."""
    lines = err.splitlines()
    return len(lines) <= 1 and all(ln.startswith("sinr: warning: ") and "--max-rel-error" in ln for ln in lines)


def test_compress_json_and_quiet(model, tmp_path, capsys):
    rc, out, _ = run(capsys, "compress", str(model), "-o", str(tmp_path / "a.zip"), "--json",
                     "--max-rel-error", "0.05", "--policy", "net.0.*=sinr:value_bits=10")
    assert rc == 0
    report = json.loads(out)
    w = next(t for t in report["tensors"] if t["name"] == "net.0.weight")
    assert w["codec"]["max_rel_error"] == 0.05 and w["codec"]["value_bits"] == 10
    rc, out, err = run(capsys, "compress", str(model), "-o", str(tmp_path / "b.zarr"), "-q")
    assert rc == 0 and out == "" and only_the_error_warning(err)


@pytest.mark.parametrize("argv,match", [
    (["info", "{tmp}/missing.zarr"], "no such file or directory"),
    (["compress", "{tmp}/missing.pt", "-o", "{tmp}/o.zarr"], "no such file"),
    (["compress", "{tmp}/model.onnx", "-o", "{tmp}/o.zarr"], "unknown model file format"),
    (["compress", "{tmp}/list.pt", "-o", "{tmp}/o.zarr"], "not a state_dict"),
    (["info", "{tmp}/broken.zip"], "not a valid zip file"),
    (["decompress", "{tmp}/plain.zarr", "-o", "{tmp}/o.pt"], "without sinr-weights metadata"),
    (["compress", "{tmp}/list.pt", "-o", "{tmp}/o.zarr", "--policy", "w=sinr:seed=-1"], "seed"),
])
def test_user_errors_are_one_line_exit_1(argv, match, tmp_path, capsys):
    import zarr

    (tmp_path / "model.onnx").write_bytes(b"onnx")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    if "--policy" in argv:  # a bad codec option on a valid model
        torch.save({"w": torch.zeros(4)}, tmp_path / "list.pt")
    rc, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert rc == 1
    assert err.startswith("sinr: error: ") and match in err
    assert "Traceback" not in err and err.count("\n") == 1 and out == ""


@pytest.mark.parametrize("argv", [
    ["compress", "m.pt"],                                   # -o missing
    ["compress", "m.pt", "-o", "x", "--sparsity", "1.5"],
    ["compress", "m.pt", "-o", "x", "--sparsity", "0"],
    ["compress", "m.pt", "-o", "x", "--value-bits", "-3"],
    ["compress", "m.pt", "-o", "x", "--policy", "*.bias=zip"],
    ["compress", "m.pt", "-o", "x", "--layout", "diagonal"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(argv, capsys):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and "usage: sinr" in err and "Traceback" not in err


def test_version_and_help(capsys):
    from importlib.metadata import version

    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.strip() == f"sinr {version('sinr-codecs')}"
    rc, out, _ = run(capsys, "compress", "--help")
    assert rc == 0
    out = " ".join(out.split())
    for option in ("--sparsity", "--value-bits", "--dictionary-ratio", "--max-rel-error", "--device",
                   "--layout", "--policy", "--quiet", "--force", "--json", "(default: auto)"):
        assert option in out


def test_every_option_has_help():
    parser = cli.build_parser(plugins=False)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in [("sinr", parser), *sub.choices.items()]:
        for action in p._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_traceback_flag_reraises(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--traceback", "info", str(tmp_path / "missing.zarr")])


def test_parse_policy():
    assert parse_policy("*.bias=lossless") == ("*.bias", "lossless")
    assert parse_policy("a=b=sinr") == ("a=b", "sinr")
    assert parse_policy("x.*=sinr:sparsity=8,max-rel-error=0.01,layout=flat") == (
        "x.*", {"policy": "sinr", "sparsity": 8, "max_rel_error": 0.01, "layout": "flat"})
    for bad in ("x", "x=", "=sinr", "x=lossless:value_bits=3", "x=sinr:value_bits"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_policy(bad)


# --------------------------------------------------------------------------------------------------
# plugins and adapters
# --------------------------------------------------------------------------------------------------
class FakeEP:
    def __init__(self, name: str, target):
        self.name, self.value, self._target = name, f"fake:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _add_hello(sub) -> None:
    p = sub.add_parser("hello", help="say hello")
    p.add_argument("--who", default="world", help="whom to greet")
    p.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)


def _add_broken(sub) -> None:
    sub.add_parser("half", help="added, then the plugin fails")
    raise RuntimeError("plugin bug")


def _add_clobber(sub) -> None:
    sub.add_parser("compress", help="hijacked")


@pytest.fixture
def plugins(monkeypatch):
    eps = [FakeEP("hello", _add_hello), FakeEP("missing", ImportError("No module named 'nowhere'")),
           FakeEP("broken", _add_broken), FakeEP("clobber", _add_clobber)]
    monkeypatch.setattr(cli, "entry_points", lambda group: eps if group == cli.COMMANDS_GROUP else [])


def test_plugin_commands(plugins, capsys):
    rc, out, err = run(capsys, "hello", "--who", "sinr")
    assert rc == 0 and out == "hello sinr\n"
    assert "skipping command plugin 'missing'" in err and "No module named 'nowhere'" in err
    assert "skipping command plugin 'broken'" in err and "plugin bug" in err
    assert "skipping command plugin 'clobber'" in err and "compress" in err
    rc, out, err = run(capsys, "--help")
    assert rc == 0 and "hello" in out and "half" not in out and "hijacked" not in out


def test_builtin_commands_do_not_load_plugins(plugins, model, tmp_path, capsys):
    rc, _, err = run(capsys, "compress", str(model), "-o", str(tmp_path / "m.zarr"), "-q")
    assert rc == 0 and only_the_error_warning(err)
    rc, out, err = run(capsys, "--version")
    assert rc == 0 and err == ""


def test_adapters_command(capsys, monkeypatch):
    from importlib.metadata import EntryPoint

    import sinr_codecs.registry as registry

    monkeypatch.setattr(registry, "available_adapters", lambda: {
        "coin": EntryPoint("coin", "sinr_adapters.methods.coin:COINAdapter", "sinr_codecs.adapters")})
    rc, out, _ = run(capsys, "adapters")
    assert rc == 0 and "coin" in out and "sinr_adapters.methods.coin:COINAdapter" in out
    rc, out, _ = run(capsys, "adapters", "--json")
    assert json.loads(out)[0]["name"] == "coin"
    monkeypatch.setattr(registry, "available_adapters", lambda: {})
    rc, out, _ = run(capsys, "adapters")
    assert rc == 0 and "no adapters installed" in out


def test_adapters_without_registry(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sinr_codecs.registry", None)
    rc, out, err = run(capsys, "adapters")
    assert rc == 1 and "no adapter registry" in err and "Traceback" not in err


def test_progress_bars_follow_the_terminal(monkeypatch):
    class TTY:
        def __init__(self, tty: bool):
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "stderr", TTY(True))
    assert progress.enabled() and not progress.enabled(quiet=True)
    monkeypatch.setattr(sys, "stderr", TTY(False))
    assert not progress.enabled()
    assert progress.bar(range(3), quiet=True).disable


# --------------------------------------------------------------------------------------------------
# the installed console script
# --------------------------------------------------------------------------------------------------
def _script() -> str:
    found = shutil.which("sinr", path=os.path.dirname(sys.executable)) or shutil.which("sinr")
    if found is None:
        pytest.skip("the sinr console script is not installed (pip install -e .)")
    return found


def test_console_script(model, tmp_path):
    sinr = _script()
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    store = tmp_path / "m.zip"
    proc = subprocess.run([sinr, "compress", str(model), "-o", str(store), "--json", "--lossy", "sinr"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["tensors"] == 4
    assert only_the_error_warning(proc.stderr)  # not a terminal: no bars

    proc = subprocess.run([sinr, "info", str(store)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "net.0.weight" in proc.stdout and "sinr/dense/rows" in proc.stdout

    proc = subprocess.run([sinr, "info", str(tmp_path / "nope.zarr")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1 and proc.stderr.startswith("sinr: error:") and "Traceback" not in proc.stderr

    proc = subprocess.run([sinr, "--version"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("sinr ")

    proc = subprocess.run([sys.executable, "-m", "sinr_codecs", "info", str(store)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "net.0.weight" in proc.stdout  # python -m sinr_codecs is the sinr command
