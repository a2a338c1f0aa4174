"""Checkers an adapter must pass, for the test suite and for plugin authors (in the manner of numcodecs'
``tests/common.py``).

:func:`check_adapter` runs every check on one adapter and a small signal; each check is also a function of
its own, and each raises ``AssertionError`` with a message that names the adapter and what to fix:

- :func:`check_config_round_trip`: the adapter implements the protocol, ``config()`` is JSON-safe and
  rebuilds the adapter (``with_config``, and
  the class itself from its configuration): what a decoder does with the configuration a stream holds;
- :func:`check_round_trip` (without SINR) and again with SINR: fit, compress, decompress; the stream is the
  same bytes when written twice, its model renders the signal's shape;
- :func:`check_render`: ``render`` returns a float array of exactly the signal's shape, finite
  (:func:`~sinr_adapters.framework.protocol.check_rendering`);
- :func:`check_decode_by_header`: the stream names the adapter's ``name``, the registry
  (:mod:`sinr_codecs.registry`) maps that name to the adapter's class, and an adapter the class builds
  with its defaults decodes the stream to the same signal (adapters without shared state);
- :func:`check_refuses_corruption`: truncated, extended, bit-flipped, empty and random streams raise
  :class:`~sinr_codecs.errors.StreamError` and nothing else.

A method without a network (a :class:`~sinr_adapters.framework.protocol.SignalCodec`, described with
``weights=False``) is checked the same way where the checks apply: its configuration round trip, its file
written twice from the same signal (the same bytes) and decoded to a float array of the signal's shape
(:func:`check_codec_round_trip`), the registry's class for its name decoding the file to the same pixels, and
corrupt files refused with ``StreamError``. A format without a checksum of its payload (every classic one)
cannot tell an appended byte or a flipped bit from a valid file, so for it those two cases may decode; they
still may raise nothing but ``StreamError``.

A plugin's own test suite runs them on its adapter, once installed (``pip install -e .``)::

    from sinr_adapters.framework.testing import check_adapter

    def test_my_adapter_keeps_the_protocol():
        check_adapter(MyAdapter(width=8))

Examples
--------
>>> from sinr_adapters.methods.coin import COINAdapter
>>> check_adapter(COINAdapter(width=4, layers=2), signal_size=6, steps=2)
>>> sample_image(4).shape
(4, 4, 3)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sinr_codecs.errors import StreamError

from .protocol import Adapter, ContractError, SignalCodec, check_rendering
from .signals import Signal
from .sinr_options import SINROptions
from .spec import describe

__all__ = ["check_adapter", "check_codec_round_trip", "check_config_round_trip", "check_decode_by_header",
           "check_refuses_corruption", "check_render", "check_round_trip", "sample_image", "sample_signal"]

SMALL_SINR = SINROptions(sparsity=0.5, value_bits=8, device="cpu")
"""The SINR options :func:`check_adapter` compresses with (a tiny network has short rows)."""


def _shared(adapter: Any) -> str | None:
    """The adapter's shared-state fingerprint (None for an adapter without the hook, or without state)."""
    hook = getattr(adapter, "shared_fingerprint", None)
    return None if hook is None else hook()


def _fail(adapter: Any, text: str) -> AssertionError:
    return AssertionError(f"adapter {getattr(adapter, 'name', type(adapter).__name__)!r}: {text}")


def sample_image(size: int = 8) -> np.ndarray:
    """A deterministic ``(size, size, 3)`` float32 image in [0, 1] (gradients and a ripple; no files)."""
    y, x = np.meshgrid(np.linspace(0.0, 1.0, size), np.linspace(0.0, 1.0, size), indexing="ij")
    img = np.stack([x, y, 0.5 + 0.5 * np.sin(6.0 * (x + y))], axis=-1)
    return np.round(img * 255.0).astype(np.float32) / 255.0


