"""Loading adapters for the harness: every plugin is checked before it runs, and its mistakes are named.

The registry (:mod:`sinr_codecs.registry`) finds adapter classes by entry-point name and imports them.
Before the harness uses one, :func:`method_spec` holds it to the protocol: its class ``name`` is its
entry-point name (streams record the name and decoding finds the adapter by it), and its description
(``describe()``) is an :class:`~sinr_adapters.framework.spec.AdapterSpec` whose every option's default fits
the option. :func:`check_rate_point` then checks an adapter the description builds: its ``config()``
rebuilds it (a decoder reconstructs the adapter from the configuration a stream holds), and the storage-bits
knob is one of its configuration keys or constructor arguments. A plugin that fails a check raises
:class:`PluginError`, naming the plugin, the distribution that declares it and what to fix; :func:`installed`
lists the plugins that pass and the errors of those that do not, so one broken plugin never hides the others.

Examples
--------
>>> ok, broken = installed()
>>> "coin" in ok and ok["coin"].rate_key
'width'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from sinr_codecs.registry import AdapterLoadError, UnknownAdapterError, adapter_origin, available_adapters, load_adapter

from ..framework.spec import AdapterSpec, describe

__all__ = ["PluginError", "check_rate_point", "installed", "method_spec", "unavailable"]


class PluginError(ValueError):
    """An installed adapter breaks the protocol; the message names the plugin and what to fix."""


def _origin(method: str) -> str:
    where = adapter_origin(method)
    return f" ({where})" if where else ""


@functools.lru_cache(maxsize=64)
def _spec(cls: type, method: str) -> AdapterSpec:
    if not hasattr(cls, "name"):
        raise PluginError(f"adapter plugin {method!r}{_origin(method)}: its class has no attribute name; set "
                          f"name = {method!r} in the class (streams record the name, and decoding finds the "
                          "adapter by it)")
    try:
        return describe(cls, method)
    except ValueError as exc:
        raise PluginError(f"adapter plugin {method!r}{_origin(method)}: {exc}") from exc


def method_spec(method: str) -> tuple[type, AdapterSpec]:
    """The adapter class installed as ``method`` and its checked description (module docstring).

    Raises
    ------
    ValueError
        No adapter of that name is installed.
    PluginError
        It fails to import, its ``name`` is not ``method``, or its description is broken.
    """
    try:
        cls = load_adapter(method)
    except UnknownAdapterError as exc:
        raise ValueError(f"unknown method {method!r}: {exc}") from exc
    except AdapterLoadError as exc:  # it fails to import, names no class, or its name is not method
        raise PluginError(str(exc)) from exc
    return cls, _spec(cls, method)


def installed() -> tuple[dict[str, AdapterSpec], dict[str, str]]:
    """Every installed adapter that passes :func:`method_spec`, by name, and the error of every one that
    does not (by name): a broken plugin is left out of the harness's options and reported, the others run."""
    ok: dict[str, AdapterSpec] = {}
    broken: dict[str, str] = {}
    for name in available_adapters():
        try:
            ok[name] = method_spec(name)[1]
        except (ValueError, ImportError) as exc:
            broken[name] = str(exc)
    return ok, broken


def unavailable(method: str) -> str | None:
    """Why the installed method ``method`` cannot run on this machine (its description's ``unavailable``
    hook: e.g. a Pillow built without an encoder), or None when it can. A hook that raises is reported as
    the reason, never raised: the harness skips the method and runs the others."""
    _, spec = method_spec(method)
    if spec.unavailable is None:
        return None
    try:
        why = spec.unavailable()
    except Exception as exc:  # a plugin's bug, named as such
        return f"its availability check failed ({type(exc).__name__}: {exc}){_origin(method)}"
    return None if why is None else str(why)


def check_rate_point(method: str, spec: AdapterSpec, adapter: Any) -> None:
    """Refuse (:class:`PluginError`) an adapter whose configuration does not rebuild it.

    ``adapter.with_config(adapter.config())`` must succeed and give the same configuration (what decoding a
    stream does), and the description's storage-bits knob (``spec.bits``) must be a configuration key or a
    constructor argument.
    """
    where = f"adapter plugin {method!r}{_origin(method)}"
    config = adapter.config()
    if not isinstance(config, Mapping):
        raise PluginError(f"{where}: config() returned a {type(config).__name__}, not a dict of its constructor's "
                          "arguments")
    try:
        again = adapter.with_config(dict(config)).config()
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{where}: its config() does not rebuild the adapter ({type(exc).__name__}: {exc}); "
                          f"config() must return the constructor's arguments by name (a stream's decoder calls "
                          f"{type(adapter).__name__}(**config)), keys {sorted(config)}") from exc
    if dict(again) != dict(config):
        raise PluginError(f"{where}: {type(adapter).__name__}(**config()) has another configuration ({dict(again)}, "
                          f"not {dict(config)}); config() must return the constructor's arguments unchanged")
    if spec.bits is not None and spec.bits not in config and not _takes(type(adapter), spec.bits):
        raise PluginError(f"{where}: describe() names the storage-bits knob {spec.bits!r}, which is neither a key of "
                          f"config() ({sorted(config)}) nor a constructor argument; name one, or bits=None")


def _takes(cls: type, name: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
