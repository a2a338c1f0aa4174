"""Unsigned LEB128 varints and bounds-checked reading of a byte stream.

:func:`varint` writes one integer; :class:`Cursor` reads bytes and varints back, and every failure is a
:class:`~sinr_codecs.errors.StreamError` that names what was being read."""

from __future__ import annotations

from .errors import StreamError

__all__ = ["Cursor", "varint"]


def varint(n: int) -> bytes:
    """``n >= 0`` as an unsigned LEB128 varint: 7 bits a byte, low bits first, 1 byte below 128."""
    if n < 0:
        raise ValueError(f"varints are unsigned, got {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


class Cursor:
    """A read position in ``data``.

    Parameters
    ----------
    data : bytes-like
        The stream (not copied).
    name : str, default "stream"
        How messages call the stream (``"rANS stream"``, ...).
    minimal : bool, default False
        Refuse non-minimal varint encodings (a trailing ``0x00`` continuation byte).
    """

    def __init__(self, data: bytes | bytearray | memoryview, *, name: str = "stream", minimal: bool = False):
        self.data = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
        self.pos = 0
        self.name = name
        self.minimal = minimal

    @property
    def left(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def u8(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise StreamError(f"{self.name} truncated while reading {what}")
        v = self.data[self.pos]
        self.pos += 1
        return v

    def varint(self, what: str, limit: int) -> int:
        """One unsigned LEB128 integer, at most ``limit`` (at most 10 bytes, so a 64-bit seed fits)."""
        n = shift = 0
        while True:
            b = self.u8(what)
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if self.minimal and b == 0 and shift > 7:
                    raise StreamError(f"{self.name}: non-minimal integer encoding in {what}")
                break
            if shift > 63:
                raise StreamError(f"{self.name}: malformed integer in {what}")
        if n > limit:
            raise StreamError(f"{self.name}: {what} = {n} exceeds the limit {limit}")
        return n

    def take(self, n: int, what: str) -> memoryview:
        if n > self.left:
            raise StreamError(f"{self.name} truncated: {what} needs {n} bytes, {self.left} remain")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out
