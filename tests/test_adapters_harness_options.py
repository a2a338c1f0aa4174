"""The harness builds every method's options from the adapter's own description (sinr_adapters.framework.spec)."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from sinr_adapters.framework import spec
from sinr_adapters.harness import commands
from sinr_adapters.harness.config import EvalConfig
from sinr_adapters.harness.plugins import method_spec


def config_of(argv):
    parser = argparse.ArgumentParser()
    commands.add_evaluate(parser.add_subparsers())
    return commands._config_from_args(parser.parse_args(["evaluate", *argv]))


def test_every_bundled_adapter_describes_itself():
    for name, knob, bits in [("coin", "width", "bits"), ("inric", "width", "bits"),
                             ("coinpp", "latent_dim", "bits"), ("shacira", "log2_table_size", "mlp_bits")]:
        _, s = method_spec(name)
        assert s.rate_key == knob and s.bits == bits and s.signal == "image" and s.metric.name == "PSNR"
        assert s.option(s.rate).multiple


def test_the_harness_the_framework_and_the_rate_coding_name_no_method():
    """No string in the code of the framework, the harness or the rate coding (docstrings aside) is a
    method's name, and none of their modules imports a method: methods come from the registry."""
    root = Path(__file__).resolve().parents[1] / "adapters"
    names = {"coin", "inric", "coinpp", "shacira", "occupancy", "audio", "nic", "jpeg", "webp", "jpeg2000", "avif"}
    modules = [p for room in ("framework", "harness", "rate_coding") for p in sorted((root / room).glob("*.py"))]
    assert len(modules) > 30
    for path in modules:
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n) is not None}
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and id(n) not in docs]
        found = [s for s in strings if s.lower() in names or re.match(r"(coin|inric|shacira)_", s)]
        if path.name in ("config.py", "commands.py"):   # the default --method and the demo's configuration
            found = [s for s in found if s != "coin"]
        assert not found, path
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert not [m for m in imported if "methods" in m.split(".")], path


