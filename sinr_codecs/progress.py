"""Progress bars for long work, shared by the command line, the model tools and the adapters.

A thin wrapper around :mod:`tqdm`: bars always go to standard error (standard output stays clean for
results, e.g. ``sinr info --json``), and they are switched off when standard error is not a terminal
(logs, pipes, CI, tests) or when the caller asks for quiet operation.

Examples
--------
>>> with bar(total=3, desc="tensors", quiet=True) as b:
...     for _ in range(3):
...         b.update()
>>> list(bar(range(2), quiet=True))
[0, 1]
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["bar", "enabled"]

T = TypeVar("T")


def enabled(quiet: bool = False) -> bool:
    """Whether bars are drawn: not ``quiet`` and standard error is an interactive terminal."""
    if quiet:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


def bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | float | None = None,
    desc: str | None = None,
    unit: str = "it",
    quiet: bool = False,
    leave: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A tqdm progress bar on standard error, disabled when :func:`enabled` says so.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over (as ``tqdm(iterable)``); leave out and call ``update`` for manual bars.
    total : int or float, optional
        Number of steps (units of ``unit``); taken from ``len(iterable)`` when possible.
    desc : str, optional
        Label shown before the bar.
    unit : str, default "it"
        Name of one step.
    quiet : bool, default False
        Never draw (a disabled bar still iterates and accepts ``update``/``set_postfix_str``).
    leave : bool, default False
        Keep the finished bar on screen.
    **kwargs
        Passed to :class:`tqdm.tqdm` (e.g. ``unit_scale=True``, ``position=1``).

    Returns
    -------
    tqdm.tqdm
        Usable as an iterator and as a context manager.
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=sys.stderr,
        disable=not enabled(quiet),
        dynamic_ncols=True,
        **kwargs,
    )
