"""The API reference under docs/api/ is generated from the docstrings and must match the code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
REGENERATE = "python docs/api/generate.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("sinr_apidoc_generate", API / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def test_api_reference_is_current(generator, tmp_path):
    generator.write(tmp_path)
    fresh = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.md")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in API.glob("*.md")}
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    stale = sorted(name for name in set(fresh) & set(committed) if fresh[name] != committed[name])
    assert not (missing or extra or stale), (
        f"docs/api is out of date (missing {missing}, not generated {extra}, stale {stale}): "
        f"regenerate it with `{REGENERATE}` and commit the result")


def test_every_documented_module_has_a_public_api(generator):
    import importlib

    for name, _ in generator.MODULES:
        mod = importlib.import_module(name)
        assert isinstance(getattr(mod, "__all__", None), (list, tuple)), f"{name} declares no __all__"
        assert mod.__all__ or hasattr(mod, "__path__"), f"{name} exports nothing"  # a package may only document
        for public in mod.__all__:
            assert hasattr(mod, public), f"{name}.__all__ names {public!r}, which the module lacks"


def test_every_public_module_of_the_adapters_has_a_page(generator):
    import pkgutil

    import sinr_adapters

    documented = {name for name, _ in generator.MODULES}
    found = {m.name for m in pkgutil.walk_packages(sinr_adapters.__path__, "sinr_adapters.")}
    assert found and found <= documented and "sinr_adapters" in documented
    assert all((API / f"{name}.md").exists() for name in found)


def test_numpydoc_sections_become_markdown(generator):
    doc = '''Do a thing.

    Parameters
    ----------
    x : (n, k) float array
        The input,
        over two lines.
    flag : bool, default False

    A note after the entries, long enough to be a paragraph and not an entry at all.

    Returns
    -------
    int
        How many.

    Examples
    --------
    >>> 1 + 1
    2
    '''
    text = generator.markdown_doc(doc, 3)
    assert "**Parameters**" in text and "----------" not in text
    assert "- **x** : (n, k) float array: The input, over two lines." in text
    assert "- **flag** : bool, default False" in text
    assert "\nA note after the entries, long enough to be a paragraph and not an entry at all.\n" in text
    assert "- **int**: How many." in text
    assert "```pycon\n>>> 1 + 1\n2\n```" in text


def test_rst_markup_becomes_markdown(generator):
    text = generator.markdown_doc("See :class:`~sinr_codecs.errors.StreamError` and "
                                  ":func:`sinr_codecs.limits.set_limits`, ``x = 1``.\n\n"
                                  "Layout::\n\n    a | b\n    c\n\nAfter.", 2)
    assert "`StreamError`" in text and "`sinr_codecs.limits.set_limits`" in text and "`x = 1`" in text
    assert "Layout:\n\n```text\na | b\nc\n```" in text
    assert text.endswith("After.")
