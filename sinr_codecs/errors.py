"""Exception types raised by sinr-codecs.

Every problem with a stream's bytes raises :class:`StreamError`; every refused input value raises
:class:`NonFiniteError`; a model file or compressed weights store that cannot be read or written raises
:class:`WeightsError`. All subclass :class:`ValueError`, so ``except ValueError`` catches them.
"""

from __future__ import annotations

__all__ = ["StreamError", "NonFiniteError", "WeightsError"]


class StreamError(ValueError):
    """A SINR stream is corrupt, truncated, of an unknown version, or exceeds a safety limit."""


class NonFiniteError(ValueError):
    """The input holds NaN or infinite values, which SINR does not encode (store such tensors losslessly)."""


class WeightsError(ValueError):
    """A model file or compressed store cannot be read or written (the message says why and what to do)."""
