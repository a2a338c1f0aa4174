"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run (derandomized): a failure found once is found again,
# and CI never depends on luck. HYPOTHESIS_PROFILE=explore draws new examples each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def gaussian(shape, dtype="float32", seed=0) -> np.ndarray:
    """Seeded Gaussian test array of ``shape`` and ``dtype``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def benchmark_script(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` of this checkout, loaded as a module named ``name``."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # as an imported module is (dataclasses look their module up there)
    spec.loader.exec_module(mod)
    return mod


def has_cuda() -> bool:
    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest on one thread (and many times slower when threads contend)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
