"""The ``sinr`` numcodecs codec.

Encode = fit a :class:`~sinr_codecs.sparse.SparseCode` by OMP, quantize, write a stream;
decode = read the stream, reconstruct on the CPU. The stream is self-describing (docs/format.md):
decoding needs no codec parameters, only the bytes.

Contract
--------
- Input: any float16/float32/float64 array of any shape, memory order and byte order (also a
  non-contiguous view). Raw bytes are read as ``dtype`` (a codec option) and decode then returns a
  1-D array. Integer, bool, complex or object input raises TypeError, and so does a bfloat16 array
  (``ml_dtypes.bfloat16``), with a message saying to encode it as float32 (exact) and cast back;
  whole-model compression (:mod:`sinr_codecs.weights`) does that and restores bfloat16.
- Non-finite values (NaN, +-inf) are refused with :class:`~sinr_codecs.errors.NonFiniteError`
  (a ValueError): a lossy sparse code cannot hold them. Store such arrays with a lossless codec
  (``sinr_codecs.weights`` does this automatically).
- Decode returns the same dtype (byte order included), shape and memory order, honours ``out=``,
  and runs on the CPU whatever device encoded. A corrupt stream raises
  :class:`~sinr_codecs.errors.StreamError` (a ValueError).
- Lossy: the error is set by ``sparsity`` and ``value_bits``, or bounded by ``max_rel_error``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from . import options
from .errors import StreamError
from .options import PRESETS
from .sparse import SparseCode, decode_bytes, resolve_device

__all__ = ["PRESETS", "SINR", "relative_error"]  # PRESETS lives in options

def relative_error(original: np.ndarray, decoded: np.ndarray) -> float:
    """``||original - decoded|| / ||original||`` over all elements in float64 (0 for a zero array)."""
    a = np.asarray(original, dtype=np.float64).reshape(-1)
    b = np.asarray(decoded, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(a))
    err = float(np.linalg.norm(a - b))
    return err / norm if norm > 0 else (0.0 if err == 0 else math.inf)


class SINR(Codec):  # type: ignore[misc]  # numcodecs has no type information
    """SINR: weight vectors as sparse codes over a seeded Gaussian dictionary.

    Parameters
    ----------
{parameters}

    Options may be given by keyword or, in the order above, by position; each is validated at
    construction (``ValueError``). Their single definition is :data:`sinr_codecs.options.OPTIONS`.
    ``get_config()`` holds every option but ``device`` (where encoding runs is a property of the
    process, not of the data), with the preset's values resolved and the other mode's option None.

    Examples
    --------
    >>> import numpy as np
    >>> SINR()  # doctest: +NORMALIZE_WHITESPACE
    SINR(dictionary_ratio=8.0, dictionary_size=None, seed=0, layout='auto', block_size=None,
         max_rel_error=0.02, entropy='auto', index_coding='delta', dtype=None, chunk_shape=None,
         preset='default')
    >>> codec = SINR(sparsity=0.5, value_bits=12, device="cpu")
    >>> codec.mode, codec.max_rel_error
    ('fixed', None)
    >>> w = np.random.default_rng(0).standard_normal((64, 128)).astype("float32")
    >>> enc = codec.encode(w)
    >>> dec = codec.decode(enc)
    >>> dec.shape, dec.dtype, len(enc) < w.nbytes
    ((64, 128), dtype('float32'), True)
    """

    codec_id = "sinr"

    def __init__(
        self,
        sparsity: int | float | None = None,
        dictionary_ratio: float = 8.0,
        dictionary_size: int | None = None,
        seed: int = 0,
        value_bits: int | str | None = None,
        layout: str = "auto",
        block_size: int | None = None,
        max_rel_error: float | None = options.DEFAULT_MAX_REL_ERROR,
        device: str = "auto",
        entropy: str | None = None,
        index_coding: str | None = None,
        dtype: str | None = None,
        chunk_shape: list[int] | tuple[int, ...] | None = None,
        preset: str = "default",
    ) -> None:
        resolved = options.resolve(**options.given(dict(
            sparsity=sparsity, dictionary_ratio=dictionary_ratio, dictionary_size=dictionary_size, seed=seed,
            value_bits=value_bits, layout=layout, block_size=block_size, max_rel_error=max_rel_error,
            device=device, entropy=entropy, index_coding=index_coding, dtype=dtype, chunk_shape=chunk_shape,
            preset=preset)))
        self._device = resolved.pop("device")
        for name, value in resolved.items():
            setattr(self, name, value)

    @property
    def device(self) -> str:
        """Where OMP runs when this process encodes (not part of the configuration)."""
        return self._device

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SINR:
        """Build from a stored configuration. A ``device`` key (written by older releases) is ignored; a
        configuration holding both ``sparsity`` and ``max_rel_error`` (as older releases stored them) is
        error-bounded."""
        config = {k: v for k, v in config.items() if k not in ("id", "device")}
        if config.get("sparsity") is not None and config.get("max_rel_error") is not None:
            config["sparsity"] = None
        return cls(**config)

    @property
    def mode(self) -> str:
        """``"bounded"`` (every vector within ``max_rel_error``) or ``"fixed"`` (``sparsity`` atoms per vector)."""
        return "bounded" if self.max_rel_error is not None else "fixed"

    def encode(self, buf: Any) -> bytes:
        """Compress ``buf`` (see the module contract) to a self-describing stream."""
        arr = self._as_array(buf)
        if self.chunk_shape is not None and arr.ndim > 1 and list(arr.shape) != list(self.chunk_shape):
            raise ValueError(f"this codec is configured for chunks of shape {tuple(self.chunk_shape)}, got an array "
                             f"of shape {arr.shape}")
        if self.chunk_shape is not None and arr.ndim <= 1 and math.prod(self.chunk_shape) == arr.size:
            arr = arr.reshape(self.chunk_shape)  # raw bytes: the configured shape
        bounded = self.max_rel_error is not None
        try:
            code = SparseCode.fit(
                arr, sparsity=self.sparsity, dictionary_ratio=self.dictionary_ratio,
                dictionary_size=self.dictionary_size, seed=self.seed, layout=self.layout,
                block_size=self.block_size, max_rel_error=self.max_rel_error, device=resolve_device(self.device))
        except RuntimeError as exc:  # torch's allocator: "can't allocate memory", "out of memory"
            if "alloc" not in str(exc) and "out of memory" not in str(exc):
                raise
            raise MemoryError(
                f"encoding a {arr.shape} {arr.dtype} array needs more memory than this process can get "
                f"(dictionary_size={self.dictionary_size}, dictionary_ratio={self.dictionary_ratio}, "
                f"layout={self.layout!r}): choose a smaller dictionary or shorter vectors; docs/security.md "
                "gives the working memory per option") from exc
        bits = 16 if bounded else int(self.value_bits)  # a bounded code carries its own steps
        return code.to_bytes(value_bits=bits, entropy=self.entropy, index_coding=self.index_coding,
                             granularity="tensor")

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        """Decompress a stream to an array of the encoded dtype, shape and memory order (on the CPU)."""
        try:
            data = ensure_contiguous_ndarray(buf).view(np.uint8).reshape(-1)
            dec = decode_bytes(data)
        except (MemoryError, RuntimeError, OverflowError, IndexError, TypeError) as e:
            # every stream the reader accepts decodes within the limits; this is a last line of defence
            raise StreamError(f"cannot decode this SINR stream ({type(e).__name__}: {e})") from e
        if self.dtype is not None and _native(dec.dtype) != _native(np.dtype(self.dtype)):
            raise StreamError(f"the stream holds a {dec.dtype.name} array but this codec is configured for "
                              f"{np.dtype(self.dtype).name}: the chunk belongs to another array "
                              "or the store is corrupt")
        if self.chunk_shape is not None and list(dec.shape) != list(self.chunk_shape):
            raise StreamError(f"the stream holds an array of shape {dec.shape} but this codec is configured for "
                              f"chunks of shape {tuple(self.chunk_shape)}: the chunk belongs to another array or "
                              "the store is corrupt")
        if out is not None:
            return _copy_checked(dec, out)
        return dec

    def _as_array(self, buf: Any) -> np.ndarray:
        if isinstance(buf, np.ndarray):
            arr = buf
        elif isinstance(buf, (bytes, bytearray, memoryview)):
            if self.dtype is None:
                raise TypeError("SINR got untyped bytes: pass an array, or set the codec's dtype option")
            raw = np.frombuffer(buf, dtype=np.uint8)
            if raw.size % np.dtype(self.dtype).itemsize:
                raise TypeError(f"{raw.size} bytes is not a whole number of {np.dtype(self.dtype)} values")
            arr = raw.view(self.dtype)
        else:
            try:
                arr = np.asarray(buf)
            except Exception as e:  # pragma: no cover - defensive
                raise TypeError(f"SINR cannot read input of type {type(buf).__name__}: {e}") from None
        if arr.dtype == object:
            raise TypeError("SINR encodes float16/32/64 arrays, got an object array")
        if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
            if arr.dtype.kind in "uiV" and self.dtype is not None and arr.dtype.itemsize == 1:
                return arr.view(self.dtype)  # untyped uint8 buffer
            if arr.dtype.name == "bfloat16" or (arr.dtype.kind == "V" and arr.dtype.itemsize == 2):
                what = "bfloat16" if arr.dtype.name == "bfloat16" else f"2-byte {arr.dtype.name} (bfloat16?)"
                raise TypeError(
                    f"SINR does not encode {what} arrays (numpy has no bfloat16; ml_dtypes' is not "
                    "a type numcodecs or zarr can carry through this codec): encode a.astype('float32') and "
                    "cast the decoded array back (bfloat16 -> float32 is exact; the codec's error bound then "
                    "holds before that final rounding). sinr compress does this for model files and "
                    "restores bfloat16 tensors as bfloat16")
            raise TypeError(f"SINR encodes float16/32/64 arrays, got dtype {arr.dtype}")
        return arr

    def __repr__(self) -> str:
        """The options of the mode in force (the other mode's are not shown)."""
        unused = _FIXED_ONLY if self.mode == "bounded" else ("max_rel_error",)
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id" and k not in unused)
        return f"{type(self).__name__}({params})"


_FIXED_ONLY = ("sparsity", "value_bits")
"""Options the error-bounded mode does not use (its steps come from the bound)."""


def _native(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=")


def _copy_checked(dec: np.ndarray, out: Any) -> np.ndarray:
    """Copy ``dec`` into ``out``, refusing a typed output that does not match the stream.

    A float ``out`` (what Zarr passes for a chunk) must have the stream's float type and its shape; a
    1-D stream or a 1-D ``out`` is a flat buffer (the numcodecs convention) and needs only the same number
    of elements. Any other ``out`` (raw bytes) must have the stream's size in bytes.
    """
    if isinstance(out, np.ndarray) and out.dtype.kind == "f":
        if _native(out.dtype) != _native(dec.dtype):
            raise StreamError(f"the stream holds a {dec.dtype.name} array of shape {dec.shape}, but the output "
                              f"is {out.dtype.name}: the chunk belongs to another array or the store is corrupt")
        flat = out.ndim <= 1 or dec.ndim <= 1
        if out.shape != dec.shape and not (flat and out.size == dec.size):
            raise StreamError(f"the stream holds an array of shape {dec.shape}, but the output has shape "
                              f"{out.shape}: the chunk belongs to another array or the store is corrupt")
        if out.shape == dec.shape:
            np.copyto(out, dec)
        else:
            np.copyto(out, dec.reshape(out.shape, order="A"))
        return out
    return ndarray_copy(dec, out)


SINR.__doc__ = (SINR.__doc__ or "").replace("{parameters}", options.numpydoc())
