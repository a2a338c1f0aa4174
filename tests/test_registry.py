"""sinr_codecs.registry: adapters found through the entry-point group, third-party ones included."""

from __future__ import annotations

import importlib
import sys
import textwrap
from importlib import metadata

import pytest

from sinr_codecs import registry
from sinr_codecs.registry import (
    GROUP,
    AdapterLoadError,
    UnknownAdapterError,
    adapter_info,
    adapter_origin,
    available_adapters,
    load_adapter,
)

PLUGIN = textwrap.dedent('''
    class ThirdPartyAdapter:
        name = "thirdparty"

        def config(self):
            return {}
''')


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """A distribution installed the way pip would: a dist-info folder with entry_points.txt on sys.path."""
    (tmp_path / "thirdparty_inr.py").write_text(PLUGIN)
    (tmp_path / "broken_inr.py").write_text("raise ImportError('needs the frobnicate package')\n")
    (tmp_path / "notaclass_inr.py").write_text("make = lambda: None\n")
    (tmp_path / "misnamed_inr.py").write_text("class Adapter:\n    name = 'coin'\n")
    dist = tmp_path / "thirdparty_inr-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-inr\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        f"[{GROUP}]\n"
        "thirdparty = thirdparty_inr:ThirdPartyAdapter\n"
        "broken = broken_inr:Adapter\n"
        "notaclass = notaclass_inr:make\n"
        "misnamed = misnamed_inr:Adapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for mod in ("thirdparty_inr", "broken_inr", "notaclass_inr", "misnamed_inr"):
        sys.modules.pop(mod, None)


def test_builtin_adapters_are_declared():
    found = available_adapters()
    assert {"coin", "inric"} <= set(found)
    assert found["coin"].value == "sinr_adapters.methods.coin:COINAdapter"
    from sinr_adapters.methods.coin import COINAdapter
    from sinr_adapters.methods.inric import INRICAdapter

    assert load_adapter("coin") is COINAdapter
    assert load_adapter("inric") is INRICAdapter


def test_third_party_adapter_is_discovered(third_party):
    found = available_adapters()
    assert "thirdparty" in found
    cls = load_adapter("thirdparty")
    assert cls.__name__ == "ThirdPartyAdapter" and cls.name == "thirdparty"
    info = {i.name: i for i in adapter_info()}
    assert info["thirdparty"].distribution == "thirdparty-inr"
    assert info["thirdparty"].version == "1.2.3"


def test_unknown_adapter_lists_known_names(third_party):
    with pytest.raises(UnknownAdapterError) as exc:
        load_adapter("nope")
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, LookupError)
    msg = str(exc.value)
    assert "'nope'" in msg and "coin" in msg and "thirdparty" in msg and GROUP in msg


def test_broken_plugin_names_plugin_and_cause(third_party):
    assert "broken" in available_adapters()  # discovery itself never imports
    with pytest.raises(AdapterLoadError) as exc:
        load_adapter("broken")
    msg = str(exc.value)
    assert "'broken'" in msg and "thirdparty-inr" in msg and "frobnicate" in msg
    assert isinstance(exc.value.__cause__, ImportError)
    assert load_adapter("thirdparty").__name__ == "ThirdPartyAdapter"  # others still load


def test_entry_point_must_name_a_class(third_party):
    with pytest.raises(AdapterLoadError, match="does not name a class"):
        load_adapter("notaclass")


def test_class_name_must_be_the_entry_point_name(third_party):
    """A plugin that claims another adapter's name would have its streams decoded by that adapter."""
    with pytest.raises(AdapterLoadError) as exc:
        load_adapter("misnamed")
    msg = str(exc.value)
    assert "'misnamed'" in msg and "'coin'" in msg and "thirdparty-inr" in msg
    assert load_adapter("coin").name == "coin"


def test_adapter_origin_names_target_and_distribution(third_party):
    assert adapter_origin("thirdparty") == "'thirdparty_inr:ThirdPartyAdapter' from distribution 'thirdparty-inr' 1.2.3"
    assert adapter_origin("nope") == ""


def test_monkeypatched_entry_points(monkeypatch):
    """The registry reads importlib.metadata only: faking entry_points is enough."""
    ep = metadata.EntryPoint(name="fake", value="collections:OrderedDict", group=GROUP)

    def fake(**kw):
        assert kw == {"group": GROUP}
        return metadata.EntryPoints([ep])

    monkeypatch.setattr(registry.metadata, "entry_points", fake)
    assert list(available_adapters()) == ["fake"]
    import collections

    assert load_adapter("fake") is collections.OrderedDict


def test_duplicate_names_warn(monkeypatch):
    eps = [metadata.EntryPoint(name="dup", value="collections:OrderedDict", group=GROUP),
           metadata.EntryPoint(name="dup", value="collections:Counter", group=GROUP)]
    monkeypatch.setattr(registry.metadata, "entry_points", lambda **kw: metadata.EntryPoints(eps))
    with pytest.warns(RuntimeWarning, match="declared twice"):
        found = available_adapters()
    assert found["dup"].value == "collections:OrderedDict"
