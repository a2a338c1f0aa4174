"""Safety limits that bound what encoding and decoding may allocate.

A SINR stream is read from bytes that someone else wrote (a Zarr store, a file from the internet), and a
codec configuration may come from a store's metadata. Two limits keep a tiny hostile input from costing
gigabytes; both are checked *before* anything is allocated:

``max_output_bytes`` (default 1 GiB, :data:`DEFAULT_MAX_OUTPUT_BYTES`)
    The largest decoded array one stream may declare (elements x itemsize). A stream declaring more is
    refused with :class:`~sinr_codecs.errors.StreamError`. Peak memory while decoding stays within a
    small constant times the declared output plus one dictionary (docs/security.md gives the measured
    constant).
``max_dictionary_entries`` (default 2**25, :data:`DEFAULT_MAX_DICTIONARY_ENTRIES`)
    The largest dictionary ``k1 * k2`` (entries) the encoder builds or a stream may refer to: 2**25
    entries are 128 MiB in float32 and 256 MiB in float64, regenerated for every chunk coded with it.
    The ``"auto"`` layout cuts rows too long for this limit into blocks; an explicit layout or
    ``dictionary_size`` that needs more raises ``ValueError`` when encoding, and a stream that needs more
    raises :class:`~sinr_codecs.errors.StreamError` when decoding.

Raise a limit for the whole process with :func:`set_limits`, for a block of code with
:func:`limits_set_to`, or from the environment (read once, at import) with ``SINR_MAX_OUTPUT_BYTES`` and
``SINR_MAX_DICTIONARY_ENTRIES``. The limits are process-wide (not per thread), because Zarr decodes
chunks in worker threads. A stream that was written under a raised limit needs the same raised limit to
be read back.

Examples
--------
>>> from sinr_codecs.limits import get_limits, limits_set_to
>>> get_limits().max_dictionary_entries
33554432
>>> with limits_set_to(max_output_bytes=1 << 20):
...     get_limits().max_output_bytes
1048576
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

__all__ = ["DEFAULT_MAX_DICTIONARY_ENTRIES", "DEFAULT_MAX_OUTPUT_BYTES", "Limits", "get_limits", "limits_set_to",
           "set_limits"]

DEFAULT_MAX_OUTPUT_BYTES = 1 << 30
"""Default largest decoded array per stream, in bytes (1 GiB)."""
DEFAULT_MAX_DICTIONARY_ENTRIES = 1 << 25
"""Default largest dictionary, ``k1 * k2`` entries (128 MiB as float32)."""

_ENV = {"max_output_bytes": "SINR_MAX_OUTPUT_BYTES", "max_dictionary_entries": "SINR_MAX_DICTIONARY_ENTRIES"}


@dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring).

    Attributes
    ----------
    max_output_bytes : int
        Largest decoded array one stream may declare, in bytes.
    max_dictionary_entries : int
        Largest dictionary ``k1 * k2``, in entries.
    """

    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_dictionary_entries: int = DEFAULT_MAX_DICTIONARY_ENTRIES

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {v!r}")


def _from_environment() -> Limits:
    values = {}
    for name, var in _ENV.items():
        raw = os.environ.get(var)
        if raw is None or not raw.strip():
            continue
        try:
            values[name] = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"environment variable {var}={raw!r} must be a positive integer") from None
    return Limits(**values)


_lock = threading.Lock()
_current = _from_environment()


def get_limits() -> Limits:
    """The limits in force now."""
    return _current


def set_limits(**changes: int) -> Limits:
    """Change limits for the whole process; returns the limits that were in force before.

    Parameters
    ----------
    **changes
        ``max_output_bytes`` and/or ``max_dictionary_entries`` (positive integers).

    Raises
    ------
    ValueError
        For an unknown name or a value that is not a positive integer.
    """
    global _current
    unknown = sorted(set(changes) - {f.name for f in fields(Limits)})
    if unknown:
        raise ValueError(f"unknown limit(s) {unknown}; known: {[f.name for f in fields(Limits)]}")
    with _lock:
        before = _current
        _current = replace(_current, **changes)
    return before


@contextmanager
def limits_set_to(**changes: int) -> Iterator[Limits]:
    """Context manager: :func:`set_limits` for the block, then restore the previous limits."""
    global _current
    before = set_limits(**changes)
    try:
        yield _current
    finally:
        with _lock:
            _current = before