def sample_signal(adapter: Any, size: int | None = None) -> Signal:
    """A small signal for ``adapter``: :func:`sample_image` for an image adapter, else the first default signal
    of its description's source at ``size`` (default: the source's smallest size, at least 16)."""
    spec = describe(type(adapter))
    source = spec.signal_source()
    if source.kind == "image":
        return adapter.signal_from_image(sample_image(size or 8), name="test")
    raw = source.load(source.default[0], size or max(source.min_size, 16))
    return spec.make_signal(adapter, raw, source.default[0])


def _has_weights(adapter: Any) -> bool:
    """Whether the adapter's description says it stores a network (True for a class that describes nothing)."""
    try:
        return describe(type(adapter)).weights
    except ValueError:
        return True


_MEMBERS = {Adapter: ("name", "config", "signal_from_image", "fit", "compress", "compress_with_info", "with_config",
                      "decompress", "render"),
            SignalCodec: ("name", "config", "with_config", "signal_from_image", "encode", "decode")}


def _check_protocol(adapter: Any) -> None:
    protocol: Any = Adapter if _has_weights(adapter) else SignalCodec
    if not isinstance(adapter, protocol):
        missing = [n for n in _MEMBERS[protocol] if not hasattr(adapter, n)]
        raise _fail(adapter, f"does not implement the {protocol.__name__} protocol (missing {missing})")


