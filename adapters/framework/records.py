"""Tensor records, and the body of the streams of :class:`~sinr_adapters.framework.inr.INRAdapter`.

Between the container's header and checksum (:mod:`sinr_adapters.framework.container`), an
``INRAdapter`` stream holds one record per stored tensor, in the network's state_dict order, then one
section of integers::

    record[0] | record[1] | ... | section: coded integers of every "q" tensor

A tensor SINR coded (header flag 1, one of the adapter's ``sinr_tensor_names``) is an ``s`` record: a
section holding a :class:`sinr_codecs.sparse.SparseCode` stream (docs/format.md;
:func:`sparse_tensor_from_bytes`). Every other tensor is stored as the adapter's ``storage`` hook says:
``h`` float16 or ``f`` float32 (raw, little-endian), or ``q`` (bits): a 5-byte quantizer record ``<Bf``
(:func:`stored_uniform`) whose integers, offset to unsigned, go to the final section, coded by the
adapter's ``code_integers`` (:func:`brotli_integers` unless a method codes them otherwise, e.g.
:func:`rans_integers`). Every byte is specified in docs/format-adapters.md.

:func:`write_stream` writes such a stream, :func:`read_tensors` reads it back; both locate every record
against the network's tensor shapes (found on the meta device) before any tensor is allocated.
:func:`write_records` writes the header and one record per tensor for a method with records of its own
(SHACIRA).
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import brotli
import numpy as np
import torch

from sinr_codecs import rans
from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import SparseCode

from .container import (
    Header,
    Reader,
    check_reference,
    fingerprint,
    finish_stream,
    inflate,
    open_stream,
    stream_adapter,
    write_header,
    write_section,
)
from .quantizers import MAX_BITS, MIN_BITS, uniform_dequantize, uniform_quantize

if TYPE_CHECKING:
    from .finetune import CompressionSetup
    from .inr import INRAdapter
    from .training import FitLog

__all__ = [
    "brotli_integers",
    "from_stored_uniform",
    "read_quantizer",
    "read_tensors",
    "rans_integers",
    "sparse_tensor_from_bytes",
    "stored_uniform",
    "unbrotli_integers",
    "unrans_integers",
    "write_records",
    "write_stream",
]

_FLOAT32_MAX = float(np.finfo(np.float32).max)

Store = Callable[[io.BytesIO, str, torch.Tensor], None]
"""``store(buf, name, tensor)``: writes the record of one tensor SINR did not code."""


# --------------------------------------------------------------------------------------------------
# records: uniform integers ("q") and SINR sections ("s")
# --------------------------------------------------------------------------------------------------

def stored_uniform(t: torch.Tensor, bits: int) -> tuple[bytes, np.ndarray]:
    """How a ``("q", bits)`` tensor is stored: the quantizer record ``<Bf`` (bits, step; 5 bytes) and the
    integers offset to unsigned (``q + 2**(bits-1) - 1``, uint8 up to 8 bits, else little-endian uint16),
    flattened (:func:`~sinr_adapters.framework.quantizers.uniform_quantize`)."""
    q, step = uniform_quantize(t, bits)
    ints = (q.cpu().numpy() + 2 ** (bits - 1) - 1).astype("<u1" if bits <= 8 else "<u2").reshape(-1)
    return struct.pack("<Bf", bits, step), ints


def read_quantizer(record: bytes, name: str) -> tuple[int, float]:
    """Inverse of :func:`stored_uniform`'s 5-byte record: ``(bits, step)``.

    Raises :class:`StreamError` unless ``2 <= bits <= 16`` and ``step`` is positive with every
    dequantized value ``+-step * (2**(bits-1) - 1)`` finite in float32.
    """
    if len(record) != 5:
        raise StreamError(f"truncated quantizer record for {name!r}")
    bits, step = struct.unpack("<Bf", record)
    if not MIN_BITS <= bits <= MAX_BITS or not 0.0 < step < math.inf or step * (2 ** (bits - 1) - 1) > _FLOAT32_MAX:
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

    The core's reader checks the stream against :mod:`sinr_codecs.limits` before it allocates.

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
    if tuple(code.shape) != tuple(shape):
        raise StreamError(f"{what} has shape {tuple(code.shape)}, expected {tuple(shape)}")
    return code.reconstruct().detach().float().cpu()


# --------------------------------------------------------------------------------------------------
# the integer section
# --------------------------------------------------------------------------------------------------

def brotli_integers(ints: Sequence[np.ndarray]) -> bytes:
    """The integer section's payload: the stored integers of every ``q`` tensor (from
    :func:`stored_uniform`, in record order) as written, Brotli-coded (quality 11)."""
    return brotli.compress(b"".join(a.tobytes() for a in ints), quality=11)


def unbrotli_integers(payload: bytes, tensors: Sequence[tuple[int, int]]) -> bytes:
    """Inverse of :func:`brotli_integers` for ``(numel, bits)`` of each ``q`` tensor in record order: their
    integers concatenated as written (one byte each up to 8 bits, else little-endian u16).

    Raises :class:`StreamError` if the payload is corrupt or holds another number of bytes.
    """
    return inflate(payload, sum(n * (1 if b <= 8 else 2) for n, b in tensors), "integer section")


def rans_integers(ints: Sequence[np.ndarray], *, offset: int = 0) -> bytes:
    """The integer section's payload as one rANS stream (:func:`sinr_codecs.rans.encode`, one frequency
    table for the stream) over every stored integer minus ``offset``, tensor after tensor (``offset``
    ``2**(bits-1) - 1`` codes the signed integers ``q``)."""
    return rans.encode(np.concatenate([np.asarray(a, dtype=np.int64).reshape(-1) for a in ints]) - int(offset))


def unrans_integers(payload: bytes, tensors: Sequence[tuple[int, int]], *, offset: int = 0) -> bytes:
    """Inverse of :func:`rans_integers` (as :func:`unbrotli_integers`); every integer is checked to lie in its
    tensor's range ``0 .. 2**bits - 2`` (:class:`StreamError` otherwise, or on a corrupt rANS stream)."""
    values = rans.decode(payload, sum(n for n, _ in tensors), max_alphabet=1 << 16) + int(offset)
    out, off = [], 0
    for n, b in tensors:
        v = values[off:off + n]
        off += n
        if v.size and (int(v.min()) < 0 or int(v.max()) > 2 ** b - 2):
            raise StreamError(f"a stored {b}-bit integer lies outside the quantizer's range 0..{2 ** b - 2}")
        out.append(v.astype("<u1" if b <= 8 else "<u2").tobytes())
    return b"".join(out)


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------

