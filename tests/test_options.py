"""Every SINR option is defined once (sinr_codecs.options) and every consumer derives from it."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import numcodecs
import pytest

from sinr_codecs import SINR, options
from sinr_codecs.cli import build_parser, main
from sinr_codecs.zarr3 import SINRCodec

NAMES = [o.name for o in options.OPTIONS]


def test_codec_signature_config_and_docs_come_from_the_options():
    params = list(inspect.signature(SINR.__init__).parameters)[1:]
    assert params == NAMES
    assert set(SINR().get_config()) - {"id"} == {o.name for o in options.OPTIONS if o.stored}
    for o in options.OPTIONS:
        assert f"{o.name} : {o.type_doc}" in SINR.__doc__


def test_zarr3_fields_and_docs_come_from_the_options():
    fields = {f.name for f in dataclasses.fields(SINRCodec)}
    assert fields == {o.name for o in options.OPTIONS}  # device and dtype: fields never stored
    assert set(SINRCodec().to_dict()["configuration"]) == (
        {o.name for o in options.OPTIONS if o.stored} - {"dtype", "chunk_shape"})
    assert set(inspect.signature(SINRCodec.__init__).parameters) - {"self"} == set(NAMES)
    assert "sparsity : int or float" in SINRCodec.__doc__
    # the configuration a numcodecs codec emits is accepted by the Zarr codec
    config = {k: v for k, v in SINR(dtype="f4").get_config().items() if k != "id"}
    assert SINRCodec.from_dict({"name": "sinr_codecs.sinr", "configuration": config}) == SINRCodec()


def test_cli_flags_come_from_the_options():
    parser = build_parser()
    compress = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "compress")[1]
    flags = {s for a in compress._actions for s in a.option_strings}
    for o in options.OPTIONS:
        assert (o.flag in flags) == o.cli


@pytest.mark.parametrize("name,value", [("seed", -1), ("seed", 2**70), ("sparsity", 0), ("sparsity", 1.5),
                                        ("value_bits", 1), ("value_bits", 25), ("dictionary_ratio", 0.5),
                                        ("dictionary_ratio", float("inf")), ("layout", "diagonal"),
                                        ("entropy", "zstd"), ("index_coding", "gaps"), ("max_rel_error", 1.0),
                                        ("block_size", 0), ("preset", "fast"), ("device", "tpu"),
                                        ("dtype", "int8")])
def test_every_consumer_refuses_the_same_values(name, value):
    with pytest.raises(ValueError) as a:
        SINR(**{name: value})
    with pytest.raises(ValueError) as b:
        numcodecs.get_codec({"id": "sinr", name: value}) if name != "device" else SINR(device=value)
    assert str(a.value) == str(b.value)
    if name != "dtype":
        with pytest.raises(ValueError) as c:
            SINRCodec(**{name: value})
        assert str(c.value) == str(a.value)
    o = options.BY_NAME[name]
    if o.cli and isinstance(value, (int, str)) and not isinstance(value, bool):
        with pytest.raises(argparse.ArgumentTypeError):
            options._cli_value(o)(str(value))


def test_cli_refuses_a_bad_option_value_with_a_usage_error(tmp_path, capsys):
    try:
        rc = main(["compress", str(tmp_path / "m.pt"), "-o", str(tmp_path / "o.zarr"), "--seed", "-1"])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert "seed must be an integer" in capsys.readouterr().err


def test_resolve_fills_presets_and_checks_combinations():
    assert options.resolve()["value_bits"] == 8
    assert options.resolve(preset="paper")["index_coding"] == "raw"
    assert options.resolve(preset="paper", value_bits=12)["value_bits"] == 12
    with pytest.raises(ValueError, match="max_rel_error"):
        options.resolve(value_bits="auto", sparsity=0.25)


def test_the_default_is_error_bounded_and_a_stored_configuration_keeps_its_mode():
    assert options.resolve()["max_rel_error"] == options.DEFAULT_MAX_REL_ERROR == 0.02
    assert options.resolve(value_bits="auto")["max_rel_error"] == 0.02
    assert options.resolve(sparsity=0.25)["max_rel_error"] is None  # a sparsity alone: fixed rate
    assert options.resolve(max_rel_error=0.05)["max_rel_error"] == 0.05
    fixed = options.resolve(sparsity=8)
    assert options.resolve(**{k: v for k, v in fixed.items() if k != "device"})["max_rel_error"] is None
    assert options.resolve(max_rel_error=None)["max_rel_error"] is None
    with pytest.raises(ValueError, match="block_size"):
        options.resolve(layout="blocks")
    with pytest.raises(ValueError, match="unknown SINR option"):
        options.resolve(colour="blue")