def check_config_round_trip(adapter: Any) -> None:
    """The adapter implements the :class:`~sinr_adapters.framework.protocol.Adapter` protocol (a method without
    a network: :class:`~sinr_adapters.framework.protocol.SignalCodec`), and its
    ``config()`` is a JSON-safe dict that rebuilds it: ``with_config(config())`` and (when the adapter keeps
    no shared state) ``type(adapter)(**config())`` have the same configuration."""
    _check_protocol(adapter)
    config = adapter.config()
    if not isinstance(config, dict):
        raise _fail(adapter, f"config() returned a {type(config).__name__}, not a dict")
    try:
        again = json.loads(json.dumps(config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _fail(adapter, f"config() is not JSON-safe ({exc}); streams store it as JSON") from exc
    if again != config:
        raise _fail(adapter, f"config() changes through JSON ({config} -> {again}); use lists, not tuples")
    builders: list[tuple[str, Callable[[], Any]]] = [("with_config(config())", lambda: adapter.with_config(config))]
    if _shared(adapter) is None:
        builders.append((f"{type(adapter).__name__}(**config())", lambda: type(adapter)(**config)))
    for what, build in builders:
        try:
            rebuilt = build()
        except (TypeError, ValueError) as exc:
            raise _fail(adapter, f"{what} fails ({type(exc).__name__}: {exc}); config() must return the "
                                 "constructor's arguments by name") from exc
        if rebuilt.config() != config:
            raise _fail(adapter, f"{what} has configuration {rebuilt.config()}, not {config}")


def check_render(adapter: Any, model: Any, signal: Signal) -> np.ndarray:
    """``render(model, signal.shape)`` is a float array of exactly the signal's shape, every value finite
    (for an adapter whose description renders with side information, its ``render(adapter, model, signal)``
    of the shape of the signal's reference)."""
    spec = describe(type(adapter))
    try:
        if spec.render is not None:
            return check_rendering(spec.render(adapter, model, signal), signal.target().shape, adapter=adapter.name,
                                   method="the render of its describe()")
        return check_rendering(adapter.render(model, signal.shape), signal.shape, adapter=adapter.name,
                               method="render")
    except ContractError as exc:
        raise AssertionError(str(exc)) from exc


def _fit(adapter: Any, signal: Signal, steps: int) -> Any:
    spec = describe(type(adapter))
    steps_, lr = (steps, None) if spec.fit_schedule is None else spec.fit_schedule(adapter, steps, None)
    model, _ = adapter.fit(signal, steps=steps_, lr=lr, device="cpu", progress=False, seed=0)
    return model


def check_round_trip(adapter: Any, signal: Signal, *, sinr: SINROptions | None = None, steps: int = 5,
                     finetune_steps: int = 1, model: Any = None) -> bytes:
    """Fit (``steps``, unless ``model`` is given), compress (``finetune_steps``, with ``sinr``), decompress:
    the stream is the same bytes when written twice (from the same fitted network), its model renders the
    signal's shape (:func:`check_render`) and ``decompress`` reports that shape. Returns the stream."""
    if model is None:
        model = _fit(adapter, signal, steps)
    kwargs: dict[str, Any] = {"sinr": sinr, "finetune_steps": finetune_steps, "progress": False}
    first = adapter.compress(model, signal, **kwargs)
    if not isinstance(first, bytes) or not first:
        raise _fail(adapter, f"compress returned {type(first).__name__} of {len(first)} bytes, not a stream")
    if adapter.compress(model, signal, **kwargs) != first:
        raise _fail(adapter, "compress wrote different bytes for the same network and signal; seed every "
                             "random choice of fine-tuning and coding")
    dec = adapter.decompress(first)
    if tuple(dec.shape) != tuple(signal.shape):
        raise _fail(adapter, f"decompress reports shape {tuple(dec.shape)}, the signal's is {tuple(signal.shape)}")
    check_render(adapter, dec.model, signal)
    return first


def check_codec_round_trip(codec: Any, signal: Signal) -> bytes:
    """For a method without a network: ``encode`` returns bytes, the same bytes when written twice from the
    same signal, and ``decode`` returns a float array of exactly the signal's shape, finite
    (:func:`~sinr_adapters.framework.protocol.check_rendering`). Returns the file."""
    first = codec.encode(signal)
    if not isinstance(first, bytes) or not first:
        raise _fail(codec, f"encode returned {type(first).__name__}, not the bytes of a file")
    if codec.encode(signal) != first:
        raise _fail(codec, "encode wrote different bytes for the same signal; fix every choice the encoder makes "
                           "(seeds, thread counts)")
    try:
        check_rendering(codec.decode(first), signal.shape, adapter=codec.name, method="decode")
    except ContractError as exc:
        raise AssertionError(str(exc)) from exc
    return first


def _registered_class(adapter: Any, method: str) -> type:
    from sinr_codecs.registry import UnknownAdapterError, load_adapter

    try:
        cls = load_adapter(method)
    except UnknownAdapterError as exc:
        raise _fail(adapter, f"no adapter {method!r} is registered: declare {type(adapter).__module__}:"
                             f"{type(adapter).__name__} in the entry-point group sinr_codecs.adapters under the name "
                             f"{method!r} (and install the distribution)") from exc
    if cls is not type(adapter):
        raise _fail(adapter, f"the registry maps {method!r} to {cls.__module__}.{cls.__qualname__}, not to "
                             f"{type(adapter).__module__}.{type(adapter).__qualname__}")
    return cls


def check_decode_by_header(adapter: Any, data: bytes) -> None:
    """The stream's header names ``adapter.name``, the registry maps the name to the adapter's class (so
    ``sinr decode`` finds it), and (for an adapter without shared state) an adapter that class builds
    with its defaults decodes the stream to what ``adapter`` decodes. For a method without a network, whose
    files do not name it: the registry maps ``adapter.name`` to its class, and that class's default
    instance decodes ``data`` to the same pixels."""
    from .container import read_header, strip_checksum

    if not _has_weights(adapter):
        cls = _registered_class(adapter, adapter.name)
        if not np.array_equal(cls().decode(data), adapter.decode(data)):
            raise _fail(adapter, f"{cls.__name__}() decodes the file to other pixels than the codec that wrote it")
        return
    method = read_header(strip_checksum(data))[0]["method"]
    if method != adapter.name:
        raise _fail(adapter, f"its stream names the method {method!r}")
    cls = _registered_class(adapter, method)
    if _shared(adapter) is not None:
        return
    writer: Any = adapter
    fresh: Any = cls()
    mine, theirs = writer.decompress(data), fresh.decompress(data)
    a = dict(mine.model.state_dict())
    b = dict(theirs.model.state_dict())
    if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
        raise _fail(adapter, f"{cls.__name__}() decodes the stream to another signal than the adapter that wrote "
                             "it: every setting decoding needs must be in config()")


def _cuts(n: int) -> list[int]:
    spread = {0, 1, 2, 3, 4, 5, 8, n // 4, n // 3, n // 2, 2 * n // 3, 3 * n // 4, n - 5, n - 4, n - 1}
    return sorted(spread & set(range(n)))


def check_refuses_corruption(decompress: Callable[[bytes], Any], data: bytes, *, seed: int = 0,
                             name: str = "adapter", checksum: bool = True) -> None:
    """``decompress`` (an adapter's, or any reader of ``data``'s format) raises
    :class:`~sinr_codecs.errors.StreamError`, and nothing else, for ``data`` cut at a spread of lengths, with
    a byte appended, with one bit flipped at a spread of positions, for no bytes and for random bytes.

    With ``checksum=False`` (a format that has no checksum of its payload, e.g. JPEG) the appended byte and
    the flipped bits may be decoded; they may still raise nothing but ``StreamError``."""
    rng = np.random.default_rng(seed)
    cases: list[tuple[str, bytes, bool]] = [(f"cut to {k} bytes", data[:k], True) for k in _cuts(len(data))]
    cases.append(("with a byte appended", data + b"\0", checksum))
    for pos in sorted({0, 4, len(data) // 2, len(data) - 5, len(data) - 1} & set(range(len(data)))):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        cases.append((f"with a bit of byte {pos} flipped", bytes(flipped), checksum))
    cases.append(("random bytes", rng.integers(0, 256, size=max(len(data), 16), dtype=np.uint8).tobytes(), True))
    for what, bad, must_refuse in cases:
        try:
            decompress(bad)
        except StreamError:
            continue
        except Exception as exc:
            raise AssertionError(f"{name}: a stream {what} raised {type(exc).__name__} ({exc}), not StreamError: "
                                 "check every length and count before using it") from exc
        if must_refuse:
            raise AssertionError(f"{name}: a stream {what} was decoded instead of refused")


def check_adapter(adapter: Any, *, signal: Signal | None = None, signal_size: int | None = None, steps: int = 5,
                  finetune_steps: int = 1, sinr: SINROptions | None = SMALL_SINR, registered: bool = True) -> None:
    """Every check of this module on ``adapter`` (module docstring).

    Parameters
    ----------
    adapter : object
        The adapter, small enough to fit in a moment.
    signal : Signal or None
        The signal to fit (default: :func:`sample_signal` of ``signal_size``).
    steps, finetune_steps : int
        Fitting and fine-tuning steps (few: the checks are about the protocol, not quality).
    sinr : SINROptions or None
        The SINR options of the round trip with SINR (None: no round trip with SINR).
    registered : bool, default True
        Also :func:`check_decode_by_header` (the adapter's distribution must be installed).

    A method without a network (``weights=False``) gets :func:`check_config_round_trip`,
    :func:`check_codec_round_trip`, :func:`check_decode_by_header` and :func:`check_refuses_corruption`
    (``checksum=False``); ``steps``, ``finetune_steps`` and ``sinr`` do not apply to it.
    """
    check_config_round_trip(adapter)
    torch.manual_seed(0)
    signal = signal if signal is not None else sample_signal(adapter, signal_size)
    if not _has_weights(adapter):
        data = check_codec_round_trip(adapter, signal)
        if registered:
            check_decode_by_header(adapter, data)
        check_refuses_corruption(adapter.decode, data, name=f"adapter {adapter.name!r}", checksum=False)
        return
    model = _fit(adapter, signal, steps)
    check_render(adapter, model, signal)
    paths: Sequence[SINROptions | None] = (None,) if sinr is None else (None, sinr)
    for opts in paths:
        data = check_round_trip(adapter, signal, sinr=opts, finetune_steps=finetune_steps, model=model)
        if registered:
            check_decode_by_header(adapter, data)
        check_refuses_corruption(adapter.decompress, data, name=f"adapter {adapter.name!r}")
