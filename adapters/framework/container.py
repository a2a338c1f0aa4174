"""The adapter stream container: header, sections, checksum, and the bounds-checked reader.

Every adapter stream is written and read with these helpers (:class:`~sinr_adapters.framework.inr.INRAdapter`
writes the whole stream; COIN++ and SHACIRA write their own records between its header and checksum).

Stream layout (``MAGIC`` = ``b"SIA1"``; varint = unsigned LEB128; every byte is counted in ``bpp``)::

    magic[4] | varint n, method name[n] | varint n, config[n] | varint ndim, ndim varints: signal shape
    | u8 flags | (flags & 2: reference fingerprint[4]) | per tensor, in state_dict order: record
    | varint m, brotli(integers)[m] | u32 CRC-32 of everything before it

``config`` is the compact JSON list of the adapter's configuration values in sorted-key order (the
architecture; the decoder knows the keys). Flag 1: SINR was used, so the tensors the adapter marks for
SINR are ``s`` records; the others use the adapter's storage: ``h`` float16 or ``f`` float32 (raw,
little-endian), ``q`` u8 bits + f32 step (the integers, offset to unsigned, go to the shared Brotli
section at the end; :func:`stored_uniform`), ``s`` varint length + a SparseCode stream (docs/format.md;
:func:`sparse_tensor_from_bytes`). Flag 2: stored values are relative to reference weights (INRIC's
meta-learned initialisation), identified by the first 4 bytes of their SHA-256 fingerprint
(:func:`fingerprint`).

An adapter stream that is truncated, corrupt, or written for another method / reference raises the
core's :class:`~sinr_codecs.errors.StreamError` (a ``ValueError``), like a bad SINR stream does.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import brotli
import numpy as np
import torch
from sinr_codecs.cursor import Cursor, varint
from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import SparseCode

from .quantizers import uniform_dequantize, uniform_quantize

__all__ = [
    "MAGIC",
    "MAX_FREQUENCY",
    "MAX_STREAM_PARAMETERS",
    "MAX_STREAM_TENSORS",
    "Reader",
    "StreamError",
    "check_config_value",
    "config_number",
    "finish_stream",
    "fingerprint",
    "from_stored_uniform",
    "inflate",
    "read_header",
    "read_quantizer",
    "sparse_tensor_from_bytes",
    "stored_uniform",
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

    def take(self, n: int, what: str = "a record") -> bytes:
        """The next ``n`` bytes, copied (raises :class:`StreamError` if fewer are left)."""
        if n < 0:
            raise StreamError(f"{self.name}: negative length {n} for {what}")
        return bytes(super().take(n, what))

    def varint(self, what: str = "a length", limit: int | None = None) -> int:  # type: ignore[override]
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


# --------------------------------------------------------------------------------------------------
# tensor records: uniform integers ("q") and SINR sections ("s")
# --------------------------------------------------------------------------------------------------

def stored_uniform(t: torch.Tensor, bits: int) -> tuple[bytes, np.ndarray]:
    """How a ``("q", bits)`` tensor is stored: the quantizer record ``<Bf`` (bits, step; 5 bytes) and the
    integers offset to unsigned (``q + 2**(bits-1) - 1``, uint8 up to 8 bits, else little-endian uint16),
    flattened."""
    q, step = uniform_quantize(t, bits)
    ints = (q.numpy() + 2 ** (bits - 1) - 1).astype("<u1" if bits <= 8 else "<u2").reshape(-1)
    return struct.pack("<Bf", bits, step), ints


def read_quantizer(record: bytes, name: str) -> tuple[int, float]:
    """Inverse of :func:`stored_uniform`'s 5-byte record: ``(bits, step)``.

    Raises :class:`StreamError` unless ``2 <= bits <= 16`` and ``step`` is positive with every
    dequantized value ``+-step * (2**(bits-1) - 1)`` finite in float32.
    """
    if len(record) != 5:
        raise StreamError(f"truncated quantizer record for {name!r}")
    bits, step = struct.unpack("<Bf", record)
    if not 2 <= bits <= 16 or not 0.0 < step < math.inf or step * (2 ** (bits - 1) - 1) > _FLOAT32_MAX:
        raise StreamError(f"bad quantizer parameters for {name!r}: bits={bits}, step={step}")
    return bits, step


def from_stored_uniform(ints: np.ndarray, bits: int, step: float) -> torch.Tensor:
    """Inverse of :func:`stored_uniform`'s integers: the dequantized float32 tensor (flat).

    Raises :class:`StreamError` if an integer lies beyond ``2**bits - 2`` (outside the quantizer's range).
    """
    qmax = 2 ** (bits - 1) - 1
    if ints.size and int(ints.max()) > 2 * qmax:
        raise StreamError(f"a stored {bits}-bit integer lies outside the quantizer's range 0..{2 * qmax}")
    return uniform_dequantize(torch.from_numpy(ints.astype(np.int64) - qmax), step)


def sparse_tensor_from_bytes(blob: bytes, shape: Sequence[int], *, name: str | None = None) -> torch.Tensor:
    """Decode one SINR section: a :class:`sinr_codecs.sparse.SparseCode` stream -> the tensor it codes.

    Parameters
    ----------
    blob : bytes
        The SparseCode stream (docs/format.md), as written by
        :meth:`~sinr_adapters.framework.finetune.CompressionSetup.code_bytes`.
    shape : sequence of int
        The shape the tensor must have (the model's tensor it replaces).
    name : str or None
        The tensor's name, for error messages.

    Returns
    -------
    torch.Tensor
        The reconstruction, float32 on the CPU, of shape ``shape``.

    Raises
    ------
    StreamError
        If the section is corrupt or codes a tensor of another shape.
    """
    what = "SINR section" if name is None else f"SINR section for {name!r}"
    try:
        code = SparseCode.from_bytes(blob)
    except StreamError:
        raise
    except ValueError as exc:
        raise StreamError(f"bad {what}: {exc}") from exc
    t = code.reconstruct().detach().float()
    if tuple(t.shape) != tuple(shape):
        raise StreamError(f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    return t.cpu()


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


def write_header(buf: io.BytesIO, method: str, config: Mapping[str, Any], shape: Sequence[int], *, sinr: bool,
                 ref: str | None) -> int:
    """Write the stream header (module docstring) and return its length in bytes.

    Parameters
    ----------
    buf : io.BytesIO
        An empty buffer: the stream being written.
    method : str
        The adapter's ``name`` (ASCII, at most 64 bytes).
    config : mapping
        The adapter's JSON-safe configuration; its values are written in sorted-key order.
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
    for blob in (method.encode("ascii"), _json_dumps([v for _, v in sorted(config.items())])):
        write_section(buf, blob)
    write_varint(buf, len(shape))
    for d in shape:
        write_varint(buf, int(d))
    buf.write(bytes([(1 if sinr else 0) | (2 if ref is not None else 0)]))
    if ref is not None:
        buf.write(bytes.fromhex(ref[:8]))
    return buf.tell() - n0


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """Parse the stream header: ``({"method", "config" (list), "shape", "sinr", "ref"}, offset)``.

    ``data`` is the stream without its checksum (:func:`strip_checksum`); nothing is checked against an
    adapter here (:meth:`~sinr_adapters.framework.inr.INRAdapter.open_stream` does that).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    r = Reader(data)
    if len(data) < 4 or r.take(4) != MAGIC:
        raise StreamError("not an INR adapter stream (bad magic bytes)")
    method = r.take(r.varint("the method name's length", 64), "the method name")
    blob = r.take(r.varint("the configuration's length", _MAX_HEADER), "the configuration")
    try:
        method = method.decode("ascii")
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
    header = {"method": method, "config": config, "shape": shape, "sinr": bool(flags & 1), "ref": ref}
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
    :class:`StreamError` naming the field (for the range checks of
    :meth:`~sinr_adapters.framework.inr.INRAdapter.stream_model_size`).

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
            for i, (v, w) in enumerate(zip(value, like)):
                check_config_value(f"{key}[{i}]", v, w)
    elif isinstance(like, str):
        ok = isinstance(value, str) and len(value) <= 256
    else:
        ok = like is None and value is None
    if not ok:
        kind = "an integer" if isinstance(like, int) and not isinstance(like, bool) else type(like).__name__
        raise StreamError(f"stream configuration: {key}={value!r:.80} is not {kind} (or is out of range)")
