"""The rate-aware stream (``SRA2``): what :func:`~sinr_adapters.rate_coding.rate_aware.compress` writes, and
its reader.

Every byte is specified in docs/format-adapters.md ("Rate-aware streams")::

    b"SRA2" | u8 flags (1: SINR, 2: seeded, 4: joint dense section) | (flags & 2: varint seed) |
    adapter header (the SIA1 container's, :func:`sinr_adapters.framework.container.write_header`) |
    per stored tensor, in the adapter's tensor order:
        (flags & 2: f16 std of theta0)
        dense: u8 0 | f32 step | (not flags & 4: section(values))
        SINR:  u8 1 | section(a SINR stream, docs/format.md)
    | (flags & 4: section(values of every dense tensor, in order)) | u32 CRC-32 of everything before

A SINR record is the core's own stream (:func:`sinr_codecs.bitstream.write`: the support, the trained
integers and their step, in the smallest of its back ends), read back with the core's reader and its limits
(:mod:`sinr_codecs.limits`). A dense values section is ``u8 0 | rANS stream`` (its own table) or
``u8 1 | varint zigzag(lo) | varint hi - lo | varint centre - lo | u16 ratio | rANS lanes`` coded with the
exact table of that two-sided geometric model (:func:`sinr_adapters.rate_coding.rate.laplace_freqs`, no
table stored), whichever is smaller (:func:`code_values`). The joint section is written when it is
smaller than one section per dense tensor.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from sinr_codecs import bitstream, rans
from sinr_codecs.dictionary import gaussian_stream
from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import SparseCode, resolve_device

from ..framework import container
from ..framework.container import Reader, write_section, write_varint
from ..framework.protocol import Decoded
from ..framework.records import sparse_tensor_from_bytes
from .rate import MAX_MODEL_ALPHABET, MODEL_SCALE, LaplaceModel, laplace_freqs

if TYPE_CHECKING:
    from ..framework.inr import INRAdapter

__all__ = ["MAGIC", "TensorRecord", "code_values", "decode", "decode_values", "decompress", "open_stream",
           "seeded_tensor", "sinr_section", "write"]

MAGIC = b"SRA2"
_FLAGS = 7
_SEED_LIMIT = (1 << 63) - 1
_SINR_BACKENDS = ("rans", "brotli", "pcodec", "raw")  # a SINR record keeps the smallest


@dataclass(frozen=True)
class TensorRecord:
    """One stored tensor of a rate-aware stream, as trained.

    Attributes
    ----------
    q : numpy.ndarray
        Integers: the tensor's shape (dense), or ``(n_vectors, s_max)`` of the code's support (SINR; 0
        where a vector has fewer atoms).
    step : float
        The quantizer step, a float32 value.
    code : SparseCode or None
        The support (SINR), or None (dense).
    """

    q: np.ndarray
    step: float
    code: SparseCode | None = None


def seeded_tensor(seed: int, index: int, std: float, shape: tuple[int, ...]) -> torch.Tensor:
    """Tensor ``index`` (in stream order) of the seeded initialisation: ``std`` times the first ``numel``
    standard normals of the dictionary generator for the seed ``(seed * 4099 + index) mod 2**64``."""
    g = gaussian_stream((int(seed) * 4099 + index) % (1 << 64), 0, math.prod(shape))
    return torch.from_numpy((g * np.float32(std)).astype(np.float32)).reshape(shape)


# ---- values sections ------------------------------------------------------------------------------
def code_values(ints: np.ndarray) -> bytes:
    """A dense values section (module docstring): rANS with its own table, or with the two-sided geometric
    model its parameters define (:class:`~sinr_adapters.rate_coding.rate.LaplaceModel`), whichever is smaller."""
    table = b"\x00" + rans.encode(ints)
    model = LaplaceModel.fit(ints) if ints.size else None
    if model is None:
        return table
    head = io.BytesIO()
    head.write(b"\x01")
    for v in (rans.zigzag(model.lo), model.hi - model.lo, model.center - model.lo):
        write_varint(head, int(v))
    head.write(struct.pack("<H", model.ratio))
    coded = head.getvalue() + rans.encode_with_model(ints - model.lo, model.freqs(), MODEL_SCALE)
    return coded if len(coded) < len(table) else table


def decode_values(blob: bytes, count: int, what: str) -> np.ndarray:
    """Inverse of :func:`code_values`: ``count`` integers (int64); every model parameter is checked first.

    Raises
    ------
    StreamError
        If the section is corrupt or holds another number of integers.
    """
    if count == 0:
        if blob:
            raise StreamError(f"unexpected integers for the empty tensor {what}")
        return np.zeros(0, np.int64)
    r = Reader(blob, 0)
    coder = r.u8(f"the value coder of {what}")
    if coder == 0:
        return rans.decode(blob[1:], count)
    if coder != 1:
        raise StreamError(f"unknown value coder {coder} for {what}")
    lo = int(rans.unzigzag(r.varint("the model's minimum", limit=(1 << 64) - 1)))
    span = r.varint("the model's range", limit=MAX_MODEL_ALPHABET - 1)
    center = r.varint("the model's centre", limit=span)
    ratio = int(np.frombuffer(r.take(2, "the model's ratio"), "<u2")[0])
    try:
        freqs = laplace_freqs(lo, lo + span, lo + center, ratio, MODEL_SCALE)
    except ValueError as exc:
        raise StreamError(f"the value model of {what}: {exc}") from None
    return rans.decode_with_model(blob[r.pos:], count, freqs, MODEL_SCALE) + lo


def sinr_section(code: SparseCode, q: np.ndarray, step: float) -> bytes:
    """A SINR record's section: the core's stream (:func:`sinr_codecs.bitstream.write`) of ``code``'s
    support with the trained integers ``q`` ``(n_vectors, s_max)`` and their ``step`` (one per tensor),
    delta-coded indices, the fewest value bits that hold ``q``, in whichever back end (rANS, Brotli,
    pcodec, raw) gives the fewest bytes: the small tensors of an INR pay for rANS's tables.

    Raises
    ------
    ValueError
        If an integer needs more than 24 bits (a step far below the values' scale).
    """
    top = int(np.abs(q).max(initial=0))
    bits = max(2, top.bit_length() + 1)
    if bits > 24:
        raise ValueError(f"a SINR value of {top} steps needs {bits} bits, more than a SINR stream holds (24)")
    content = bitstream.Content(
        dtype=np.dtype(np.float32), order="C", layout=code.layout, mode="dense" if code.dense else "sparse",
        value_bits=bits, granularity="tensor", backend="rans", steps=np.array([step], dtype=np.float64),
        q=q, k2=code.k2, generator=code.generator, seed=code.seed, index_coding="delta",
        counts=code.counts.cpu().numpy(), indices=code.indices.cpu().numpy())
    return min((bitstream.write(replace(content, backend=b)) for b in _SINR_BACKENDS), key=len)


# ---- writing --------------------------------------------------------------------------------------
def write(adapter: INRAdapter, shape: Sequence[int], tensors: Mapping[str, TensorRecord], *, seed: int | None = None,
          stds: Mapping[str, float] | None = None) -> tuple[bytes, dict[str, int]]:
    """The stream of trained ``tensors`` (in stream order) of ``adapter`` for a signal of ``shape``.

    Parameters
    ----------
    seed, stds : int and mapping, or None
        The seeded initialisation the values are relative to, and its scale per tensor (flag 2).

    Returns
    -------
    (bytes, dict)
        The stream, and ``{"value_bits_actual", "sinr_bits", "bytes"}``: bits of the dense values
        sections, of the SINR records, and the stream's length.
    """
    buf = io.BytesIO()
    dense = [k for k, t in tensors.items() if t.code is None]
    flat = {k: np.asarray(tensors[k].q, dtype=np.int64).reshape(-1) for k in dense}
    # one rANS table for all dense tensors when that is smaller than one per tensor (small tensors)
    joint_blob = code_values(np.concatenate([flat[k] for k in dense])) if dense else b""
    joint = bool(dense) and len(joint_blob) < sum(len(code_values(flat[k])) for k in dense)
    sinr = any(t.code is not None for t in tensors.values())
    buf.write(MAGIC)
    buf.write(bytes([(1 if sinr else 0) | (2 if seed is not None else 0) | (4 if joint else 0)]))
    if seed is not None:
        write_varint(buf, int(seed))
    container.write_header(buf, adapter, shape, sinr=sinr, ref=adapter.shared_fingerprint())
    value_bits = sinr_bits = 0
    for k, t in tensors.items():
        if stds is not None:
            buf.write(np.float16(stds[k]).astype("<f2").tobytes())
        if t.code is None:
            buf.write(b"\x00" + struct.pack("<f", t.step))
            if not joint:
                value_bits += 8 * write_section(buf, code_values(flat[k]))
        else:
            buf.write(b"\x01")
            sinr_bits += 8 * write_section(buf, sinr_section(t.code, t.q, t.step))
    if joint:
        value_bits += 8 * write_section(buf, joint_blob)
    data = container.finish_stream(buf)
    return data, {"value_bits_actual": value_bits, "sinr_bits": sinr_bits, "bytes": len(data)}


# ---- reading --------------------------------------------------------------------------------------
def _step(r: Reader, k: str) -> float:
    step = float(np.frombuffer(r.take(4, f"the step of {k!r}"), "<f4")[0])
    if not math.isfinite(step):
        raise StreamError(f"non-finite quantizer step for {k!r}")
    return step


def open_stream(data: bytes | bytearray | memoryview) -> tuple[int, int | None, container.Header, Reader]:
    """Check a stream's magic bytes and checksum and read its prefix: ``(flags, seed or None, the adapter
    header, a reader of the body without its checksum, positioned at the first record)``.

    Raises
    ------
    StreamError
        If the bytes are not a rate-aware stream, or are corrupt.
    """
    data = bytes(data)
    if len(data) < 10 or data[:4] != MAGIC:
        raise StreamError("not a rate-aware adapter stream (bad magic bytes)")
    body = data[:-4]
    if struct.unpack("<I", data[-4:])[0] != zlib.crc32(body):
        raise StreamError("rate-aware stream checksum mismatch: the data is corrupt")
    r = Reader(body, 4)
    flags = r.u8("the flags")
    if flags & ~_FLAGS:
        raise StreamError(f"unknown rate-aware flags {flags:#x}")
    seed = r.varint("the seed", limit=_SEED_LIMIT) if flags & 2 else None
    header, hlen = container.read_header(body[r.pos:])
    r.pos += hlen
    return flags, seed, header, r


def decompress(adapter: INRAdapter, data: bytes, *, device: str = "cpu") -> Decoded:
    """Rebuild the network a :func:`write` stream describes (``adapter``: the method that wrote it, with
    its shared state if any; ``header["adapter"]`` of the result is the stream's).

    Raises
    ------
    StreamError
        If the stream is corrupt, truncated, of another method, or describes a network beyond the limits.
    """
    flags, seed, header, r = open_stream(data)
    body = bytes(r.data)
    config = container.check_header(adapter, header)  # checked as the adapter's own streams are
    if header["sinr"] != bool(flags & 1):
        raise StreamError("rate-aware stream flags disagree with its header")
    dec = container.stream_adapter(adapter, config)
    container.check_reference(dec, header)
    shape = tuple(int(s) for s in header["shape"])
    with torch.device("meta"):  # the stored tensors' shapes, nothing allocated
        probe = type(dec)(**config).stored_model(shape)
    names = dec.tensor_names(probe)
    shapes = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    tensors: dict[str, torch.Tensor] = {}
    pending: list[tuple[str, float]] = []
    stds: dict[str, float] = {}
    for k in names:
        if seed is not None:
            stds[k] = float(np.frombuffer(r.take(2, f"the seed scale of {k!r}"), "<f2")[0])
            if not math.isfinite(stds[k]):
                raise StreamError(f"non-finite seed scale for {k!r}")
        kind = r.u8(f"the record kind of {k!r}")
        if kind == 0:
            step = _step(r, k)
            if flags & 4:  # integers in the joint section at the end
                pending.append((k, step))
                continue
            q = decode_values(r.section(what=f"the integers of {k!r}"), math.prod(shapes[k]), repr(k))
            tensors[k] = torch.from_numpy(q.astype(np.float32) * np.float32(step)).reshape(shapes[k])
        elif kind == 1:
            tensors[k] = sparse_tensor_from_bytes(r.section(what=f"the SINR section of {k!r}"), shapes[k], name=k)
        else:
            raise StreamError(f"unknown record kind {kind} for {k!r}")
    if pending:
        q = decode_values(r.section(what="the joint integer section"), sum(math.prod(shapes[k]) for k, _ in pending),
                          "the dense tensors")
        off = 0
        for k, step in pending:
            n = math.prod(shapes[k])
            tensors[k] = torch.from_numpy(q[off:off + n].astype(np.float32) * np.float32(step)).reshape(shapes[k])
            off += n
    elif flags & 4:
        raise StreamError("joint integer section flagged but no dense tensor")
    if r.pos != len(body):
        raise StreamError(f"{len(body) - r.pos} trailing bytes after the stream")
    if seed is not None:
        tensors = {k: tensors[k] + seeded_tensor(seed, i, stds[k], shapes[k]) for i, k in enumerate(names)}
    ref = dec.reference()
    if ref is not None:
        tensors = {k: tensors[k] + ref[k].cpu().float() for k in names}
    model = dec.stored_model(shape)
    model.load_state_dict({**model.state_dict(), **tensors}, strict=True)
    return Decoded(model=model.to(resolve_device(device)), shape=shape, header={**header, "adapter": dec})


def decode(adapter: INRAdapter, data: bytes, *, device: str = "cpu") -> np.ndarray:
    """Stream -> signal (:func:`decompress` + the stream's adapter's ``render``)."""
    dec = decompress(adapter, data, device=device)
    out: np.ndarray = dec.header["adapter"].render(dec.model, dec.shape)
    return out
