"""Discovery of INR-method adapters through the entry-point group ``sinr_codecs.adapters``.

An adapter wraps one implicit-neural-representation method (COIN, INRIC, ...) end to end; see
``docs/adapters.md``. Adapters are never imported by the core: a distribution declares them in its
``pyproject.toml``::

    [project.entry-points."sinr_codecs.adapters"]
    mymethod = "my_package.my_module:MyAdapter"

and this module finds them with :mod:`importlib.metadata` alone. Nothing is imported until
:func:`load_adapter` is called for one name, so a broken third-party plugin cannot break discovery of
the others.

Examples
--------
>>> from sinr_codecs.registry import GROUP, available_adapters
>>> GROUP
'sinr_codecs.adapters'
>>> isinstance(available_adapters(), dict)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import metadata

__all__ = [
    "GROUP",
    "AdapterInfo",
    "AdapterLoadError",
    "UnknownAdapterError",
    "adapter_info",
    "adapter_origin",
    "available_adapters",
    "load_adapter",
]

GROUP: str = "sinr_codecs.adapters"
"""The entry-point group adapters are declared under."""


class UnknownAdapterError(KeyError):
    """No adapter of that name is installed (a :class:`KeyError`, hence also a :class:`LookupError`)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message, quotes and all
        return str(self.args[0]) if self.args else ""


class AdapterLoadError(ImportError):
    """An adapter is declared but importing it failed, or it does not name a class."""


@dataclass(frozen=True)
class AdapterInfo:
    """One declared adapter, as ``sinr adapters`` lists it (no import happens)."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=GROUP))


def _dist_label(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution"
    return f"distribution {dist.metadata['Name']!r} {dist.version}"


def adapter_origin(name: str) -> str:
    """Where the adapter declared as ``name`` comes from, for messages: its target and distribution.

    Returns
    -------
    str
        ``"'pkg.module:Class' from distribution 'pkg' 1.0"``, or ``""`` when no adapter of that name is
        declared. Nothing is imported.
    """
    ep = available_adapters().get(name)
    return "" if ep is None else f"{ep.value!r} from {_dist_label(ep)}"


def available_adapters() -> dict[str, metadata.EntryPoint]:
    """Every adapter declared in the entry-point group :data:`GROUP`, by name.

    Returns
    -------
    dict of str to importlib.metadata.EntryPoint
        Sorted by name. Nothing is imported. When two distributions declare the same name with
        different targets, the first one found wins and a :class:`RuntimeWarning` names both.
    """
    found: dict[str, metadata.EntryPoint] = {}
    for ep in _entry_points():
        prior = found.get(ep.name)
        if prior is None:
            found[ep.name] = ep
        elif prior.value != ep.value:
            warnings.warn(
                f"adapter {ep.name!r} is declared twice: {prior.value!r} ({_dist_label(prior)}) and "
                f"{ep.value!r} ({_dist_label(ep)}); using the first. Uninstall one of them to "
                "silence this warning.",
                RuntimeWarning,
                stacklevel=2,
            )
    return dict(sorted(found.items()))


def adapter_info() -> list[AdapterInfo]:
    """The declared adapters with the distribution (name, version) that declares each; no import."""
    out = []
    for name, ep in available_adapters().items():
        dist = getattr(ep, "dist", None)
        out.append(AdapterInfo(
            name=name,
            value=ep.value,
            distribution=None if dist is None else dist.metadata["Name"],
            version=None if dist is None else dist.version,
        ))
    return out


def load_adapter(name: str) -> type:
    """Import and return the adapter class declared as ``name``.

    Parameters
    ----------
    name : str
        The entry-point name, e.g. ``"coin"``.

    Returns
    -------
    type
        The adapter class (instantiate it with the method's configuration).

    Raises
    ------
    UnknownAdapterError
        No adapter of that name is declared; the message lists the known names.
    AdapterLoadError
        The adapter is declared but importing it raised, the target is not a class, or the class's
        ``name`` attribute is not its entry-point name (streams record that name and decoding finds the
        adapter by it); the message names the plugin, the distribution that declares it and the cause
        (chained as ``__cause__``).
    """
    adapters = available_adapters()
    ep = adapters.get(name)
    if ep is None:
        known = ", ".join(adapters) or "none"
        raise UnknownAdapterError(
            f"no INR adapter named {name!r} is installed (known: {known}). Adapters are found through "
            f"the entry-point group {GROUP!r}; install the distribution that provides {name!r}."
        )
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must not look like a bug of ours
        raise AdapterLoadError(
            f"INR adapter plugin {name!r} ({ep.value!r}, from {_dist_label(ep)}) failed to load: "
            f"{type(exc).__name__}: {exc}. Fix or reinstall that distribution."
        ) from exc
    if not isinstance(obj, type):
        raise AdapterLoadError(
            f"INR adapter plugin {name!r} ({ep.value!r}, from {_dist_label(ep)}) does not name a class "
            f"but a {type(obj).__name__}; the entry point must be 'module:ClassName'."
        )
    own = getattr(obj, "name", name)
    if own != name:
        raise AdapterLoadError(
            f"INR adapter plugin {name!r} ({ep.value!r}, from {_dist_label(ep)}): its class attribute name is "
            f"{own!r}, not its entry-point name {name!r}; set name = {name!r} in the class (streams record the "
            "name, and decoding finds the adapter by it)."
        )
    return obj
