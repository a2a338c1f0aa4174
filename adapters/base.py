"""The Adapter protocol, the shared fit/compress/decompress machinery, and the result record.

An adapter wraps one INR method end to end (docs/adapters.md):

1. ``signal_from_image(image)`` -> :class:`Signal`: coordinates and values in the method's conventions.
2. ``fit(signal)`` -> ``(model, FitLog)``: the method's network fitted to the signal.
3. ``compress(model, signal, sinr=None | SINROptions, finetune_steps=n)`` -> ``bytes``: the method's own
   storage (COIN: half precision; INRIC: per-tensor 8-bit + Brotli), or, with ``sinr``, the tensors the
   method marks for SINR coded as :class:`sinr_codecs.sparse.SparseCode` (rows = neurons) first.
   Either way the same number of fine-tuning steps follows, through the quantizer that the stored values
   will meet (straight-through); with SINR only the sparse values (support and dictionary fixed) and the
   tensors SINR leaves alone are trained.
4. ``decompress(data)`` -> :class:`Decoded` (model + signal shape), ``render(model, shape)`` -> array.

:class:`INRAdapter` implements 2-4 once for any coordinate network; a method subclasses it and supplies
the network, the coordinate conventions, which tensors SINR codes and how the rest are stored.
A third-party adapter may instead implement :class:`Adapter` from scratch.

Stream layout (``MAGIC`` = ``b"SIA1"``; varint = unsigned LEB128; every byte is counted in ``bpp``)::

    magic[4] | varint n, method name[n] | varint n, config[n] | varint ndim, ndim varints: signal shape
    | u8 flags | (flags & 2: reference fingerprint[4]) | per tensor, in state_dict order: record
    | varint m, brotli(integers)[m] | u32 CRC-32 of everything before it

``config`` is the compact JSON list of the adapter's configuration values in sorted-key order (the
architecture; the decoder knows the keys). Flag 1: SINR was used, so the tensors the adapter marks for
SINR are ``s`` records; the others use the adapter's storage: ``h`` float16 or ``f`` float32 (raw,
little-endian), ``q`` u8 bits + f32 step (the integers, offset to unsigned, go to the shared Brotli
section at the end), ``s`` varint length + a SparseCode stream (docs/format.md). Flag 2: stored values
are relative to reference weights (INRIC's meta-learned initialisation), identified by the first 4 bytes
of their SHA-256 fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import brotli
import numpy as np
import torch
from sinr_codecs.cursor import Cursor, varint
from sinr_codecs.errors import StreamError
from torch import nn

from . import nets

__all__ = [
    "MAGIC",
    "MAX_FREQUENCY",
    "MAX_STREAM_PARAMETERS",
    "MAX_STREAM_TENSORS",
    "Adapter",
    "CompressionSetup",
    "Decoded",
    "INRAdapter",
    "LoadReport",
    "Reader",
    "Result",
    "SINROptions",
    "Signal",
    "StreamError",
    "config_number",
    "fake_half",
    "fake_uniform",
    "from_stored_uniform",
    "image_array",
    "inflate",
    "map_state_dict",
    "read_quantizer",
    "read_state_dict",
    "sparse_tensor_from_bytes",
    "stored_uniform",
    "uniform_dequantize",
    "uniform_quantize",
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


# An adapter stream that is truncated, corrupt, or written for another method / reference raises the
# core's StreamError (a ValueError), like a bad SINR stream does.


# --------------------------------------------------------------------------------------------------
# options, signals, results
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SINROptions:
    """How SINR codes the tensors an adapter hands it (passed to ``SparseCode.fit`` / ``to_bytes``).

    Parameters
    ----------
    sparsity : int or float, default 0.25
        Nonzeros per vector: an int count, or a float fraction in (0, 1) of the vector length ``k1``.
    dictionary_ratio : float, default 8
        ``k2 = dictionary_ratio * k1`` (larger helped in our measurements; see docs/adapters.md).
    value_bits : int, default 8
        Bits per stored sparse value (uniform quantizer of the core).
    seed : int, default 0
        Dictionary seed of the first coded tensor; the ``i``-th coded tensor uses ``seed + i``.
    layout : {"auto", "rows", "flat", "blocks"}, default "auto"
        Vector layout (``"auto"``: rows, or the whole matrix as one vector when the rows are shorter
        than 50; see :mod:`sinr_codecs.layout`).
    block_size : int or None
        Vector length of the ``"blocks"`` layout.
    index_coding : str, default "delta"
        Index coding of the core (``"delta"``: sorted gaps).
    entropy : str, default "brotli"
        Entropy back end of the core (``"brotli"``, ``"rans"``, ``"raw"``).
    device : str, default "auto"
        Where OMP runs.
    """

    sparsity: int | float = 0.25
    dictionary_ratio: float = 8.0
    value_bits: int = 8
    seed: int = 0
    layout: str = "auto"
    block_size: int | None = None
    index_coding: str = "delta"
    entropy: str = "brotli"
    device: str = "auto"

    def __post_init__(self) -> None:
        s = self.sparsity
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise ValueError(f"sparsity must be an int count or a float fraction, got {s!r}")
        if isinstance(s, float) and not 0.0 < s < 1.0:
            raise ValueError(f"a fractional sparsity must lie in (0, 1), got {s}")
        if isinstance(s, int) and s < 1:
            raise ValueError(f"sparsity must be >= 1, got {s}")
        if not self.dictionary_ratio >= 1.0:
            raise ValueError(f"dictionary_ratio must be >= 1, got {self.dictionary_ratio}")
        if not 2 <= int(self.value_bits) <= 16:
            raise ValueError(f"value_bits must be in 2..16, got {self.value_bits}")
        if self.layout not in ("auto", "rows", "flat", "blocks"):
            raise ValueError(f"layout must be 'auto', 'rows', 'flat' or 'blocks', got {self.layout!r}")
        from sinr_codecs.entropy import BACKENDS, INDEX_CODINGS

        if self.entropy not in BACKENDS:
            raise ValueError(f"entropy must be one of {sorted(BACKENDS)}, got {self.entropy!r}")
        if self.index_coding not in INDEX_CODINGS:
            raise ValueError(f"index_coding must be one of {sorted(INDEX_CODINGS)}, got {self.index_coding!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Signal:
    """A sampled signal in a method's conventions.

    Attributes
    ----------
    coords : torch.Tensor
        ``(N, d)`` float32 coordinates.
    values : torch.Tensor
        ``(N, c)`` float32 values in the method's range (``value_range``).
    shape : tuple of int
        Grid shape followed by channels, e.g. ``(H, W, 3)``; ``prod(shape[:-1]) == N``.
    value_range : tuple of float
        ``(lo, hi)`` of the method's value range (``(0, 1)`` for COIN, ``(-1, 1)`` for INRIC).
    kind : str
        ``"image"`` (others, e.g. ``"audio"`` or ``"volume"``, follow the same layout).
    name : str
        Label for result tables.
    """

    coords: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]
    value_range: tuple[float, float] = (0.0, 1.0)
    kind: str = "image"
    name: str = ""

    @property
    def num_points(self) -> int:
        return int(self.coords.shape[0])

    @property
    def peak(self) -> float:
        return float(self.value_range[1] - self.value_range[0])

    def to(self, device: torch.device | str) -> Signal:
        return Signal(self.coords.to(device), self.values.to(device), self.shape, self.value_range,
                      self.kind, self.name)

    def unit_values(self) -> torch.Tensor:
        """Values mapped to [0, 1], shape ``self.shape``."""
        lo, hi = self.value_range
        return ((self.values - lo) / (hi - lo)).reshape(self.shape)


@dataclass
class Decoded:
    """What :meth:`Adapter.decompress` returns."""

    model: nn.Module
    shape: tuple[int, ...]
    header: dict[str, Any]


@dataclass(kw_only=True)
class Result:
    """One rate point: one method, with or without SINR, on one signal.

    ``bytes`` is ``len()`` of the stream written; ``bpp = 8 * bytes / pixels``; ``psnr`` is measured on
    the decoded signal (clamped to [0, 1], rounded to 8 bits) against the original 8-bit signal;
    ``psnr_fitted`` the same for the uncompressed fitted model.
    """

    method: str
    with_sinr: bool
    image: str
    config: dict[str, Any]
    sinr: dict[str, Any] | None
    bytes: int
    pixels: int
    bpp: float
    psnr: float
    psnr_fitted: float
    fit_seconds: float
    encode_seconds: float
    decode_seconds: float
    steps: int
    finetune_steps: int
    device: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Curve label: ``"coin"`` or ``"coin+sinr"``."""
        return f"{self.method}+sinr" if self.with_sinr else self.method

    @property
    def rate_point(self) -> str:
        """The rate point's knob and value, e.g. ``"width=32"`` (older records only hold ``width``)."""
        return self.extra.get("point") or f"width={self.extra.get('width')}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe nested dict (``label`` included)."""
        d = asdict(self)
        d["label"] = self.label
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict` (``label`` is ignored)."""
        return cls(**{k: v for k, v in d.items() if k != "label"})

    def to_row(self) -> dict[str, Any]:
        """Flat dict for CSV: ``config``, ``sinr`` and ``extra`` as compact JSON strings."""
        d = self.to_dict()
        for key in ("config", "sinr", "extra"):
            d[key] = json.dumps(d[key], sort_keys=True, separators=(",", ":"))
        return d


@runtime_checkable
class Adapter(Protocol):
    """What every INR-method adapter provides (found through the ``sinr_codecs.adapters`` group)."""

    name: ClassVar[str]

    def config(self) -> dict[str, Any]: ...

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal: ...

    def fit(self, signal: Signal, *, steps: int, lr: float = ..., batch_size: int | None = ...,
            device: str = ..., progress: bool | None = ..., seed: int = ...) -> tuple[nn.Module, nets.FitLog]: ...

    def compress(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = ...,
                 finetune_steps: int = ..., finetune_lr: float = ..., progress: bool | None = ...) -> bytes: ...

    def decompress(self, data: bytes, *, device: str = ...) -> Decoded: ...

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray: ...


def image_array(image: np.ndarray, channels: int) -> np.ndarray:
    """An image as float32 ``(H, W, C)`` in [0, 1] (uint8 scaled; grey replicated to 3 channels if asked)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    if img.shape[-1] == 1 and channels == 3:
        img = np.repeat(img, 3, axis=-1)
    if img.shape[-1] != channels:
        raise ValueError(f"image has {img.shape[-1]} channels, the adapter expects {channels}")
    if not np.isfinite(img).all() or img.min() < 0.0 or img.max() > 1.0:
        raise ValueError("image values must be finite and lie in [0, 1] (or be uint8)")
    return img


# --------------------------------------------------------------------------------------------------
# method-side quantizers (the core's quantizer is used for SINR values)
# --------------------------------------------------------------------------------------------------

def uniform_quantize(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """Symmetric per-tensor uniform quantizer (INRIC / AIMET style).

    ``step = max|t| / (2**(bits-1) - 1)`` (1 for an all-zero tensor), ``q = round(t / step)`` clamped to
    ``+-(2**(bits-1) - 1)``. Returns ``(q as int64, step)`` with ``step`` a float32-representable float.
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    amax = float(t.detach().abs().max()) if t.numel() else 0.0
    step = float(np.float32(amax / qmax)) if amax > 0 else 1.0
    if step == 0.0 or not math.isfinite(step):
        step = 1.0
    q = torch.clamp(torch.round(t.detach() / step), -qmax, qmax).to(torch.int64)
    return q, step


def uniform_dequantize(q: torch.Tensor, step: float) -> torch.Tensor:
    """Inverse of :func:`uniform_quantize` (float32)."""
    return q.to(torch.float32) * np.float32(step)


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


def fake_uniform(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Straight-through fake quantization: forward :func:`uniform_quantize` + dequantize, identity grad."""
    q, step = uniform_quantize(t, bits)
    return t + (uniform_dequantize(q, step).to(t.device) - t).detach()


def fake_half(t: torch.Tensor) -> torch.Tensor:
    """Straight-through rounding to float16 (COIN's storage)."""
    return t + (t.detach().half().float() - t).detach()


# --------------------------------------------------------------------------------------------------
# stream helpers (the container's building blocks; adapters that write their own records use them)
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

    Every read past the end, varint longer than 9 bytes or count above its limit raises
    :class:`StreamError`.

    Parameters
    ----------
    data : bytes-like
        The stream (for an adapter stream: without its trailing CRC-32, see :meth:`INRAdapter.open_stream`).
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


def config_number(config: Mapping[str, Any], key: str, *, lo: float | None = None, hi: float | None = None,
                  above: bool = False) -> Any:
    """``config[key]`` if it is a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``above``), else
    :class:`StreamError` naming the field (for the range checks of :meth:`INRAdapter.stream_model_size`).

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


def _check_config_value(key: str, value: Any, like: Any) -> None:
    """``value`` (read from a stream) has the JSON type of ``like`` (the decoder's own configuration value)."""
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
                _check_config_value(f"{key}[{i}]", v, w)
    elif isinstance(like, str):
        ok = isinstance(value, str) and len(value) <= 256
    else:
        ok = like is None and value is None
    if not ok:
        kind = "an integer" if isinstance(like, int) and not isinstance(like, bool) else type(like).__name__
        raise StreamError(f"stream configuration: {key}={value!r:.80} is not {kind} (or is out of range)")


def _refuse_constant(name: str) -> None:
    raise StreamError(f"corrupt stream header: non-finite number {name} in the configuration")


# --------------------------------------------------------------------------------------------------
# SINR-coded tensors
# --------------------------------------------------------------------------------------------------

def _sparse_code_class():
    try:
        from sinr_codecs.sparse import SparseCode
    except ImportError as exc:  # pragma: no cover - only before the core lands
        raise RuntimeError("SINR coding needs sinr_codecs.sparse.SparseCode, which is not available: "
                           f"{exc}") from exc
    return SparseCode


def _replace(code: Any, **changes: Any) -> Any:
    """A shallow copy of a SparseCode with some attributes replaced (works for frozen dataclasses too)."""
    other = copy.copy(code)
    for key, value in changes.items():
        object.__setattr__(other, key, value)
    return other


def _with_values(code: Any, values: torch.Tensor) -> Any:
    """A shallow copy of a SparseCode with other values (support, dictionary and layout shared)."""
    return _replace(code, values=values)


class _STEQuantize(torch.autograd.Function):
    """Forward: the core's value quantizer; backward: identity."""

    @staticmethod
    def forward(ctx, values, code, bits):  # noqa: D401
        return _with_values(code, values.detach()).quantized(bits).values.to(values)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def _fake(t: torch.Tensor, spec: tuple) -> torch.Tensor:
    """Straight-through fake quantization of ``t`` to the storage ``spec`` of :meth:`INRAdapter.storage`."""
    if spec[0] == "h":
        return fake_half(t)
    if spec[0] == "f":
        return t
    if spec[0] == "q":
        return fake_uniform(t, int(spec[1]))
    raise ValueError(f"unknown storage {spec!r}")


def sparse_tensor_from_bytes(blob: bytes, shape: Sequence[int], *, name: str | None = None) -> torch.Tensor:
    """Decode one SINR section: a :class:`sinr_codecs.sparse.SparseCode` stream -> the tensor it codes.

    Parameters
    ----------
    blob : bytes
        The SparseCode stream (docs/format.md), as written by :meth:`CompressionSetup.code_bytes`.
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
        code = _sparse_code_class().from_bytes(blob)
    except StreamError:
        raise
    except ValueError as exc:
        raise StreamError(f"bad {what}: {exc}") from exc
    t = code.reconstruct().detach().float()
    if tuple(t.shape) != tuple(shape):
        raise StreamError(f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    return t.cpu()


@dataclass
class CompressionSetup:
    """What :meth:`INRAdapter.prepare_compression` returns: a model's stored tensors, SINR-coded where
    asked, and the leaf tensors that fine-tuning trains before the stream is written.

    All tensors are float32 on the model's device; dicts are in stream order.

    Attributes
    ----------
    names : list of str
        The stored tensors in stream order (:meth:`INRAdapter.tensor_names`).
    state : dict of str to torch.Tensor
        Copies of the model's stored tensors, each of its state_dict shape.
    reference : dict of str to torch.Tensor, or None
        The adapter's reference weights (:meth:`INRAdapter.reference`); stored and SINR-coded values
        are ``state - reference``.
    codes : dict of str to SparseCode
        The SINR code (OMP fit) of each tensor of :meth:`INRAdapter.sinr_tensor_names`, when SINR is
        used; empty otherwise. Its ``values`` ``(n_vectors, s_max)`` are ``trainable[name]``.
    trainable : dict of str to torch.Tensor
        One leaf tensor (``requires_grad=True``) per stored tensor: the sparse values of a SINR-coded
        one, else the stored values (``state - reference``, the state_dict shape).
    specs : dict of str to tuple
        The storage (:meth:`INRAdapter.storage`) of every tensor SINR leaves alone.
    sinr : SINROptions or None
        The options the codes were fitted with.
    device : torch.device
        The model's device.
    omp_seconds : float
        Wall-clock seconds of the OMP fits (device synchronised).
    """

    names: list[str]
    state: dict[str, torch.Tensor]
    reference: dict[str, torch.Tensor] | None
    codes: dict[str, Any]
    trainable: dict[str, torch.Tensor]
    specs: dict[str, tuple]
    sinr: SINROptions | None
    device: torch.device
    omp_seconds: float

    @property
    def value_bits(self) -> int:
        """Bits per stored sparse value (0 without SINR)."""
        return int(self.sinr.value_bits) if self.sinr is not None else 0

    def tensor(self, name: str, *, quantized: bool = True) -> torch.Tensor:
        """Tensor ``name`` as the decoder will rebuild it, differentiable w.r.t. ``trainable[name]``.

        A SINR-coded tensor is reconstructed from its trainable sparse values (support and dictionary
        fixed), the others are their trainable values; with ``quantized`` both go through the quantizer
        the stored values will meet, straight-through (the core's value quantizer, or the ``specs``
        storage). The reference, if any, is added back. Shape: the state_dict shape.
        """
        if name in self.codes:
            code, v = self.codes[name], self.trainable[name]
            if quantized:
                v = _STEQuantize.apply(v, code, self.value_bits)
            t = code.reconstruct(v).to(self.device)
        else:
            t = self.trainable[name]
            if quantized:
                t = _fake(t, self.specs[name])
        return t + self.reference[name] if self.reference is not None else t

    def code_bytes(self, name: str) -> bytes:
        """The SINR section of the SINR-coded tensor ``name`` with its current (fine-tuned) values: a
        :class:`sinr_codecs.sparse.SparseCode` stream (``value_bits``, entropy and index coding of
        :attr:`sinr`); read back by :func:`sparse_tensor_from_bytes`."""
        code = self.codes[name]
        code = _replace(code, values=self.trainable[name].detach().cpu(), indices=code.indices.cpu())
        return code.to_bytes(value_bits=self.value_bits, entropy=self.sinr.entropy,
                             index_coding=self.sinr.index_coding)


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """16 hex digits of SHA-256 over names and float32 little-endian bytes, in the mapping's order."""
    h = hashlib.sha256()
    for name, t in tensors.items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# the shared implementation
# --------------------------------------------------------------------------------------------------

class INRAdapter:
    """Shared implementation of :class:`Adapter` for coordinate networks (subclass and fill the hooks).

    Hooks a method defines:

    - ``name`` (class attribute) and :meth:`config` (JSON-safe constructor arguments).
    - :meth:`build_model`: a freshly initialised network (``torch.manual_seed`` is set by the caller).
    - :meth:`signal_from_image` and :meth:`values_to_unit`: the method's coordinate / value conventions.
    - :meth:`coordinates`: coordinates for a signal shape (used by :meth:`render`).
    - :meth:`sinr_tensor_names`: which tensors SINR codes when asked; :meth:`sinr_layout`: their vector
      layout (default: the :class:`SINROptions` layout).
    - :meth:`storage`: how the method itself stores one tensor: ``("h",)`` float16, ``("f",)`` float32 or
      ``("q", bits)`` uniform integers (Brotli-coded together).
    - :meth:`reference`: tensors that stored values are relative to (INRIC's ``theta0``), or ``None``.
    - :meth:`fit_regularizer`: an extra loss during fitting (INRIC's L1 on ``theta - theta0``), or ``None``.

    A method with its own records (COIN++, SHACIRA) overrides :meth:`compress_with_info` and
    :meth:`decompress`, and builds them from :meth:`prepare_compression` (OMP fit and trainable tensors),
    :meth:`finetune_learning_rate`, :meth:`write_header` / :meth:`finish_stream`, :meth:`open_stream`,
    :func:`write_section` / :class:`Reader` and :func:`sparse_tensor_from_bytes`.
    """

    name: ClassVar[str] = "inr"
    default_lr: ClassVar[float] = 1e-3
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-3

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        raise NotImplementedError

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def sinr_tensor_names(self, model: nn.Module) -> list[str]:
        raise NotImplementedError

    def sinr_layout(self, name: str, sinr: SINROptions) -> tuple[str, int | None]:
        """``(layout, block_size)`` with which SINR codes tensor ``name`` (see :class:`SINROptions`)."""
        return sinr.layout, sinr.block_size

    def storage(self, name: str, tensor: torch.Tensor) -> tuple:
        return ("h",)

    def reference(self) -> dict[str, torch.Tensor] | None:
        return None

    def fit_regularizer(self, model: nn.Module) -> Any:
        return None

    def with_config(self, config: Mapping[str, Any]) -> INRAdapter:
        """An adapter of this class for a stream's configuration (decoding); same reference weights."""
        return type(self)(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ---- shared ----------------------------------------------------------------------------------
    def tensor_names(self, model: nn.Module) -> list[str]:
        """The stored tensors, in stream order (the model's state_dict order)."""
        return list(model.state_dict().keys())

    def fit(self, signal: Signal, *, steps: int, lr: float | None = None, batch_size: int | None = None,
            device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: nn.Module | None = None) -> tuple[nn.Module, nets.FitLog]:
        """Fit a fresh network (seeded by ``seed``) or continue fitting ``model``; see :func:`nets.fit`."""
        dev = nets.resolve_device(device)
        if model is None:
            torch.manual_seed(seed)
            model = self.build_model()
        model = model.to(dev)
        sig = signal.to(dev)
        reg = self.fit_regularizer(model)
        gen = torch.Generator().manual_seed(seed)
        log = nets.fit(model, list(model.parameters()), sig.coords, sig.values, steps=steps,
                       lr=self.default_lr if lr is None else lr, batch_size=batch_size, regularizer=reg,
                       value_peak=signal.peak, progress=progress, desc=f"{self.name} fit", generator=gen)
        return model, log

    @torch.no_grad()
    def predict(self, model: nn.Module, coords: torch.Tensor, *, chunk: int = 1 << 16) -> torch.Tensor:
        dev = next(model.parameters()).device
        outs = [model(coords[i:i + chunk].to(dev)) for i in range(0, coords.shape[0], chunk)]
        return torch.cat(outs).float()

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray:
        """The signal decoded by ``model`` on the grid of ``shape``, mapped to [0, 1] (not clamped)."""
        shape = tuple(int(s) for s in shape)
        out = self.predict(model, self.coordinates(shape[:-1]))
        return self.values_to_unit(out).reshape(shape).cpu().numpy()

    def psnr(self, model: nn.Module, signal: Signal) -> float:
        """PSNR of ``model`` on ``signal`` after clamping to [0, 1] and rounding to 8 bits."""
        out = self.predict(model, signal.coords)
        return nets.psnr_8bit(self.values_to_unit(out), self.values_to_unit(signal.values.to(out.device)))

    # compress ------------------------------------------------------------------------------------
    def prepare_compression(self, model: nn.Module, sinr: SINROptions | None) -> CompressionSetup:
        """The compression set-up shared by every adapter: SINR's OMP fit and the tensors to fine-tune.

        Copies the stored tensors (:meth:`tensor_names`) of ``model`` as float32 on its device, makes
        them relative to :meth:`reference` (if any), fits a :class:`sinr_codecs.sparse.SparseCode` to each
        tensor of :meth:`sinr_tensor_names` (with ``sinr``; the ``i``-th in stream order with seed
        ``sinr.seed + i`` and the layout of :meth:`sinr_layout`), and makes one trainable leaf tensor per
        stored tensor: the sparse values of a SINR-coded one, the stored values of the others.

        Parameters
        ----------
        model : nn.Module
            The fitted network (not modified).
        sinr : SINROptions or None
            ``None``: nothing is SINR-coded.

        Returns
        -------
        CompressionSetup
            Codes, trainable tensors, storage specs and the OMP time (``omp_seconds``).
        """
        dev = next(model.parameters()).device
        names = self.tensor_names(model)
        stored = set(names)
        state = {k: v.detach().to(dev, torch.float32).clone() for k, v in model.state_dict().items() if k in stored}
        ref = self.reference()
        if ref is not None:
            ref = {k: ref[k].to(dev, torch.float32) for k in names}
        coded = {k: state[k] - ref[k] if ref is not None else state[k] for k in names}

        sinr_names = set(self.sinr_tensor_names(model)) if sinr is not None else set()
        codes: dict[str, Any] = {}
        t0 = time.perf_counter()
        if sinr_names:
            SparseCode = _sparse_code_class()
            for i, k in enumerate(n for n in names if n in sinr_names):
                layout, block_size = self.sinr_layout(k, sinr)
                codes[k] = SparseCode.fit(coded[k], sparsity=sinr.sparsity,
                                          dictionary_ratio=sinr.dictionary_ratio, seed=sinr.seed + i,
                                          layout=layout, block_size=block_size, device=sinr.device)
        nets.synchronize(dev)
        omp_seconds = time.perf_counter() - t0

        # trainable tensors: sparse values of SINR-coded tensors, the coded tensors of the others
        trainable: dict[str, torch.Tensor] = {}
        for k in names:
            if k in codes:
                v = codes[k].values.detach().to(dev, torch.float32).clone()
                codes[k] = _replace(codes[k], values=v, indices=codes[k].indices.to(dev))
                trainable[k] = v.requires_grad_(True)
            else:
                trainable[k] = coded[k].clone().requires_grad_(True)
        specs = {k: self.storage(k, state[k]) for k in names if k not in codes}
        return CompressionSetup(names=names, state=state, reference=ref, codes=codes, trainable=trainable,
                                specs=specs, sinr=sinr, device=dev, omp_seconds=omp_seconds)

    def finetune_learning_rate(self, *, with_sinr: bool, finetune_lr: float | None = None,
                               sinr_lr: float | None = None) -> float:
        """The fine-tuning learning rate: ``sinr_lr`` with SINR, ``finetune_lr`` without; ``None`` means
        the adapter's ``default_sinr_lr`` / ``default_finetune_lr``."""
        if with_sinr:
            return self.default_sinr_lr if sinr_lr is None else float(sinr_lr)
        return self.default_finetune_lr if finetune_lr is None else float(finetune_lr)

    def compress(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                 finetune_steps: int = 0, finetune_lr: float | None = None, sinr_lr: float | None = None,
                 schedule: str = "cosine", batch_size: int | None = None,
                 progress: bool | None = None) -> bytes:
        """Write ``model`` as this method stores it, optionally with SINR (see the module docstring).

        Parameters
        ----------
        model : nn.Module
            The fitted network (not modified).
        signal : Signal
            The signal it was fitted to (fine-tuning target; its shape goes into the stream).
        sinr : SINROptions or None
            ``None``: the method's own storage only. Otherwise the tensors of :meth:`sinr_tensor_names`
            are SINR-coded first.
        finetune_steps : int, default 0
            Adam steps through the straight-through quantizers before writing (give both paths the same).
        finetune_lr, sinr_lr : float or None
            Learning rate without / with SINR (None: the adapter's ``default_finetune_lr`` /
            ``default_sinr_lr``). With SINR every trainable tensor (sparse values and the tensors SINR
            leaves alone) uses ``sinr_lr``.
        schedule : {"cosine", "constant"}, default "cosine"
        batch_size : int or None
            Mini-batch size of the fine-tuning (None: full batch, and the best step is kept).
        """
        return self.compress_with_info(model, signal, sinr=sinr, finetune_steps=finetune_steps,
                                       finetune_lr=finetune_lr, sinr_lr=sinr_lr, schedule=schedule,
                                       batch_size=batch_size, progress=progress)[0]

    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None,
                           sinr_lr: float | None = None, schedule: str = "cosine",
                           batch_size: int | None = None, progress: bool | None = None
                           ) -> tuple[bytes, dict[str, Any]]:
        """:meth:`compress` plus a dict of what happened (OMP and fine-tuning time, byte split, the
        fine-tuned PSNR through the straight-through quantizers)."""
        info: dict[str, Any] = {}
        setup = self.prepare_compression(model, sinr)
        info["omp_seconds"] = setup.omp_seconds
        dev, names, codes, ref = setup.device, setup.names, setup.codes, setup.reference

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, {k: setup.tensor(k) for k in names}, (x,))

        sig = signal.to(dev)
        t1 = time.perf_counter()
        lr = self.finetune_learning_rate(with_sinr=bool(codes), finetune_lr=finetune_lr, sinr_lr=sinr_lr)
        log = nets.fit(forward, list(setup.trainable.values()), sig.coords, sig.values, steps=finetune_steps, lr=lr,
                       schedule=schedule, batch_size=batch_size, value_peak=signal.peak, progress=progress,
                       desc=f"{self.name}{'+sinr' if codes else ''} fine-tune")
        info["finetune_seconds"] = time.perf_counter() - t1
        with torch.no_grad():
            out = self.values_to_unit(forward(sig.coords))
            info["psnr_finetuned"] = nets.psnr_8bit(out, self.values_to_unit(sig.values))

        # write
        buf = io.BytesIO()
        hlen = self.write_header(buf, signal.shape, sinr=bool(codes),
                                 ref=None if ref is None else fingerprint(ref))
        ints: list[np.ndarray] = []
        sinr_bytes = 0
        with torch.no_grad():
            for k in names:
                if k in codes:
                    sinr_bytes += write_section(buf, setup.code_bytes(k))
                    continue
                t = setup.trainable[k].detach().cpu().float()
                spec = setup.specs[k]
                if spec[0] == "h":
                    buf.write(t.numpy().astype("<f2").tobytes())
                elif spec[0] == "f":
                    buf.write(t.numpy().astype("<f4").tobytes())
                elif spec[0] == "q":
                    record, q = stored_uniform(t, int(spec[1]))
                    buf.write(record)
                    ints.append(q)
                else:  # pragma: no cover - a hook bug
                    raise ValueError(f"unknown storage {spec!r} for tensor {k!r}")
        payload = brotli.compress(b"".join(a.tobytes() for a in ints), quality=11) if ints else b""
        int_bytes = write_section(buf, payload)
        data = self.finish_stream(buf)
        info.update(header_bytes=hlen, sinr_bytes=sinr_bytes, int_bytes=int_bytes, checksum_bytes=4,
                    finetune_log=log.to_dict(), sinr_tensors=sorted(codes))
        return data, info

    # stream header and checksum ----------------------------------------------------------------
    def write_header(self, buf: io.BytesIO, shape: Sequence[int], *, sinr: bool, ref: str | None) -> int:
        """Write the stream header (module docstring) and return its length in bytes.

        Parameters
        ----------
        buf : io.BytesIO
            An empty buffer: the stream being written.
        shape : sequence of int
            The signal's shape (grid shape followed by channels).
        sinr : bool
            Whether SINR coded the tensors of :meth:`sinr_tensor_names` (header flag 1).
        ref : str or None
            Hex fingerprint of the weights the stored values are relative to (its first 8 hex digits
            are stored, flag 2), or ``None``.
        """
        n0 = buf.tell()
        buf.write(MAGIC)
        for blob in (self.name.encode("ascii"), _json_dumps([v for _, v in sorted(self.config().items())])):
            write_section(buf, blob)
        write_varint(buf, len(shape))
        for d in shape:
            write_varint(buf, int(d))
        buf.write(bytes([(1 if sinr else 0) | (2 if ref is not None else 0)]))
        if ref is not None:
            buf.write(bytes.fromhex(ref[:8]))
        return buf.tell() - n0

    @staticmethod
    def finish_stream(buf: io.BytesIO) -> bytes:
        """Append the CRC-32 of everything written (u32, little-endian) and return the whole stream.

        :meth:`open_stream` checks and strips it.
        """
        buf.write(struct.pack("<I", zlib.crc32(buf.getvalue())))
        return buf.getvalue()

    @staticmethod
    def read_header(data: bytes) -> tuple[dict[str, Any], int]:
        """Parse the stream header: ``({"method", "config" (list), "shape", "sinr", "ref"}, offset)``."""
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

    # decompress ----------------------------------------------------------------------------------
    def open_stream(self, data: bytes) -> tuple[dict, int, bytes, dict]:
        """Check a stream's magic bytes and checksum, then its header: method, configuration
        (:meth:`check_stream_config`: types, ranges, network size) and signal shape (at most
        :data:`MAX_STREAM_PARAMETERS` values, :meth:`check_stream_shape`). Nothing is built.

        Returns ``(header, pos, body, config)``: the parsed header, the offset just past it, the stream
        without its trailing CRC-32, and the configuration as a dict keyed like :meth:`config`.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if data[:4] != MAGIC:
            raise StreamError("not an INR adapter stream (bad magic bytes)")
        if len(data) < 8 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
            raise StreamError("stream checksum mismatch: the bytes are corrupt or truncated")
        header, pos = self.read_header(data[:-4])  # the checksum first: a corrupt header says so
        if header["method"] != self.name:
            raise StreamError(f"stream was written by adapter {header['method']!r}, not {self.name!r}")
        own = self.config()
        keys = sorted(own)
        if len(header["config"]) != len(keys):
            raise StreamError(f"stream configuration has {len(header['config'])} entries, {self.name!r} "
                              f"expects {len(keys)}: written by another version of the adapter?")
        config = dict(zip(keys, header["config"]))
        self.check_stream_config(config)
        shape = header["shape"]
        if len(shape) < 2 or min(shape) < 1 or math.prod(shape) > MAX_STREAM_PARAMETERS:
            raise StreamError(f"signal shape {shape} is empty or exceeds the safety limit of "
                              f"{MAX_STREAM_PARAMETERS} values")
        self.check_stream_shape(shape, config)
        return header, pos, data[:-4], config

    def check_stream_config(self, config: Mapping[str, Any]) -> None:
        """Refuse a stream's configuration before anything is built from it (called by :meth:`open_stream`).

        Every value must have the JSON type of this adapter's own :meth:`config` value (integers are
        integers, floats are finite numbers, lists have the same length), then
        :meth:`stream_model_size` checks ranges and sizes the network: at most
        :data:`MAX_STREAM_TENSORS` stored tensors and :data:`MAX_STREAM_PARAMETERS` parameters.

        Raises
        ------
        StreamError
            If a value is of the wrong type, out of range, or describes a network beyond the limits.
        """
        own = self.config()
        for key, value in config.items():
            _check_config_value(key, value, own[key])
        tensors, params = self.stream_model_size(config)
        if tensors > MAX_STREAM_TENSORS or params > MAX_STREAM_PARAMETERS:
            raise StreamError(f"the stream's network ({tensors} tensors, {params} parameters) exceeds the safety "
                              f"limit of {MAX_STREAM_TENSORS} tensors and {MAX_STREAM_PARAMETERS} parameters")

    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(stored tensors, parameters)`` of the network a stream's configuration describes.

        A method overrides this with a count from the configuration alone, after checking the ranges
        the constructor does not (:func:`config_number`), so that a hostile configuration is refused
        without building anything. This default builds the network on the meta device (no memory, but
        time proportional to its number of modules).

        Parameters
        ----------
        config : mapping
            The stream's configuration, keyed like :meth:`config`, of the right JSON types.

        Raises
        ------
        StreamError
            If no network of this adapter has that configuration.
        """
        try:
            with torch.device("meta"):
                probe = type(self)(**config).build_model()
        except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
            if isinstance(exc, StreamError):
                raise
            raise StreamError(f"bad configuration in stream: {exc}") from exc
        return len(self.tensor_names(probe)), sum(p.numel() for p in probe.parameters())

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """Refuse (:class:`StreamError`) a signal shape that a network of ``config`` cannot render.

        Called by :meth:`open_stream` once the shape is known to be non-empty and within the safety
        limit; the default accepts any such shape.
        """

    def stream_adapter(self, config: Mapping[str, Any]) -> INRAdapter:
        """:meth:`with_config` for a configuration read from a stream (checked by :meth:`open_stream`):
        a constructor's refusal becomes a :class:`StreamError`."""
        try:
            return self.with_config(config)
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, StreamError):
                raise
            raise StreamError(f"bad configuration in stream: {exc}") from exc

    def decompress(self, data: bytes, *, device: str = "cpu") -> Decoded:
        """Rebuild the model a stream describes (needs this adapter's reference weights, if any).

        Every record is located and its length checked against the network's tensor shapes (found on
        the meta device) before the network is built or any tensor allocated.
        """
        header, pos, data, config = self.open_stream(data)
        n_tensors, _ = self.stream_model_size(config)
        if n_tensors >= len(data) - pos:  # every tensor record and the integer section take a byte at least
            raise StreamError(f"stream truncated: its network stores {n_tensors} tensors, only {len(data) - pos} "
                              "bytes follow the header")
        adapter = self.stream_adapter(config)
        ref = adapter.reference()
        if (header["ref"] is None) != (ref is None) or (ref is not None and header["ref"] != fingerprint(ref)[:8]):
            raise StreamError("the stream's reference weights (meta-learned initialisation) differ from this "
                              "adapter's: decode with the adapter (and init file) that wrote it")
        with torch.device("meta"):  # names, shapes and storage of the tensors, nothing allocated
            probe = type(adapter)(**config).build_model()
        names = adapter.tensor_names(probe)
        meta = probe.state_dict()
        shapes = {k: tuple(meta[k].shape) for k in names}
        sinr_names = set(adapter.sinr_tensor_names(probe)) if header["sinr"] else set()
        codecs = ["s" if k in sinr_names else adapter.storage(k, meta[k])[0] for k in names]

        # locate every record (lengths checked, nothing decoded)
        r = Reader(data, pos)
        records: list[tuple[str, str, Any]] = []
        for k, c in zip(names, codecs):
            numel = math.prod(shapes[k])
            if c in ("h", "f"):
                records.append((k, c, r.take((2 if c == "h" else 4) * numel, f"tensor {k!r}")))
            elif c == "q":
                records.append((k, c, read_quantizer(r.take(5, f"the quantizer of {k!r}"), k)))
            elif c == "s":
                records.append((k, c, r.section(what=f"the SINR section of {k!r}")))
            else:
                raise StreamError(f"unknown tensor codec {c!r}")
        payload = r.section(what="the integer section")
        if r.pos != len(data):
            raise StreamError(f"{len(data) - r.pos} trailing bytes after the stream")
        pending = [(k, *rec) for k, c, rec in records if c == "q"]
        expected = sum(math.prod(shapes[k]) * (1 if b <= 8 else 2) for k, b, _ in pending)
        if not pending and payload:
            raise StreamError("unexpected integer section")
        raw = inflate(payload, expected, "integer section") if pending else b""

        # decode (allocations bounded by the network's size, checked by open_stream)
        tensors: dict[str, torch.Tensor] = {}
        off = 0
        for k, c, rec in records:
            if c in ("h", "f"):
                arr = np.frombuffer(rec, dtype="<f2" if c == "h" else "<f4").astype(np.float32)
                tensors[k] = torch.from_numpy(arr).reshape(shapes[k])
            elif c == "q":
                bits, step = rec
                numel = math.prod(shapes[k])
                width = 1 if bits <= 8 else 2
                arr = np.frombuffer(raw, dtype="<u1" if width == 1 else "<u2", count=numel, offset=off)
                off += numel * width
                tensors[k] = from_stored_uniform(arr, bits, step).reshape(shapes[k])
            else:
                tensors[k] = sparse_tensor_from_bytes(rec, shapes[k], name=k)
        if ref is not None:
            tensors = {k: tensors[k] + ref[k].cpu().float() for k in names}
        model = adapter.build_model()
        model.load_state_dict(tensors, strict=True)
        shape = tuple(int(s) for s in header["shape"])
        return Decoded(model=model.to(nets.resolve_device(device)), shape=shape, header=header)

    def decode(self, data: bytes, *, device: str = "cpu") -> np.ndarray:
        """Stream -> signal in [0, 1] (decompress + render)."""
        dec = self.decompress(data, device=device)
        return self.render(dec.model, dec.shape)



# --------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------

@dataclass
class LoadReport:
    """How a checkpoint's keys were mapped onto the model (safetensors-style)."""

    mapped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def read_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state_dict from a file (``torch.load(weights_only=True)``: tensors only, no code unpickled) or
    a mapping; a ``{"state_dict": ...}`` wrapper and a DataParallel ``module.`` prefix are unwrapped."""
    if isinstance(source, Mapping):
        sd = dict(source)
    else:
        sd = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
        if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
            sd = dict(sd["state_dict"])
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("a checkpoint must be a state_dict: a mapping of names to tensors")
    # models saved from nn.DataParallel carry a "module." prefix
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def map_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], *, strict: bool, what: str,
              rename: Mapping[str, str] | None = None) -> LoadReport:
    """Copy ``sd`` into ``model`` key by key (``rename`` maps checkpoint keys to model keys); shapes must
    agree; with ``strict`` every model key must be filled and every checkpoint key used."""
    own = model.state_dict()
    report = LoadReport()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        target = rename.get(key, key) if rename else key
        if target not in own:
            report.unexpected.append(key)
            continue
        if tuple(own[target].shape) != tuple(value.shape):
            raise ValueError(f"{what} checkpoint tensor {key!r} has shape {tuple(value.shape)}, the model "
                             f"expects {tuple(own[target].shape)}: the checkpoint's layers are inconsistent")
        loaded[target] = value.detach().to(torch.float32)
        report.mapped[key] = target
    report.missing = [k for k in own if k not in loaded]
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"{what} checkpoint does not match the model: missing {report.missing}, unexpected "
                         f"{report.unexpected}; pass strict=False to load the rest")
    model.load_state_dict({**{k: v for k, v in own.items()}, **loaded}, strict=True)
    return report
