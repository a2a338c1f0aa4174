"""The adapter stream container (``SIA1``): header, sections, checksum, the bounds-checked reader, and
the checks a stream's header meets against the adapter that reads it.

Every adapter stream starts and ends the same way; what lies between is the method's (the shared
records of :mod:`sinr_adapters.framework.records`, or a method's own, as COIN++'s and SHACIRA's)::

    magic[4] "SIA1" | varint n, method name[n] | varint n, config[n] | varint ndim, ndim varints: shape
    | u8 flags | (flags & 2: reference fingerprint[4]) | body | u32 CRC-32 of everything before it

``config`` is the compact JSON list of the adapter's configuration values in sorted-key order (the
decoder knows the keys). Flag 1: SINR coded the tensors the adapter marks for it; flag 2: stored values
are relative to reference weights (INRIC's meta-learned initialisation), identified by the first 4 bytes
of their SHA-256 fingerprint (:func:`fingerprint`). Every byte is specified in docs/format-adapters.md.

Writing: :func:`write_header`, :func:`write_varint`, :func:`write_section`, :func:`finish_stream`.
Reading: :func:`open_stream` (magic, checksum, header, the configuration's types, ranges and network
size, the signal's shape, all checked against the adapter before anything is built), :class:`Reader`,
:func:`inflate`, :func:`stream_adapter`. An adapter stream that is truncated, corrupt, or written for
another method or reference raises the core's :class:`~sinr_codecs.errors.StreamError` (a ``ValueError``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, TypeVar

import brotli
import numpy as np
import torch

from sinr_codecs.cursor import Cursor, varint
from sinr_codecs.errors import StreamError

if TYPE_CHECKING:
    from .inr import INRAdapter

A = TypeVar("A", bound="INRAdapter")

__all__ = [
    "MAGIC",
    "MAX_FREQUENCY",
    "MAX_STREAM_PARAMETERS",
    "MAX_STREAM_TENSORS",
    "Header",
    "OpenStream",
    "Reader",
    "check_config",
    "check_config_value",
    "check_header",
    "check_reference",
    "config_number",
    "finish_stream",
    "fingerprint",
    "inflate",
    "meta_model_size",
    "open_stream",
    "read_header",
    "stream_adapter",
    "strip_checksum",
    "write_header",
    "write_section",
    "write_varint",
]

MAGIC = b"SIA1"
_MAX_HEADER = 1 << 16
_MAX_ELEMENTS = 1 << 28
_FLOAT32_MAX = float(np.finfo(np.float32).max)

MAX_STREAM_TENSORS = 1 << 10
"""Most tensors a stream's network may store (a safety limit checked before anything is built)."""

MAX_STREAM_PARAMETERS = _MAX_ELEMENTS
"""Most parameters a stream's network may have, and most values a stream's signal may hold (2**28)."""

MAX_FREQUENCY = 1e6
"""Largest sine frequency ``w0`` a stream's configuration may declare; the smallest is its inverse (SIREN
initialisation divides by ``w0``)."""


# --------------------------------------------------------------------------------------------------
# varints and sections
# --------------------------------------------------------------------------------------------------

def write_varint(buf: io.BytesIO, n: int) -> None:
    """Write ``n`` as an unsigned LEB128 varint (7 bits a byte, low bits first; 1 byte below 128).

    Parameters
    ----------
    buf : io.BytesIO
        Where to write (at its current position).
    n : int
        A non-negative integer.

    Raises
    ------
    ValueError
        If ``n`` is negative.
    """
    buf.write(varint(n))


def write_section(buf: io.BytesIO, blob: bytes) -> int:
    """Write a length-prefixed section: ``varint len(blob) | blob`` (read back by :meth:`Reader.section`).

    Parameters
    ----------
    buf : io.BytesIO
        Where to write (at its current position).
    blob : bytes
        The section's bytes.

    Returns
    -------
    int
        Bytes written, the varint included (for the byte split of ``compress_with_info``).
    """
    n0 = buf.tell()
    write_varint(buf, len(blob))
    buf.write(blob)
    return buf.tell() - n0


