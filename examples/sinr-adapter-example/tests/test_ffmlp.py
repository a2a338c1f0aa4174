"""The example adapter keeps the protocol: the shared checkers of sinr_adapters.framework.testing.

Run with the distribution installed (``pip install -e .``): decoding by header finds ``ffmlp`` through its
entry point.
"""

from __future__ import annotations

from sinr_adapter_example import FourierMLPAdapter
from sinr_adapters.framework import check_adapter


def test_ffmlp_keeps_the_adapter_protocol():
    check_adapter(FourierMLPAdapter(width=8, layers=2, frequencies=2))
