"""The examples in the docstrings run, as written, against the installed package.

Each module of ``sinr_codecs`` and ``sinr_adapters`` is imported by its import name (the folder
``adapters/`` is installed as ``sinr_adapters``, so pytest's ``--doctest-modules`` would import it under
the wrong name) and its docstrings' examples are run by :mod:`doctest`.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sinr_adapters
import sinr_codecs

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for package in (sinr_codecs, sinr_adapters):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(names)


MODULES = _modules()

KNOWN_FAILURES: dict[str, str] = {}
"""Examples that fail for a reason outside the example itself; strict, so a fix turns them into failures
until they are removed from this table."""


def _params() -> list:
    return [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[m]))
            if m in KNOWN_FAILURES else m for m in MODULES]


def test_every_module_is_collected():
    assert "sinr_codecs.codec" in MODULES and "sinr_adapters.framework.inr" in MODULES
    assert not any(m.startswith("adapters.") for m in MODULES)


@pytest.mark.parametrize("name", _params())
def test_docstring_examples(name, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS, verbose=False)
    failures = []
    for test in finder.find(module, name):
        runner.run(test, out=failures.append)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {name} failed:\n" + "".join(failures)