class Reader(Cursor):
    """Bounds-checked reading of an adapter stream: the core's :class:`sinr_codecs.cursor.Cursor` with
    the adapters' calls (a start offset, ``take(n)`` returning ``bytes``, length-prefixed sections).

    Every read past the end, varint longer than 10 bytes or count above its limit raises
    :class:`StreamError`.

    Parameters
    ----------
    data : bytes-like
        The stream (for an adapter stream: without its trailing CRC-32, see :func:`strip_checksum`).
    pos : int, default 0
        Byte offset to start reading at, ``0 <= pos <= len(data)``.
    name : str, default "adapter stream"
        How error messages call the stream.

    Attributes
    ----------
    data : memoryview
        The stream (not copied).
    pos : int
        Byte offset of the next read.

    Examples
    --------
    >>> buf = io.BytesIO()
    >>> write_section(buf, b"abc")
    4
    >>> r = Reader(buf.getvalue())
    >>> r.section(), r.pos
    (b'abc', 4)
    """

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, *, name: str = "adapter stream") -> None:
        super().__init__(data, name=name)
        if not 0 <= pos <= len(self.data):
            raise StreamError(f"{name} truncated: offset {pos} is beyond its {len(self.data)} bytes")
        self.pos = pos

    def take(self, n: int, what: str = "a record") -> bytes:  # type: ignore[override]  # bytes, not a view
        """The next ``n`` bytes, copied (raises :class:`StreamError` if fewer are left)."""
        if n < 0:
            raise StreamError(f"{self.name}: negative length {n} for {what}")
        return bytes(super().take(n, what))

    def varint(self, what: str = "a length", limit: int | None = None) -> int:
        """The next unsigned LEB128 varint (see :func:`write_varint`), at most ``limit``.

        A length or count read from an untrusted stream must be bounded before anything is allocated, so
        ``limit`` is required; :class:`StreamError` if the varint is malformed or exceeds it.
        """
        if limit is None:
            raise TypeError("Reader.varint needs a limit")
        return super().varint(what, limit)

    def section(self, *, limit: int | None = None, what: str = "a section") -> bytes:
        """The next length-prefixed section written by :func:`write_section`.

        ``limit`` bounds its length in bytes (default: the length of the whole stream).
        """
        n = self.varint(f"the length of {what}", len(self.data) if limit is None else limit)
        return self.take(n, what)


def inflate(blob: bytes, expected: int, what: str) -> bytes:
    """Brotli-decompress ``blob``, refusing to produce more than ``expected`` bytes (StreamError on a
    corrupt section or one of another length)."""
    try:  # never let a corrupt stream expand beyond what the reader needs
        raw = brotli.Decompressor().process(blob, output_buffer_limit=expected + 1)
    except brotli.error as exc:
        raise StreamError(f"corrupt {what}: {exc}") from exc
    if len(raw) != expected:
        raise StreamError(f"{what} holds {len(raw)} bytes, expected {expected}")
    return raw


def fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """16 hex digits of SHA-256 over names and float32 little-endian bytes, in the mapping's order.

    Streams whose values are relative to reference weights (or need shared weights to decode) hold the
    first 8 hex digits (4 bytes) in their header.
    """
    h = hashlib.sha256()
    for name, t in tensors.items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# header and checksum
# --------------------------------------------------------------------------------------------------

def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _refuse_constant(name: str) -> None:
    raise StreamError(f"corrupt stream header: non-finite number {name} in the configuration")


class Header(TypedDict):
    """A parsed stream header (:func:`read_header`)."""

    method: str
    config: list[Any]
    shape: tuple[int, ...]
    sinr: bool
    ref: str | None


