"""Exception types raised by sinr-codecs.

Every problem with a stream's bytes raises :class:`StreamError`; every refused input value raises
:class:`NonFiniteError`. Both subclass :class:`ValueError`, so ``except ValueError`` catches them.
"""

from __future__ import annotations

__all__ = ["StreamError", "NonFiniteError"]


class StreamError(ValueError):
    """A SINR stream is corrupt, truncated, of an unknown version, or exceeds a safety limit."""


class NonFiniteError(ValueError):
    """The input holds NaN or infinite values, which SINR does not encode (store such tensors losslessly)."""
