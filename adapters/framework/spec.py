"""How an adapter describes itself to the rate–distortion harness (``sinr evaluate``, ``sinr demo``).

The harness knows no method by name. It loads each adapter class from the registry
(:mod:`sinr_codecs.registry`, entry-point group ``sinr_codecs.adapters``) and asks it for an
:class:`AdapterSpec` through the classmethod ``describe()``; everything method-specific comes from there:

- its **options** (:class:`Option`: name, type, default, help, range), which become ``--set METHOD.NAME=V``
  and a ``--METHOD-NAME`` flag on the command line, type-checked with errors that name the method;
- its **rate knob**: the list option whose values are the rate points (one curve point each), and the
  configuration key each value sets (the table's "rate point" column, e.g. ``width=32``);
- its **storage-bits knob** (the configuration key the fair baseline's ``--baseline-bits`` search sets);
- its **signals** (:class:`SignalSource`: the kind, the names of bundled or procedural signals, a loader by
  name and size, what ``--size`` means, and the **rate unit**, :class:`RateUnit`: bits per pixel, per
  sample, per point, or bytes) and its **quality metric** (:class:`Metric`: name, unit, orientation);
- hooks for anything else: how to build the adapter of one rate point (``build``), the fitting schedule
  (``fit_schedule``), checks that need the harness's settings (``validate``), and **preparation**: shared
  state learnt on held-out signals before a rate point is evaluated (``prepare``, e.g. meta-learning).
- whether it stores a **network** at all (``weights``): a classic codec (JPEG, WebP, ...) codes the signal
  itself (:class:`~sinr_adapters.framework.protocol.SignalCodec`), so the harness neither fits nor
  fine-tunes it, runs no path with SINR for it and uses its curve as a reference for the INR paths; and
  whether it can run on this machine (``unavailable``: e.g. a Pillow built without an encoder).

Examples
--------
>>> opt = Option("widths", int, [16, 32], "hidden widths", multiple=True, minimum=1)
>>> opt.parse("8,12", method="mine")
[8, 12]
>>> opt.parse("0", method="mine")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
sinr_adapters.framework.spec.OptionError: mine.widths: 0 is below the minimum 1
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BPP", "BYTES", "AdapterSpec", "Context", "Metric", "Option", "OptionError", "Prepared", "RateUnit",
           "SignalSource", "describe", "image_source", "parse_assignment"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TYPES = (int, float, str, bool)


class OptionError(ValueError):
    """A method option is unknown, of the wrong type or out of range (the message names method and option)."""


@dataclass(frozen=True)
class Option:
    """One option of an adapter, as the harness and the command line see it.

    Parameters
    ----------
    name : str
        Python identifier; ``--set METHOD.NAME=VALUE`` and the flag ``--METHOD-NAME`` (underscores as
        dashes) set it.
    type : {int, float, str, bool}
        Type of the value (of each element when ``multiple``). An int is accepted for a float.
    default : object
        Value when the user sets nothing (a list when ``multiple``; ``None`` only when ``optional``).
    help : str
        One line for ``sinr evaluate --help``.
    multiple : bool, default False
        A non-empty list (comma-separated on the command line).
    optional : bool, default False
        ``None`` is allowed (``none`` on the command line).
    minimum, maximum : float or None
        Inclusive range of numeric values.
    choices : tuple or None
        The allowed values.
    aliases : tuple of str
        Extra command-line flags that set this option, shared by every method that declares the same
        flag (e.g. ``"--widths"`` sets COIN's and INRIC's widths).
    """

    name: str
    type: type
    default: Any
    help: str
    multiple: bool = False
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise OptionError(f"option name {self.name!r} is not a Python identifier")
        if self.type not in _TYPES:
            raise OptionError(f"option {self.name!r}: type must be int, float, str or bool, not {self.type!r}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise OptionError(f"option {self.name!r}: minimum {self.minimum!r} is above maximum {self.maximum!r}")
        try:
            self.check(self.default, method="")
        except OptionError as exc:
            kind = f"a non-empty list of {self.type.__name__}" if self.multiple else self.type.__name__
            raise OptionError(f"option {self.name!r}: its default {self.default!r} does not fit the option ({exc}); "
                              f"give a default that is {kind}{self._range_text()}") from None

    def _range_text(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f">= {self.minimum!r}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum!r}")
        if self.choices is not None:
            parts.append(f"one of {list(self.choices)}")
        return (", each " if self.multiple else ", ") + " and ".join(parts) if parts else ""

    def _where(self, method: str) -> str:
        return f"{method}.{self.name}" if method else self.name

    def flag(self, method: str) -> str:
        """The per-method command-line flag, ``--METHOD-NAME``."""
        return f"--{method}-{self.name.replace('_', '-')}"

    def parse(self, text: str, *, method: str) -> Any:
        """The value written ``text`` (a comma-separated list when ``multiple``), checked."""
        where = self._where(method)
        text = text.strip()
        if self.optional and text.lower() == "none":
            return None
        items = [t.strip() for t in text.split(",")] if self.multiple else [text]
        if self.multiple and (not items or any(not t for t in items)):
            raise OptionError(f"{where}: expected a comma-separated list of {self.type.__name__}, got {text!r}")
        values = [self._parse_one(t, where) for t in items]
        return self.check(values if self.multiple else values[0], method=method)

    def _parse_one(self, text: str, where: str) -> Any:
        if self.type is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise OptionError(f"{where}: expected true or false, got {text!r}")
        try:
            return self.type(text)
        except ValueError:
            kind = {int: "an integer", float: "a number", str: "a string"}[self.type]
            raise OptionError(f"{where}: expected {kind}, got {text!r}") from None

    def check(self, value: Any, *, method: str) -> Any:
        """``value`` type- and range-checked, normalised (a list for ``multiple``, float for float)."""
        where = self._where(method)
        if value is None:
            if self.optional:
                return None
            raise OptionError(f"{where}: a value is required")
        if self.multiple:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
                raise OptionError(f"{where}: expected a non-empty list of {self.type.__name__}, got {value!r}")
            return [self._check_one(v, where) for v in value]
        return self._check_one(value, where)

    def _check_one(self, v: Any, where: str) -> Any:
        t = self.type
        if isinstance(v, np.generic):
            v = v.item()
        ok = (isinstance(v, bool) if t is bool else isinstance(v, str) if t is str
              else isinstance(v, int) and not isinstance(v, bool) if t is int
              else isinstance(v, (int, float)) and not isinstance(v, bool))
        if not ok:
            raise OptionError(f"{where}: expected {t.__name__}, got {v!r} ({type(v).__name__})")
        if t is float:
            v = float(v)
            if not math.isfinite(v):
                raise OptionError(f"{where}: expected a finite number, got {v!r}")
        if self.minimum is not None and v < self.minimum:
            raise OptionError(f"{where}: {v!r} is below the minimum {self.minimum!r}")
        if self.maximum is not None and v > self.maximum:
            raise OptionError(f"{where}: {v!r} is above the maximum {self.maximum!r}")
        if self.choices is not None and v not in self.choices:
            raise OptionError(f"{where}: {v!r} is not one of {list(self.choices)}")
        return v


@dataclass(frozen=True)
class Metric:
    """The quality an adapter is judged by.

    Parameters
    ----------
    name, unit : str
        For tables and plots, e.g. ``"PSNR"``, ``"dB"``.
    higher_is_better : bool, default True
        Orientation for Pareto fronts and savings at equal quality.
    measure : callable or None
        ``measure(decoded, reference) -> float``: the rendering against the signal's reference (by default
        both in [0, 1] of the signal's shape; a signal with its own ``reference``, e.g. a waveform in
        [-1, 1] or a dense occupancy grid, sets what is compared); ``None``: PSNR of the decoded signal
        clamped and rounded to 8 bits (:func:`sinr_adapters.framework.metrics.psnr_8bit`).
    """

    name: str = "PSNR"
    unit: str = "dB"
    higher_is_better: bool = True
    measure: Callable[[np.ndarray, np.ndarray], float] | None = None

    def __call__(self, decoded: np.ndarray, reference: np.ndarray) -> float:
        if self.measure is not None:
            return float(self.measure(decoded, reference))
        import torch

        from .metrics import psnr_8bit

        return psnr_8bit(torch.as_tensor(np.asarray(decoded)), torch.as_tensor(np.asarray(reference)))


@dataclass(frozen=True)
class RateUnit:
    """How the harness turns a stream's length into a rate.

    Parameters
    ----------
    name : str
        Short label for tables, e.g. ``"bpp"``, ``"bits/sample"``, ``"bytes"``.
    label : str
        Axis label for plots, e.g. ``"bits per pixel (bytes written × 8 / pixels)"``.
    per : str or None
        What one signal element is called (``"pixel"``, ``"sample"``, ``"point"``): the rate is
        ``8 * bytes / elements``. ``None``: the rate is the stream's length in bytes.

    Examples
    --------
    >>> RateUnit("bits/sample", "bits per sample", "sample").of(100, 1600)
    0.5
    >>> BYTES.of(100, 1600)
    100.0
    """

    name: str = "bpp"
    label: str = "bits per pixel (bytes written × 8 / pixels)"
    per: str | None = "pixel"

    def of(self, nbytes: int, elements: int) -> float:
        """The rate of a stream of ``nbytes`` bytes coding ``elements`` signal elements."""
        return float(nbytes) if self.per is None else 8.0 * float(nbytes) / max(int(elements), 1)


BPP = RateUnit()
"""Bits per pixel (the image adapters' rate)."""

BYTES = RateUnit("bytes", "stream size (bytes written)", None)
"""The stream's length in bytes (e.g. occupancy fields, where a rate per grid cell depends on the grid
the field is evaluated on, not on what is stored)."""


@dataclass(frozen=True)
class SignalSource:
    """Where an adapter's signals come from, for the harness.

    Parameters
    ----------
    kind : str
        The signal kind (``"image"``, ``"occupancy"``, ``"audio"``, ``"point-cloud"``, ...).
    names : tuple of str
        The signals ``load`` knows (``--signals`` / ``--images`` choose among them).
    load : callable
        ``load(name, size) -> raw signal`` (an array, or any object the adapter's ``signal_from``
        understands); never a download.
    default : tuple of str
        The signals evaluated when none are named.
    held_out : tuple of str
        The default held-out signals a ``prepare`` hook may learn from (never an evaluated one).
    size : int
        The default of ``--size`` for this kind.
    size_help : str
        What ``--size`` means for this kind (e.g. ``"samples"``, ``"grid side"``).
    rate : RateUnit
        The rate unit of tables and plots.
    min_size : int
        The smallest ``--size`` the loader accepts.
    """

    kind: str
    names: tuple[str, ...]
    load: Callable[[str, int], Any]
    default: tuple[str, ...]
    held_out: tuple[str, ...] = ()
    size: int = 64
    size_help: str = "side of the square crop in pixels"
    rate: RateUnit = BPP
    min_size: int = 4

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError(f"signal source {self.kind!r} names no signals")
        unknown = [n for n in (*self.default, *self.held_out) if n not in self.names]
        if unknown or not self.default:
            raise ValueError(f"signal source {self.kind!r}: default and held-out signals must be among its "
                             f"names (unknown: {unknown})")

    def unknown(self, names: Sequence[str]) -> list[str]:
        """The names in ``names`` this source does not know."""
        return [n for n in names if n not in self.names]


@functools.lru_cache(maxsize=1)
def image_source() -> SignalSource:
    """The bundled scikit-image test images (:mod:`sinr_adapters.framework.images`): the source of every adapter
    whose description names no other."""
    from .images import IMAGES, META_IMAGES, load_image

    return SignalSource("image", tuple(IMAGES), load_image, ("astronaut",), META_IMAGES, 64,
                        "side of the square crop in pixels", BPP, 4)


@dataclass(frozen=True)
class Context:
    """The harness's settings that hooks may read.

    Attributes
    ----------
    size : int
        The signals' size in the source's unit (side of the square images in pixels, samples of a
        waveform, side of an occupancy grid, points of a cloud).
    steps : int
        Fitting steps (``--steps``).
    lr : float or None
        Fitting learning rate (``--lr``; None: the adapter's default).
    seed : int
        Network initialisation and dictionary seed.
    device : str
        ``auto``, ``cpu``, ``cuda``.
    progress : bool or None
        Progress bars (None: only on a terminal).
    held_out : tuple of str
        Signals of the method's source that are not evaluated, for learning shared state
        (:meth:`held_out_signals`).
    source : SignalSource or None
        The method's signal source (None: the bundled images).
    with_sinr, without_sinr : bool
        Whether the paths with SINR and without it run (a ``validate`` hook can refuse options that only
        make sense with one of them).
    """

    size: int
    steps: int = 0
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool | None = None
    held_out: tuple[str, ...] = ()
    source: SignalSource | None = None
    with_sinr: bool = True
    without_sinr: bool = True

    def held_out_signals(self) -> list[Any]:
        """The held-out signals at :attr:`size`, as the source's ``load`` returns them (for images: float32
        ``(size, size, 3)`` arrays in [0, 1])."""
        src = self.source or image_source()
        if not self.held_out:
            raise ValueError(f"no held-out {src.kind} signals: every one named for preparation is also evaluated")
        return [src.load(n, self.size) for n in self.held_out]


@dataclass
class Prepared:
    """What a ``prepare`` hook returns.

    Attributes
    ----------
    adapter : object
        The adapter to evaluate (holding the shared state).
    record : dict
        JSON-safe facts stored in each result's configuration (e.g. the held-out images, steps, seconds).
    save : callable or None
        ``save(path)`` writes the shared state the streams need to decode (when it was learnt here);
        the harness calls it with ``<method>_<knob><value>_<shared_tag>.npz`` next to saved streams and
        records the time the hook took as ``prepare_seconds``.
    message : str or None
        What was done, for the harness's log (it appends the seconds taken).
    """

    adapter: Any
    record: dict[str, Any] = field(default_factory=dict)
    save: Callable[[Any], None] | None = None
    message: str | None = None


def _default_build(cls: type, options: Mapping[str, Any], value: Any, ctx: Context, spec: AdapterSpec) -> Any:
    kwargs = {k: v for k, v in options.items() if k != spec.rate}
    return cls(**kwargs, **({} if spec.rate is None else {spec.rate_key: value}))


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter's description for the harness (returned by the adapter class's ``describe()``).

    Parameters
    ----------
    summary : str
        One line naming the method (the title of its option group in ``--help``).
    options : tuple of Option
        The method's own options.
    rate : str or None
        The ``multiple`` option whose values are the rate points (None: one point, the options alone).
    rate_key : str
        The configuration key each rate value sets (the point label ``rate_key=value``).
    bits : str or None
        The configuration key of the method's storage bits, searched by ``--baseline-bits`` (None: the
        method has no such knob; the baseline search is refused for it).
    signal : str, default "image"
        The signal kind the adapter encodes (``source.kind`` when a source is given).
    source : SignalSource or None
        Where the harness gets the signals (None: the bundled images, for ``signal="image"``). A raw
        signal becomes a :class:`~sinr_adapters.framework.signals.Signal` through the adapter's
        ``signal_from_image(raw, name=)`` for images and ``signal_from(raw, name=)`` for any other kind.
        A signal may carry ``reference`` (the array the metric compares the rendering with; default its
        values in [0, 1] of its shape) and ``elements`` (the count the rate divides by; default the
        product of its grid shape).
    metric : Metric
        The quality measure (default: PSNR of the 8-bit decoded signal, higher is better).
    render : callable or None
        ``render(adapter, model, signal) -> array`` compared with the signal's reference (default
        ``adapter.render(model, signal.shape)``; decoding: ``adapter.decode(stream)``). For signals whose
        decoding needs side information the signal holds, e.g. the positions of a point cloud whose
        attributes were coded.
    build : callable or None
        ``build(cls, options, value, ctx) -> adapter`` for one rate point (default:
        ``cls(**options_without_rate, **{rate_key: value})``).
    points : callable or None
        ``points(cls, options, ctx) -> [(value, adapter), ...]`` replacing the sweep over ``rate`` (e.g.
        a pretrained base file fixes the only point).
    fit_schedule : callable or None
        ``fit_schedule(adapter, steps, lr) -> (steps, lr)``: the arguments of ``adapter.fit`` (default:
        the harness's ``--steps`` and ``--lr``).
    validate : callable or None
        ``validate(options, ctx)`` raises ValueError for combinations the option ranges cannot express
        (``ctx`` says, among others, which paths run: :attr:`Context.with_sinr`).
    prepare : callable or None
        ``prepare(adapter, options, ctx) -> Prepared``: called once per rate point before its images;
        learns shared state on ``ctx.held_out_signals()`` only (never an evaluated signal).
    uses_held_out : callable or None
        ``uses_held_out(options) -> bool``: ``prepare`` will train on held-out signals with these options.
    shared_tag : str
        File-name tag of the shared state ``Prepared.save`` writes (``base``, ``init``).
    rate_aware : bool, default True
        Whether ``--rate-aware`` (:mod:`sinr_adapters.rate_coding.rate_aware`: the mean squared error, decoding by the
        adapter's ``render``) applies to the method; False for a method with its own loss or decoding.
    weights : bool, default True
        Whether the method stores a network. False: it codes the signal itself and implements
        :class:`~sinr_adapters.framework.protocol.SignalCodec` (``encode``/``decode``); the harness does not fit
        or fine-tune it, runs only its own path (no path with SINR, no ``--baseline-bits`` search, no rate-aware
        path: ``bits`` must be None and ``rate_aware`` is set to False) and compares every INR path with the
        curves of such methods (the classic codecs, :mod:`sinr_adapters.harness.anchors`).
    unavailable : callable or None
        ``unavailable() -> str | None``: None when the method can run on this machine, else why not and what
        to install (the harness skips the method with that message; None: always available).
    suffix : str, default ".sia"
        File-name suffix of the streams ``--save-streams`` writes (a classic codec's own, e.g. ``".jpg"``).
    """

    summary: str
    options: tuple[Option, ...] = ()
    rate: str | None = None
    rate_key: str = "point"
    bits: str | None = None
    signal: str = "image"
    metric: Metric = Metric()
    source: SignalSource | None = None
    render: Callable[[Any, Any, Any], np.ndarray] | None = None
    build: Callable[..., Any] | None = None
    points: Callable[..., list[tuple[Any, Any]]] | None = None
    fit_schedule: Callable[[Any, int, float | None], tuple[int | None, float | None]] | None = None
    validate: Callable[[Mapping[str, Any], Context], None] | None = None
    prepare: Callable[[Any, Mapping[str, Any], Context], Prepared] | None = None
    uses_held_out: Callable[[Mapping[str, Any]], bool] | None = None
    shared_tag: str = "shared"
    rate_aware: bool = True
    weights: bool = True
    unavailable: Callable[[], str | None] | None = None
    suffix: str = ".sia"

    def __post_init__(self) -> None:
        if not all(isinstance(o, Option) for o in self.options):
            raise ValueError("options must be a tuple of sinr_adapters.framework.Option")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate option names in {names}")
        if self.rate is not None:
            opt = self.option(self.rate)
            if opt is None or not opt.multiple:
                raise ValueError(f"the rate knob {self.rate!r} must name a 'multiple' option")
        if self.source is not None and self.signal not in ("image", self.source.kind):
            raise ValueError(f"signal {self.signal!r} disagrees with its source's kind {self.source.kind!r}")
        if self.source is not None and self.signal != self.source.kind:
            object.__setattr__(self, "signal", self.source.kind)
        if not self.weights:
            stray = [n for n in ("bits", "prepare", "fit_schedule") if getattr(self, n) is not None]
            if stray:
                raise ValueError(f"a method without a network (weights=False) has nothing to fit or store bits of: "
                                 f"leave {', '.join(stray)} unset")
            object.__setattr__(self, "rate_aware", False)
        if not self.suffix.startswith(".") or not self.suffix[1:].isalnum():
            raise ValueError(f"suffix must be a dot and letters or digits (e.g. '.jpg'), got {self.suffix!r}")

    def signal_source(self) -> SignalSource:
        """Where the harness gets this adapter's signals (:class:`SignalSource`).

        Raises
        ------
        ValueError
            A kind other than ``"image"`` without a source.
        """
        if self.source is not None:
            return self.source
        if self.signal == "image":
            return image_source()
        raise ValueError(f"the adapter encodes {self.signal!r} signals but describes no signal source "
                         "(AdapterSpec(source=SignalSource(...)))")

    def make_signal(self, adapter: Any, raw: Any, name: str) -> Any:
        """The adapter's :class:`~sinr_adapters.framework.signals.Signal` of one raw signal from its source."""
        if self.signal_source().kind == "image":
            return adapter.signal_from_image(raw, name=name)
        return adapter.signal_from(raw, name=name)

    def option(self, name: str) -> Option | None:
        """The option called ``name`` (None if there is none)."""
        return next((o for o in self.options if o.name == name), None)

    def defaults(self) -> dict[str, Any]:
        """Every option's default (lists copied)."""
        return {o.name: list(o.default) if o.multiple and o.default is not None else o.default
                for o in self.options}

    def resolve(self, given: Mapping[str, Any], *, method: str) -> dict[str, Any]:
        """Defaults overridden by ``given`` (Python values; :meth:`Option.parse` reads text), each value
        checked; an unknown name raises :class:`OptionError`."""
        out = self.defaults()
        for name, value in given.items():
            opt = self.option(name)
            if opt is None:
                known = ", ".join(o.name for o in self.options) or "none"
                raise OptionError(f"{method} has no option {name!r} (its options: {known})")
            out[name] = opt.check(value, method=method)
        return out

    def rate_points(self, cls: type, options: Mapping[str, Any], ctx: Context) -> list[tuple[Any, Any]]:
        """``(value, adapter)`` per rate point (shared state, if any, is learnt later by ``prepare``)."""
        if self.points is not None:
            return list(self.points(cls, options, ctx))
        values = [None] if self.rate is None else options[self.rate]
        if self.build is not None:
            return [(v, self.build(cls, options, v, ctx)) for v in values]
        return [(v, _default_build(cls, options, v, ctx, self)) for v in values]

    def needs_held_out(self, options: Mapping[str, Any]) -> bool:
        return self.prepare is not None and self.uses_held_out is not None and bool(self.uses_held_out(options))


def describe(cls: type, name: str | None = None) -> AdapterSpec:
    """The :class:`AdapterSpec` of an adapter class (its ``describe()`` classmethod), checked: every
    option's default fits the option (:class:`Option`), the rate knob names a list option.

    Raises
    ------
    ValueError
        The class does not describe itself, its ``describe()`` raises, or returns something other than an
        :class:`AdapterSpec`; the message names the adapter and what to fix.
    """
    name = name or getattr(cls, "name", cls.__name__)
    where = f"adapter {name!r} ({cls.__module__}.{cls.__qualname__})"
    fn = getattr(cls, "describe", None)
    if not callable(fn):
        raise ValueError(f"{where} does not describe itself to the harness: give the class a classmethod "
                         "describe() returning a sinr_adapters.framework.AdapterSpec (docs/writing-an-adapter.md)")
    try:
        spec = fn()
    except Exception as exc:  # a plugin's bug, named as such
        raise ValueError(f"{where}: describe() failed: {type(exc).__name__}: {exc}; fix the adapter's describe() "
                         "(docs/writing-an-adapter.md)") from exc
    if not isinstance(spec, AdapterSpec):
        raise ValueError(f"{where}: describe() returned a {type(spec).__name__}, not an AdapterSpec")
    return spec


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"METHOD.NAME=VALUE"`` -> ``(method, name, value)``; a malformed one raises :class:`OptionError`."""
    key, sep, value = text.partition("=")
    method, dot, name = key.strip().rpartition(".")
    if not sep or not dot or not method or not name:
        raise OptionError(f"--set expects METHOD.OPTION=VALUE (e.g. coin.layers=3), got {text!r}")
    return method, name.strip(), value