def write_header(buf: io.BytesIO, adapter: INRAdapter, shape: Sequence[int], *, sinr: bool, ref: str | None) -> int:
    """Write ``adapter``'s stream header (module docstring) and return its length in bytes.

    Parameters
    ----------
    buf : io.BytesIO
        An empty buffer: the stream being written.
    adapter : INRAdapter
        Its ``name`` (ASCII, at most 64 bytes) and :meth:`~sinr_adapters.framework.inr.INRAdapter.config`
        (JSON-safe; the values are written in sorted-key order) go into the header.
    shape : sequence of int
        The signal's shape (grid shape followed by channels).
    sinr : bool
        Whether SINR coded the tensors the adapter marks for it (header flag 1).
    ref : str or None
        Hex fingerprint of the weights the stored values are relative to (its first 8 hex digits are
        stored, flag 2), or ``None``.
    """
    n0 = buf.tell()
    buf.write(MAGIC)
    for blob in (adapter.name.encode("ascii"), _json_dumps([v for _, v in sorted(adapter.config().items())])):
        write_section(buf, blob)
    write_varint(buf, len(shape))
    for d in shape:
        write_varint(buf, int(d))
    buf.write(bytes([(1 if sinr else 0) | (2 if ref is not None else 0)]))
    if ref is not None:
        buf.write(bytes.fromhex(ref[:8]))
    return buf.tell() - n0


def read_header(data: bytes | bytearray | memoryview) -> tuple[Header, int]:
    """Parse the stream header: ``(header, offset just past it)``.

    ``data`` is the stream without its checksum (:func:`strip_checksum`); nothing is checked against an
    adapter here (:func:`open_stream` does that).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    r = Reader(data)
    if len(data) < 4 or r.take(4) != MAGIC:
        raise StreamError("not an INR adapter stream (bad magic bytes)")
    raw_method = r.take(r.varint("the method name's length", 64), "the method name")
    blob = r.take(r.varint("the configuration's length", _MAX_HEADER), "the configuration")
    try:
        method = raw_method.decode("ascii")
        config = json.loads(blob, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, StreamError):
            raise
        raise StreamError(f"corrupt stream header: {exc}") from exc
    if not isinstance(config, list):
        raise StreamError("corrupt stream header: configuration is not a list")
    ndim = r.varint("the signal's dimension count", 8)
    shape = tuple(r.varint("a signal dimension", 1 << 24) for _ in range(ndim))
    flags = r.u8("the header flags")
    if flags & ~3:
        raise StreamError(f"unknown header flags {flags:#x}")
    ref = r.take(4).hex() if flags & 2 else None
    header: Header = {"method": method, "config": config, "shape": shape, "sinr": bool(flags & 1), "ref": ref}
    return header, r.pos


def finish_stream(buf: io.BytesIO) -> bytes:
    """Append the CRC-32 of everything written (u32, little-endian) and return the whole stream.

    :func:`strip_checksum` checks and strips it.
    """
    buf.write(struct.pack("<I", zlib.crc32(buf.getvalue())))
    return buf.getvalue()


def strip_checksum(data: bytes | bytearray | memoryview) -> bytes:
    """Check a stream's magic bytes and trailing CRC-32; return the stream without the checksum.

    Raises
    ------
    TypeError
        If ``data`` is not bytes-like.
    StreamError
        On other magic bytes, or a checksum that does not match (corrupt or truncated bytes).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] != MAGIC:
        raise StreamError("not an INR adapter stream (bad magic bytes)")
    if len(data) < 8 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise StreamError("stream checksum mismatch: the bytes are corrupt or truncated")
    return data[:-4]


# --------------------------------------------------------------------------------------------------
# configuration checks (a stream's configuration is untrusted)
# --------------------------------------------------------------------------------------------------