def write_records(adapter: INRAdapter, setup: CompressionSetup, shape: Sequence[int],
                  store: Store) -> tuple[io.BytesIO, int, int]:
    """Start a stream: the header, then one record per tensor of ``setup.names`` in order.

    A SINR-coded tensor is written as a section holding its code (:meth:`CompressionSetup.code_bytes`);
    any other is handed to ``store(buf, name, tensor)`` (the fine-tuned tensor, float32 on the CPU),
    which writes its record to ``buf``.

    Returns
    -------
    buf : io.BytesIO
        The stream so far.
    header_bytes, sinr_bytes : int
        Bytes of the header and of the SINR sections.
    """
    codes, ref = setup.codes, setup.reference
    buf = io.BytesIO()
    hlen = write_header(buf, adapter, shape, sinr=bool(codes), ref=None if ref is None else fingerprint(ref))
    sinr_bytes = 0
    with torch.no_grad():
        for k in setup.names:
            if k in codes:
                sinr_bytes += write_section(buf, setup.code_bytes(k))
            else:
                store(buf, k, setup.trainable[k].detach().cpu().float())
    return buf, hlen, sinr_bytes


def write_stream(adapter: INRAdapter, setup: CompressionSetup, shape: Sequence[int], log: FitLog,
                 info: dict[str, Any]) -> bytes:
    """The whole stream (module docstring) of a fine-tuned ``setup``; adds the byte split, the fine-tuning
    ``log`` and the SINR-coded tensor names to ``info``."""
    ints: list[np.ndarray] = []

    def store(buf: io.BytesIO, k: str, t: torch.Tensor) -> None:
        spec = setup.specs[k]
        if spec[0] in ("h", "f"):
            buf.write(t.numpy().astype("<f2" if spec[0] == "h" else "<f4").tobytes())
        elif spec[0] == "q":
            record, q = stored_uniform(t, int(spec[1]))
            buf.write(record)
            ints.append(q)
        else:
            raise ValueError(f"{adapter.name}.storage({k!r}) returned {spec!r}: use ('h',), ('f',) or ('q', bits)")

    buf, hlen, sinr_bytes = write_records(adapter, setup, shape, store)
    int_bytes = write_section(buf, adapter.code_integers(ints) if ints else b"")
    info.update(header_bytes=hlen, sinr_bytes=sinr_bytes, int_bytes=int_bytes, checksum_bytes=4,
                finetune_log=log.to_dict(), sinr_tensors=sorted(setup.codes))
    return finish_stream(buf)


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------

