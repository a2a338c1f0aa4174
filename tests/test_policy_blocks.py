"""The default policy's vector layout for long rows: blocks of about 32 over 1024 atoms."""

from __future__ import annotations

import pytest

from sinr_codecs.policy import BLOCK_ATOMS, BLOCK_K1, MAX_K1, block_length, choose_policy
from sinr_codecs.sparse import resolve_k2


@pytest.mark.parametrize("k1", [65, 100, 147, 288, 576, 768, 1000, 1009, 3072, 4096, 11008])
def test_block_length_divides_rows_when_it_can(k1):
    b = block_length(k1)
    divisors = [d for d in range(24, 49) if k1 % d == 0]
    if divisors:
        assert k1 % b == 0 and 24 <= b <= 48
        assert abs(b - BLOCK_K1) == min(abs(d - BLOCK_K1) for d in divisors)
    else:
        assert b == BLOCK_K1


def test_long_rows_become_blocks_over_1024_atoms_and_short_rows_stay_rows():
    assert choose_policy("w", dtype="float32", shape=(64, MAX_K1)).layout == "rows"
    d = choose_policy("w", dtype="float32", shape=(64, MAX_K1 + 1))
    assert d.layout == "blocks" and d.options == {"block_size": block_length(MAX_K1 + 1),
                                                  "dictionary_size": BLOCK_ATOMS}
    conv = choose_policy("conv.weight", dtype="float16", shape=(128, 64, 3, 3))
    assert conv.layout == "blocks" and conv.options["block_size"] == 32
    assert resolve_k2(32, conv.options["dictionary_size"], 8.0) == 1024
    assert "blocks of 32" in conv.reason


def test_overrides_still_win_over_the_policy_options():
    d = choose_policy("fc.weight", dtype="float32", shape=(16, 1024),
                      overrides={"fc.*": {"block_size": 64, "dictionary_size": 512}})
    assert d.layout == "blocks" and d.options == {"block_size": 64, "dictionary_size": 512}
    rows = choose_policy("fc.weight", dtype="float32", shape=(16, 1024), overrides={"fc.*": {"layout": "rows"}})
    assert rows.layout == "rows"