def config_number(config: Mapping[str, Any], key: str, *, lo: float | None = None, hi: float | None = None,
                  above: bool = False) -> Any:
    """``config[key]`` if it is a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``above``), else
    :class:`StreamError` naming the field (for the range checks of an adapter's ``stream_model_size``).

    Examples
    --------
    >>> config_number({"width": 8}, "width", lo=1)
    8
    >>> config_number({"w0": 0.0}, "w0", lo=0, above=True)
    Traceback (most recent call last):
    ...
    sinr_codecs.errors.StreamError: stream configuration: w0=0.0 is out of range (0, inf]
    """
    v = config[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        raise StreamError(f"stream configuration: {key}={v!r} is not a finite number")
    low = -math.inf if lo is None else lo
    high = math.inf if hi is None else hi
    if (v <= low if above else v < low) or v > high:
        raise StreamError(f"stream configuration: {key}={v!r} is out of range "
                          f"{'(' if above else '['}{low:g}, {high:g}]")
    return v


def check_config_value(key: str, value: Any, like: Any) -> None:
    """Refuse (:class:`StreamError`) ``value`` (read from a stream) unless it has the JSON type of
    ``like`` (the decoder's own configuration value): integers are integers below 2**63, floats finite
    numbers, strings at most 256 characters, lists of the same length (checked element by element)."""
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 63
    elif isinstance(like, float):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and abs(value) < 1 << 63)
    elif isinstance(like, (list, tuple)):
        ok = isinstance(value, list) and len(value) == len(like)
        if ok:
            for i, (v, w) in enumerate(zip(value, like, strict=True)):
                check_config_value(f"{key}[{i}]", v, w)
    elif isinstance(like, str):
        ok = isinstance(value, str) and len(value) <= 256
    else:
        ok = like is None and value is None
    if not ok:
        kind = "an integer" if isinstance(like, int) and not isinstance(like, bool) else type(like).__name__
        raise StreamError(f"stream configuration: {key}={value!r:.80} is not {kind} (or is out of range)")


# --------------------------------------------------------------------------------------------------
# a stream's header, checked against the adapter that reads it
# --------------------------------------------------------------------------------------------------

class OpenStream(NamedTuple):
    """What :func:`open_stream` returns."""

    header: Header
    """The parsed header."""
    pos: int
    """Offset of the body (just past the header) in :attr:`body`."""
    body: bytes
    """The stream without its trailing CRC-32."""
    config: dict[str, Any]
    """The stream's configuration, keyed like the adapter's ``config()``."""


def check_header(adapter: INRAdapter, header: Header) -> dict[str, Any]:
    """The configuration of a stream's ``header``, checked against ``adapter`` before anything is built:
    the method's name, as many values as ``adapter.config()`` has keys (or fewer by exactly the keys of
    ``adapter.stream_config_defaults``, which then take their defaults), each of the JSON type of the
    adapter's own value (:func:`check_config`), the network's size, and the signal's shape (non-empty, at
    most :data:`MAX_STREAM_PARAMETERS` values, then the adapter's ``check_stream_shape``).

    Raises
    ------
    StreamError
        For anything the adapter cannot decode.
    """
    if header["method"] != adapter.name:
        raise StreamError(f"stream was written by adapter {header['method']!r}, not {adapter.name!r}")
    own = adapter.config()
    keys = sorted(own)
    values = header["config"]
    defaults = adapter.stream_config_defaults
    older = sorted(k for k in own if k not in defaults)
    if len(values) == len(keys):
        config = dict(zip(keys, values, strict=True))
    elif defaults and len(values) == len(older):  # written before the keys existed
        config = {**dict(zip(older, values, strict=True)), **defaults}
    else:
        raise StreamError(f"stream configuration has {len(values)} entries, {adapter.name!r} "
                          f"expects {len(keys)}: written by another version of the adapter?")
    check_config(adapter, config)
    shape = header["shape"]
    if len(shape) < 2 or min(shape) < 1 or math.prod(shape) > MAX_STREAM_PARAMETERS:
        raise StreamError(f"signal shape {shape} is empty or exceeds the safety limit of "
                          f"{MAX_STREAM_PARAMETERS} values")
    adapter.check_stream_shape(shape, config)
    return config


