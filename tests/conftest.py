"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def gaussian(shape, dtype="float32", seed=0) -> np.ndarray:
    """Seeded Gaussian test array of ``shape`` and ``dtype``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def has_cuda() -> bool:
    return torch.cuda.is_available()
