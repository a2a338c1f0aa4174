"""A plugin with a mistake cannot break the others, and its mistake is named.

Each plugin below is a small distribution "installed" the way pip would expose it (a ``.dist-info`` folder
with its entry points, on ``sys.path``), with one mistake a third-party author makes: a list option whose
default is an int, a default outside its own range, a class ``name`` that is not its entry-point name, a
``config()`` key that is not a constructor argument, a ``render`` that returns ``(H, W, 1)`` for an RGB
image or ``(H·W, C)``. Each is reported with the plugin and what to fix, and ``sinr evaluate`` still runs
every other method.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

PLUGINS = '''
import numpy as np
from sinr_adapters.framework import AdapterSpec, Option
from sinr_adapters.methods.coin import COINAdapter


def _spec(cls, *options):
    return AdapterSpec(summary="a plugin with a mistake", rate="widths", rate_key="width", options=options)


class ListDefault(COINAdapter):
    name = "listdefault"

    @classmethod
    def describe(cls):
        return _spec(cls, Option("widths", int, 16, "hidden widths", multiple=True, minimum=1))


class OutOfRange(COINAdapter):
    name = "outofrange"

    @classmethod
    def describe(cls):
        return _spec(cls, Option("widths", int, [8], "hidden widths", multiple=True, minimum=1),
                     Option("layers", int, 1, "sine layers", minimum=2))


class Misnamed(COINAdapter):
    name = "other"

    @classmethod
    def describe(cls):
        return _spec(cls, Option("widths", int, [8], "hidden widths", multiple=True, minimum=1))


class BadConfig(COINAdapter):
    name = "badconfig"

    @classmethod
    def describe(cls):
        return _spec(cls, Option("widths", int, [8], "hidden widths", multiple=True, minimum=1))

    def __init__(self, *, width=8, layers=2):
        super().__init__(width=width, layers=layers)

    def config(self):
        return {"width": self.width, "n_layers": self.layers}


class GreyRender(COINAdapter):
    name = "greyrender"

    @classmethod
    def describe(cls):
        return _spec(cls, Option("widths", int, [8], "hidden widths", multiple=True, minimum=1),
                     Option("layers", int, 2, "sine layers", minimum=1))

    def render(self, model, shape):
        return super().render(model, shape)[..., :1]


class FlatRender(GreyRender):
    name = "flatrender"

    def render(self, model, shape):
        return COINAdapter.render(self, model, shape).reshape(-1, shape[-1])
'''

ENTRY_POINTS = {"listdefault": "ListDefault", "outofrange": "OutOfRange", "misnamed": "Misnamed",
                "badconfig": "BadConfig", "greyrender": "GreyRender", "flatrender": "FlatRender"}

TINY = ["--images", "astronaut", "--size", "8", "--steps", "5", "--finetune-steps", "1", "--quiet",
        "--no-progress", "--sinr-only"]


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "sinr_mistaken_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sinr-mistaken-plugins\nVersion: 0.1\n")
    lines = ["[sinr_codecs.adapters]", *(f"{ep} = sinr_mistaken_plugins:{cls}" for ep, cls in ENTRY_POINTS.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (site / "sinr_mistaken_plugins.py").write_text(textwrap.dedent(PLUGINS))
    monkeypatch.syspath_prepend(str(site))
    yield site
    import sys

    sys.modules.pop("sinr_mistaken_plugins", None)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_broken_descriptions_are_named_and_left_out(plugins):
    from sinr_adapters.harness.plugins import installed

    ok, broken = installed()
    assert {"coin", "greyrender", "flatrender", "badconfig"} <= set(ok)
    assert set(broken) == {"listdefault", "outofrange", "misnamed"}
    assert "'listdefault'" in broken["listdefault"] and "sinr-mistaken-plugins" in broken["listdefault"]
    assert "option 'widths': its default 16 does not fit the option" in broken["listdefault"]
    assert "give a default that is a non-empty list of int" in broken["listdefault"]
    assert "option 'layers': its default 1 does not fit the option" in broken["outofrange"]
    assert "below the minimum 2" in broken["outofrange"] and ">= 2" in broken["outofrange"]
    assert "class attribute name is 'other', not its entry-point name 'misnamed'" in broken["misnamed"]
    assert "set name = 'misnamed'" in broken["misnamed"]


def test_sinr_evaluate_stays_and_names_the_broken_plugins(plugins, capsys):
    from sinr_codecs.cli import main

    assert main(["evaluate", "--help"]) == 0
    out = capsys.readouterr()
    assert "--coin-widths" in out.out and "--greyrender-widths" in out.out and "--listdefault" not in out.out
    for name in ("listdefault", "outofrange", "misnamed"):
        assert f"sinr: warning: skipping adapter plugin {name!r}" in out.err
    assert "invalid choice" not in out.err


def test_every_other_method_still_evaluates(plugins, tmp_path, capsys):
    from sinr_adapters.harness import commands

    assert commands.main_evaluate(["--method", "coin", *TINY, "--widths", "4", "--layers", "2",
                                   "--out", str(tmp_path / "rd")]) == 0
    assert "| coin+sinr | astronaut | width=4 |" in capsys.readouterr().out
    assert commands.main_evaluate(["--method", "listdefault", *TINY, "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert "adapter plugin 'listdefault'" in err and "its default 16 does not fit" in err


def test_a_config_that_does_not_rebuild_the_adapter_is_refused_before_it_runs(plugins, tmp_path, capsys):
    from sinr_adapters.harness import commands

    assert commands.main_evaluate(["--method", "badconfig", *TINY, "--out", str(tmp_path / "rd")]) == 1
    err = capsys.readouterr().err
    assert "adapter plugin 'badconfig'" in err and "config() does not rebuild the adapter" in err
    assert "n_layers" in err and "constructor's arguments" in err


@pytest.mark.parametrize("name, shape", [("greyrender", "(8, 8, 1)"), ("flatrender", "(64, 3)")])
def test_a_rendering_of_another_shape_stops_the_run_with_the_adapter_named(plugins, tmp_path, capsys, name, shape):
    from sinr_adapters.harness import commands

    assert commands.main_evaluate(["--method", name, *TINY, "--out", str(tmp_path / "rd")]) == 1
    err = capsys.readouterr().err
    assert f"adapter {name!r}: render returned shape {shape}, expected (8, 8, 3)" in err