def open_stream(adapter: INRAdapter, data: bytes | bytearray | memoryview) -> OpenStream:
    """Check a stream's magic bytes and checksum (:func:`strip_checksum`), then its header against
    ``adapter`` (:func:`check_header`). Nothing is built.

    Raises
    ------
    TypeError
        If ``data`` is not bytes-like.
    StreamError
        For a corrupt or truncated stream, or one that ``adapter`` cannot decode.
    """
    body = strip_checksum(data)
    header, pos = read_header(body)  # the checksum first: a corrupt header says so
    return OpenStream(header, pos, body, check_header(adapter, header))


def check_config(adapter: INRAdapter, config: Mapping[str, Any]) -> None:
    """Refuse a stream's configuration before anything is built from it.

    Every value must have the JSON type of the adapter's own ``config()`` value
    (:func:`check_config_value`), then the adapter's ``stream_model_size(config)`` checks its ranges and
    sizes the network: at most :data:`MAX_STREAM_TENSORS` stored tensors and
    :data:`MAX_STREAM_PARAMETERS` parameters.

    Raises
    ------
    StreamError
        If a value is of the wrong type, out of range, or describes a network beyond the limits.
    """
    own = adapter.config()
    for key, value in config.items():
        check_config_value(key, value, own[key])
    tensors, params = adapter.stream_model_size(config)
    if tensors > MAX_STREAM_TENSORS or params > MAX_STREAM_PARAMETERS:
        raise StreamError(f"the stream's network ({tensors} tensors, {params} parameters) exceeds the safety "
                          f"limit of {MAX_STREAM_TENSORS} tensors and {MAX_STREAM_PARAMETERS} parameters")


def stream_adapter(adapter: A, config: Mapping[str, Any]) -> A:
    """``adapter.with_config(config)`` for a configuration read from a stream (checked by
    :func:`open_stream`): the adapter that decodes it, of ``adapter``'s class and with its shared state. A
    constructor's refusal becomes a :class:`StreamError`."""
    try:
        out = adapter.with_config(config)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, StreamError):
            raise
        raise StreamError(f"bad configuration in stream: {exc}") from exc
    if not isinstance(out, type(adapter)):
        raise TypeError(f"{type(adapter).__name__}.with_config returned a {type(out).__name__}, not an adapter of "
                        "its own class")
    return out


def check_reference(adapter: INRAdapter, header: Header) -> None:
    """Refuse a stream whose reference fingerprint (flag 2) is not that of ``adapter``'s shared state
    (``adapter.shared_fingerprint()``: its reference weights, or COIN++'s base network), or that has one
    when the adapter has none, or none when it has one.

    Raises
    ------
    StreamError
        Naming what to decode with instead.
    """
    shared = adapter.shared_fingerprint()
    if (header["ref"] is None) != (shared is None) or (shared is not None and header["ref"] != shared[:8]):
        raise StreamError("the stream's shared state (the reference weights or base network it was written "
                          "with) differs from this adapter's: decode with the adapter, and the file of shared "
                          "state, that wrote it")


def meta_model_size(adapter: INRAdapter, config: Mapping[str, Any]) -> tuple[int, int]:
    """``(stored tensors, parameters)`` of ``adapter``'s network for a stream's ``config``, built on the meta
    device (no memory, but time proportional to its number of modules).

    Raises
    ------
    StreamError
        If no network of the adapter has that configuration.
    """
    try:
        with torch.device("meta"):
            probe = type(adapter)(**config).build_model()
    except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
        if isinstance(exc, StreamError):
            raise
        raise StreamError(f"bad configuration in stream: {exc}") from exc
    return len(adapter.tensor_names(probe)), sum(p.numel() for p in probe.parameters())