def read_tensors(adapter: INRAdapter, data: bytes) -> tuple[INRAdapter, Header, dict[str, torch.Tensor]]:
    """Read a stream written by :func:`write_stream`.

    Returns
    -------
    adapter : INRAdapter
        The adapter of the stream's configuration (``adapter``'s shared state).
    header : Header
        The stream's header.
    tensors : dict of str to torch.Tensor
        Every stored tensor (float32, CPU, reference weights added), in stream order: the state_dict of
        ``adapter.build_model()``.

    Raises
    ------
    StreamError
        If the stream is corrupt, truncated, of another method or shared state, or describes a network
        beyond the limits; every record is located and its length checked before anything is decoded.
    """
    header, pos, body, config = open_stream(adapter, data)
    n_tensors, _ = adapter.stream_model_size(config)
    if n_tensors >= len(body) - pos:  # every tensor record and the integer section take a byte at least
        raise StreamError(f"stream truncated: its network stores {n_tensors} tensors, only {len(body) - pos} "
                          "bytes follow the header")
    dec = stream_adapter(adapter, config)
    check_reference(dec, header)
    with torch.device("meta"):  # names, shapes and storage of the tensors, nothing allocated
        probe = type(dec)(**config).build_model()
    names = dec.tensor_names(probe)
    meta = probe.state_dict()
    shapes = {k: tuple(meta[k].shape) for k in names}
    sinr_names = set(dec.sinr_tensor_names(probe)) if header["sinr"] else set()
    specs = {k: ("s",) if k in sinr_names else tuple(dec.storage(k, meta[k])) for k in names}

    r = Reader(body, pos)
    records: list[tuple[str, str, Any]] = []
    for k in names:
        c, numel = specs[k][0], math.prod(shapes[k])
        if c in ("h", "f"):
            records.append((k, c, r.take((2 if c == "h" else 4) * numel, f"tensor {k!r}")))
        elif c == "q":
            bits, step = read_quantizer(r.take(5, f"the quantizer of {k!r}"), k)
            if bits != int(specs[k][1]):
                raise StreamError(f"the quantizer of {k!r} has {bits} bits, the stream's configuration says "
                                  f"{specs[k][1]}")
            records.append((k, c, (bits, step)))
        elif c == "s":
            records.append((k, c, r.section(what=f"the SINR section of {k!r}")))
        else:
            raise StreamError(f"unknown tensor codec {c!r}")
    payload = r.section(what="the integer section")
    if r.pos != len(body):
        raise StreamError(f"{len(body) - r.pos} trailing bytes after the stream")
    pending = [(math.prod(shapes[k]), rec[0]) for k, c, rec in records if c == "q"]
    if not pending and payload:
        raise StreamError("unexpected integer section")
    raw = dec.decode_integers(payload, pending) if pending else b""

    tensors: dict[str, torch.Tensor] = {}  # allocations bounded by the network's size, checked above
    off = 0
    for k, c, rec in records:
        if c in ("h", "f"):
            arr = np.frombuffer(rec, dtype="<f2" if c == "h" else "<f4").astype(np.float32)
            tensors[k] = torch.from_numpy(arr).reshape(shapes[k])
        elif c == "q":
            bits, step = rec
            numel, width = math.prod(shapes[k]), 1 if bits <= 8 else 2
            arr = np.frombuffer(raw, dtype="<u1" if width == 1 else "<u2", count=numel, offset=off)
            off += numel * width
            tensors[k] = from_stored_uniform(arr, bits, step).reshape(shapes[k])
        else:
            tensors[k] = sparse_tensor_from_bytes(rec, shapes[k], name=k)
    ref = dec.reference()
    if ref is not None:
        tensors = {k: tensors[k] + ref[k].cpu().float() for k in names}
    return dec, header, tensors
