"""How an adapter describes itself to the rate–distortion harness (``sinr evaluate``, ``sinr demo``).

The harness knows no method by name. It loads each adapter class from the registry
(:mod:`sinr_codecs.registry`, entry-point group ``sinr_codecs.adapters``) and asks it for an
:class:`AdapterSpec` through the classmethod ``describe()``; everything method-specific comes from there:

- its **options** (:class:`Option`: name, type, default, help, range), which become ``--set METHOD.NAME=V``
  and a ``--METHOD-NAME`` flag on the command line, type-checked with errors that name the method;
- its **rate knob**: the list option whose values are the rate points (one curve point each), and the
  configuration key each value sets (the table's "rate point" column, e.g. ``width=32``);
- its **storage-bits knob** (the configuration key the fair baseline's ``--baseline-bits`` search sets);
- its **signal kind** and **quality metric** (:class:`Metric`);
- hooks for anything else: how to build the adapter of one rate point (``build``), the fitting schedule
  (``fit_schedule``), checks that need the harness's settings (``validate``), and **preparation**: shared
  state learnt on held-out signals before a rate point is evaluated (``prepare``, e.g. meta-learning).

Examples
--------
>>> opt = Option("widths", int, [16, 32], "hidden widths", multiple=True, minimum=1)
>>> opt.parse("8,12", method="mine")
[8, 12]
>>> opt.parse("0", method="mine")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
sinr_adapters.spec.OptionError: mine.widths: 0 is below the minimum 1
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AdapterSpec", "Context", "Metric", "Option", "OptionError", "Prepared", "describe",
           "parse_assignment"]

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
    choices: tuple | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"option name {self.name!r} is not a Python identifier")
        if self.type not in _TYPES:
            raise ValueError(f"option {self.name!r}: type must be int, float, str or bool, not {self.type!r}")

    def flag(self, method: str) -> str:
        """The per-method command-line flag, ``--METHOD-NAME``."""
        return f"--{method}-{self.name.replace('_', '-')}"

    def parse(self, text: str, *, method: str) -> Any:
        """The value written ``text`` (a comma-separated list when ``multiple``), checked."""
        where = f"{method}.{self.name}"
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
        where = f"{method}.{self.name}"
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
        ``measure(decoded, reference) -> float`` on arrays in [0, 1] of the signal's shape; ``None``: PSNR
        of the decoded signal clamped and rounded to 8 bits (:func:`sinr_adapters.nets.psnr_8bit`).
    """

    name: str = "PSNR"
    unit: str = "dB"
    higher_is_better: bool = True
    measure: Callable[[np.ndarray, np.ndarray], float] | None = None

    def __call__(self, decoded: np.ndarray, reference: np.ndarray) -> float:
        if self.measure is not None:
            return float(self.measure(decoded, reference))
        import torch

        from .nets import psnr_8bit

        return psnr_8bit(torch.as_tensor(np.asarray(decoded)), torch.as_tensor(np.asarray(reference)))


@dataclass(frozen=True)
class Context:
    """The harness's settings that hooks may read.

    Attributes
    ----------
    size : int
        Side of the square test images in pixels.
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
        Bundled images that are not evaluated, for learning shared state (:meth:`held_out_images`).
    """

    size: int
    steps: int = 0
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool | None = None
    held_out: tuple[str, ...] = ()

    def held_out_images(self) -> list[np.ndarray]:
        """The held-out images at :attr:`size`, float32 ``(size, size, 3)`` in [0, 1]."""
        from .images import load_image

        if not self.held_out:
            raise ValueError("no held-out images: every bundled image in meta_images is also evaluated")
        return [load_image(n, self.size) for n in self.held_out]


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
        The signal kind the adapter encodes (the harness evaluates ``"image"`` adapters on bundled images).
    metric : Metric
        The quality measure (default: PSNR of the 8-bit decoded signal, higher is better).
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
        ``validate(options, ctx)`` raises ValueError for combinations the option ranges cannot express.
    prepare : callable or None
        ``prepare(adapter, options, ctx) -> Prepared``: called once per rate point before its images;
        learns shared state on ``ctx.held_out_images()`` only (never an evaluated image).
    uses_held_out : callable or None
        ``uses_held_out(options) -> bool``: ``prepare`` will train on held-out images with these options.
    shared_tag : str
        File-name tag of the shared state ``Prepared.save`` writes (``base``, ``init``).
    """

    summary: str
    options: tuple[Option, ...] = ()
    rate: str | None = None
    rate_key: str = "point"
    bits: str | None = None
    signal: str = "image"
    metric: Metric = Metric()
    build: Callable[..., Any] | None = None
    points: Callable[..., list[tuple[Any, Any]]] | None = None
    fit_schedule: Callable[[Any, int, float | None], tuple[int | None, float | None]] | None = None
    validate: Callable[[Mapping[str, Any], Context], None] | None = None
    prepare: Callable[[Any, Mapping[str, Any], Context], Prepared] | None = None
    uses_held_out: Callable[[Mapping[str, Any]], bool] | None = None
    shared_tag: str = "shared"

    def __post_init__(self) -> None:
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate option names in {names}")
        if self.rate is not None:
            opt = self.option(self.rate)
            if opt is None or not opt.multiple:
                raise ValueError(f"the rate knob {self.rate!r} must name a 'multiple' option")

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
    """The :class:`AdapterSpec` of an adapter class (its ``describe()`` classmethod).

    Raises
    ------
    ValueError
        The class does not describe itself, or its description is not an :class:`AdapterSpec`.
    """
    name = name or getattr(cls, "name", cls.__name__)
    fn = getattr(cls, "describe", None)
    if not callable(fn):
        raise ValueError(f"adapter {name!r} ({cls.__module__}.{cls.__qualname__}) does not describe itself to "
                         "the harness: give the class a classmethod describe() returning a "
                         "sinr_adapters.spec.AdapterSpec (docs/writing-an-adapter.md)")
    spec = fn()
    if not isinstance(spec, AdapterSpec):
        raise ValueError(f"adapter {name!r}: describe() returned a {type(spec).__name__}, not an AdapterSpec")
    return spec


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"METHOD.NAME=VALUE"`` -> ``(method, name, value)``; a malformed one raises :class:`OptionError`."""
    key, sep, value = text.partition("=")
    method, dot, name = key.strip().rpartition(".")
    if not sep or not dot or not method or not name:
        raise OptionError(f"--set expects METHOD.OPTION=VALUE (e.g. coin.layers=3), got {text!r}")
    return method, name.strip(), value
