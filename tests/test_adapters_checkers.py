"""The shared checkers (sinr_adapters.framework.testing) hold every registered adapter to the protocol, and
catch each way an adapter can break it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinr_adapters.framework import testing
from sinr_adapters.framework.spec import Context, describe
from sinr_adapters.harness.plugins import unavailable
from sinr_codecs.errors import StreamError
from sinr_codecs.registry import available_adapters, load_adapter

pytestmark = pytest.mark.usefixtures("one_thread")


def _coinpp():
    from sinr_adapters.methods.coinpp.adapter import COINppAdapter
    from sinr_adapters.methods.coinpp.model import ModulatedSiren

    torch.manual_seed(0)
    base = ModulatedSiren(dim_hidden=8, num_layers=2, latent_dim=4).state_dict()
    return COINppAdapter(width=8, layers=2, latent_dim=4, patch=4, base=base, quantizer=(0.0, 1.0))


def _small(name: str):
    """A small adapter of every bundled method; any other registered adapter as its description's first rate
    point builds it."""
    from sinr_adapters.methods.audio.adapter import AudioAdapter
    from sinr_adapters.methods.coin import COINAdapter
    from sinr_adapters.methods.inric import INRICAdapter
    from sinr_adapters.methods.nic.adapter import NICAdapter
    from sinr_adapters.methods.occupancy.adapter import OccupancyAdapter
    from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter

    small = {
        "coin": lambda: COINAdapter(width=8, layers=2),
        "inric": lambda: INRICAdapter(hidden_features=8, hidden_layers=1, ff_dims=2, adaround_steps=3),
        "coinpp": _coinpp,
        "shacira": lambda: SHACIRAAdapter(levels=2, base_resolution=2, finest_resolution=8, log2_table_size=4),
        "occupancy": lambda: OccupancyAdapter(width=8, layers=2, samples=256),
        "audio": lambda: AudioAdapter(width=8, layers=2),
        "nic": lambda: NICAdapter(width=8, layers=2),
    }
    if name in small:
        return small[name]()
    cls = load_adapter(name)
    spec = describe(cls, name)
    return spec.rate_points(cls, spec.defaults(), Context(size=spec.signal_source().size))[0][1]


@pytest.mark.parametrize("name", sorted(available_adapters()))
def test_every_registered_adapter_passes_the_shared_checkers(name):
    why = unavailable(name)
    if why is not None:   # e.g. a Pillow built without one of the classic codecs
        pytest.skip(why)
    testing.check_adapter(_small(name), steps=3)


def test_the_bundled_methods_are_all_registered():
    assert {"coin", "inric", "coinpp", "shacira", "occupancy", "audio", "nic", "jpeg", "webp", "jpeg2000",
            "avif"} <= set(available_adapters())


# ---- each check catches its mistake ----------------------------------------------------------------
def _coin_like(**overrides):
    """A COIN adapter class with some behaviour replaced (a plugin with a mistake)."""
    from sinr_adapters.methods.coin import COINAdapter

    return type("Mistaken", (COINAdapter,), overrides)


def test_a_config_key_that_is_not_a_constructor_argument_is_caught():
    def config(self):
        return {**type(self).__mro__[1].config(self), "n_layers": self.layers}

    with pytest.raises(AssertionError, match="n_layers.*constructor's arguments"):
        testing.check_config_round_trip(_coin_like(config=config)(width=4, layers=2))


def test_a_config_that_is_not_json_is_caught():
    def config(self):
        return {**type(self).__mro__[1].config(self), "dims": (2, 3)}

    with pytest.raises(AssertionError, match="use lists, not tuples"):
        testing.check_config_round_trip(_coin_like(config=config)(width=4, layers=2))


@pytest.mark.parametrize("wrong, match", [
    (lambda out: out[..., :1], r"returned shape \(6, 6, 1\), expected \(6, 6, 3\)"),
    (lambda out: out.reshape(-1, 3), r"returned shape \(36, 3\), expected \(6, 6, 3\)"),
    (lambda out: out.astype(np.int64), "floating dtype"),
    (lambda out: out * np.nan, "non-finite"),
], ids=["channel-broadcast", "flattened", "integers", "nan"])
def test_a_rendering_of_the_wrong_shape_or_dtype_is_caught(wrong, match):
    from sinr_adapters.methods.coin import COINAdapter

    def render(self, model, shape):
        return wrong(COINAdapter.render(self, model, shape))

    adapter = _coin_like(render=render)(width=4, layers=2)
    signal = testing.sample_signal(adapter, 6)
    with pytest.raises(AssertionError, match=match):
        testing.check_render(adapter, adapter.build_model(), signal)


def test_a_stream_that_varies_between_writes_is_caught():
    from sinr_adapters.methods.coin import COINAdapter

    calls: list[int] = []

    def compress(self, model, signal, **kw):  # a counter standing in for an unseeded random choice
        calls.append(1)
        return COINAdapter.compress(self, model, signal, **kw) + bytes([len(calls)])

    adapter = _coin_like(compress=compress)(width=4, layers=2)
    with pytest.raises(AssertionError, match="different bytes"):
        testing.check_round_trip(adapter, testing.sample_signal(adapter, 6), steps=1)


def test_a_decoder_that_raises_anything_but_stream_error_is_caught():
    from sinr_adapters.methods.coin import COINAdapter

    adapter = COINAdapter(width=4, layers=2)
    data = adapter.compress(adapter.build_model(), testing.sample_signal(adapter, 6))
    testing.check_refuses_corruption(adapter.decompress, data)

    def sloppy(blob: bytes):
        if len(blob) < len(data):
            raise IndexError("index out of range")
        return adapter.decompress(blob)

    with pytest.raises(AssertionError, match="raised IndexError.*not StreamError"):
        testing.check_refuses_corruption(sloppy, data, name="sloppy")

    def lenient(blob: bytes):
        try:
            return adapter.decompress(blob)
        except StreamError:
            return None

    with pytest.raises(AssertionError, match="was decoded instead of refused"):
        testing.check_refuses_corruption(lenient, data, name="lenient")


def test_decoding_by_header_needs_the_registered_class():
    adapter = _coin_like()(width=4, layers=2)
    data = adapter.compress(adapter.build_model(), testing.sample_signal(adapter, 6))
    with pytest.raises(AssertionError, match="registry maps 'coin' to"):
        testing.check_decode_by_header(adapter, data)
    renamed = _coin_like(name="unregistered")(width=4, layers=2)
    data = renamed.compress(renamed.build_model(), testing.sample_signal(renamed, 6))
    with pytest.raises(AssertionError, match="no adapter 'unregistered' is registered"):
        testing.check_decode_by_header(renamed, data)