def test_the_command_line_names_no_method_beyond_its_defaults_and_the_demo():
    """``sinr evaluate``'s flags and help come from the adapters' descriptions: method names appear only
    in the default of --method, one --set example and the demo's embedded configuration."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "adapters" / "harness" / "commands.py").read_text())
    demo = {id(n) for a in ast.walk(tree) if isinstance(a, (ast.Assign, ast.AnnAssign))
            and any(isinstance(t, ast.Name) and t.id in ("DEMO", "_DEMO_HELP", "_DEMO_DESC")
                    for t in getattr(a, "targets", [getattr(a, "target", None)]))
            for n in ast.walk(a)}
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n) is not None}
    names = r"\b(coin|coinpp|coin\+\+|inric|shacira|nic|audio|occupancy|jpeg|webp|jpeg2000|avif)\b"
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and id(n) not in docs | demo and re.search(names, n.value, re.IGNORECASE)]
    assert found.count("coin") == 1   # --method's default
    rest = [s for s in found if s != "coin"]
    assert len(rest) <= 3 and all("--set" in s or "--METHOD-OPTION" in s or "(images, occupancy" in s
                                  for s in rest), rest
    help_text = argparse.ArgumentParser()
    commands.add_evaluate(help_text.add_subparsers())
    text = help_text._subparsers._group_actions[0].choices["evaluate"].format_help()
    for method in ("coin", "shacira"):   # the storage-bits knobs come from the descriptions
        assert f"{method}: {method_spec(method)[1].bits}" in " ".join(text.split())


def test_legacy_flags_and_set_give_the_same_options():
    legacy = config_of(["--method", "coinpp,shacira", "--coinpp-patch", "8", "--coinpp-latent-dims", "4,6",
                        "--shacira-sinr-latents", "--shacira-table-sizes", "5", "--size", "16"])
    new = config_of(["--method", "coinpp,shacira", "--set", "coinpp.patch=8", "--set", "coinpp.latent_dims=4,6",
                     "--set", "shacira.sinr_latents=true", "--set", "shacira.table_sizes=5", "--size", "16"])
    assert legacy.options == new.options
    assert new.options["coinpp"]["patch"] == 8 and new.options["coinpp"]["latent_dims"] == [4, 6]
    assert new.options["shacira"]["sinr_latents"] is True and new.options["coinpp"]["width"] == 32   # default


def test_shared_aliases_set_every_method_that_declares_them_and_set_wins():
    cfg = config_of(["--method", "coin,inric", "--widths", "8,12", "--layers", "2", "--inric-ff-dims", "4",
                     "--set", "coin.widths=6"])
    assert cfg.options["coin"] == {"widths": [6], "layers": 2}
    assert cfg.options["inric"]["widths"] == [8, 12] and cfg.options["inric"]["layers"] == 2
    assert cfg.options["inric"]["ff_dims"] == 4
    # flags of methods not run are ignored (old command lines keep working)
    assert set(config_of(["--method", "coin", "--inric-bits", "6", "--no-anchors"]).options) == {"coin"}


@pytest.mark.parametrize("argv, status, message", [
    (["--method", "coinpp", "--set", "coinpp.patch=abc"], 1, "coinpp.patch: expected an integer, got 'abc'"),
    (["--method", "coinpp", "--coinpp-patch", "abc"], 2, "coinpp.patch: expected an integer"),
    (["--method", "coin", "--widths", "a,b"], 2, "coin.widths: expected an integer"),
    (["--method", "coin", "--set", "coin.nope=1"], 1, "coin has no option 'nope'"),
    (["--method", "coin", "--set", "coinpp.patch=8"], 1, "coinpp is not among the methods run"),
    (["--method", "coin", "--set", "widths=8"], 1, "METHOD.OPTION=VALUE"),
    (["--method", "coin", "--set", "bpg.q=1"], 1, "unknown method 'bpg'"),
    (["--method", "shacira", "--set", "shacira.table_sizes=30"], 1, "shacira.table_sizes: 30 is above the maximum 24"),
    (["--method", "shacira", "--set", "shacira.sinr_latents=maybe"], 1, "expected true or false"),
    # SINR's flags are checked by the options' one definition, with its messages
    (["--method", "coin", "--value-bits", "8,30"], 2, "value_bits must be an integer in [2, 24], got 30"),
    (["--method", "coin", "--sparsity", "0.25,1.5"], 2, "a fractional sparsity must lie in (0, 1), got 1.5"),
    (["--method", "coin", "--dictionary-ratio", "0.5"], 2, "dictionary_ratio must be a finite number >= 1"),
    (["--method", "coin", "--seed", "-1"], 1, "seed must be an integer in [0, 18446744073709551615], got -1"),
    (["--method", "coin", "--seed", str(2 ** 70)], 1, "seed must be an integer in [0, 18446744073709551615]"),
])
def test_bad_method_options_fail_with_the_method_and_option_named(tmp_path, capsys, argv, status, message):
    assert commands.main_evaluate([*argv, "--out", str(tmp_path)]) == status
    assert message in capsys.readouterr().err


def test_python_options_are_type_checked():
    with pytest.raises(spec.OptionError, match="coin.widths: expected a non-empty list"):
        EvalConfig(options={"coin": {"widths": 16}})
    with pytest.raises(spec.OptionError, match="coin.layers: expected int"):
        EvalConfig(options={"coin": {"layers": 2.5}})
    assert EvalConfig(options={"coin": {"layers": 2}}).options["coin"] == {"widths": [16, 32], "layers": 2}
    for seed in (-1, 2 ** 64):   # refused at construction, as the codec refuses it, before anything runs
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 18446744073709551615\]"):
            EvalConfig(seed=seed, with_sinr=False)


def test_option_parsing():
    o = spec.Option("base", str, None, "a file", optional=True)
    assert o.parse("none", method="m") is None and o.parse("x.npz", method="m") == "x.npz"
    f = spec.Option("rate", float, 1.0, "a rate", minimum=0)
    assert f.parse("2", method="m") == 2.0 and isinstance(f.check(2, method="m"), float)
    with pytest.raises(spec.OptionError, match="finite"):
        f.parse("nan", method="m")
    c = spec.Option("mode", str, "a", "a mode", choices=("a", "b"))
    with pytest.raises(spec.OptionError, match="not one of"):
        c.parse("z", method="m")
    with pytest.raises(ValueError, match="must name a 'multiple' option"):
        spec.AdapterSpec(summary="x", options=(c,), rate="mode")
    with pytest.raises(ValueError, match="does not describe itself"):
        spec.describe(int)


def test_rate_aware_flags_reach_the_configuration():
    cfg = config_of(["--images", "chelsea", "--rate-aware", "1e-3,3e-3", "--rate-aware-seed", "5"])
    assert cfg.rate_aware == [1e-3, 3e-3] and cfg.rate_aware_seed == 5
    assert config_of(["--images", "chelsea"]).rate_aware_seed is None
    with pytest.raises(ValueError, match="rate_aware_seed"):
        config_of(["--images", "chelsea", "--rate-aware-seed", "5"])


def test_sinr_flags_offer_what_the_codec_accepts():
    from sinr_codecs import entropy, options

    parser = argparse.ArgumentParser()
    commands.add_evaluate(parser.add_subparsers())
    ev = parser._subparsers._group_actions[0].choices["evaluate"]
    acts = {a.dest: a for a in ev._actions}
    assert tuple(acts["sinr_entropy"].choices) == entropy.CHOICES
    assert tuple(acts["index_coding"].choices) == tuple(entropy.INDEX_CODINGS)
    assert acts["dictionary_ratio"].default == options.BY_NAME["dictionary_ratio"].default
    assert acts["value_bits"].default == [options.PRESETS["default"]["value_bits"]]
    assert acts["sparsity"].default == [options.DEFAULT_SPARSITY]  # adapters always code at a fixed sparsity
    cfg = config_of(["--value-bits", "2,24", "--sinr-entropy", "rans", "--seed", str(2 ** 64 - 1)])
    assert cfg.value_bits == [2, 24] and cfg.sinr_entropy == "rans" and cfg.seed == 2 ** 64 - 1


def test_hooks_see_which_paths_run():
    """``validate(options, ctx)`` can refuse options that only make sense with or without SINR."""
    both = EvalConfig(methods=["coin"]).context(method="coin")
    assert both.with_sinr and both.without_sinr
    plain = EvalConfig(methods=["coin"], with_sinr=False).context(method="coin")
    assert not plain.with_sinr and plain.without_sinr
