"""The ``sinr`` numcodecs codec.

Encode = fit a :class:`~sinr_codecs.sparse.SparseCode` by OMP, quantize, write a stream;
decode = read the stream, reconstruct on the CPU. The stream is self-describing (docs/format.md):
decoding needs no codec parameters, only the bytes.

Contract
--------
- Input: any float16/float32/float64 array of any shape, memory order and byte order (also a
  non-contiguous view). Raw bytes are read as ``dtype`` (a codec option) and decode then returns a
  1-D array. Integer, bool, complex or object input raises TypeError.
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

from . import entropy, quantize
from .layout import LAYOUTS
from .errors import StreamError
from .sparse import SparseCode, decode_bytes, resolve_device

__all__ = ["AUTO_VALUE_BITS", "PRESETS", "SINR", "relative_error"]

AUTO_VALUE_BITS: tuple[int, ...] = (6, 8, 10, 12, 16)
"""The value bits ``value_bits="auto"`` tries."""

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"value_bits": 8, "index_coding": "delta", "entropy": "brotli"},
    "paper": {"value_bits": 16, "index_coding": "raw", "entropy": "brotli"},
}
"""Values of the options a caller leaves unset (``None``), by ``preset``.

``"default"`` is what measured best in ``benchmarks/codec_ablation.py`` (docs/benchmarks.md, "What each
idea buys"): 8-bit values and sorted-gap indices need about half the bits of the paper's pipeline at
equal error. ``"paper"`` keeps the SINR paper's pipeline: 16-bit values, 16-bit indices in selection
order, Brotli.
"""

_LAYOUT_CHOICES = (*LAYOUTS, "auto")
_FLOAT_DTYPES = ("float16", "float32", "float64")


def relative_error(original: np.ndarray, decoded: np.ndarray) -> float:
    """``||original - decoded|| / ||original||`` over all elements in float64 (0 for a zero array)."""
    a = np.asarray(original, dtype=np.float64).reshape(-1)
    b = np.asarray(decoded, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(a))
    err = float(np.linalg.norm(a - b))
    return err / norm if norm > 0 else (0.0 if err == 0 else math.inf)


class SINR(Codec):
    """SINR: weight vectors as sparse codes over a seeded Gaussian dictionary.

    Parameters
    ----------
    sparsity : int or float, default 0.25
        Atoms per vector (int >= 1) or a fraction of the vector length k1 (float in (0, 1));
        clipped to k1 - 1. Ignored when ``max_rel_error`` is set.
    dictionary_ratio : float, default 8.0
        Dictionary size as a multiple of k1 (k2 = ceil(ratio * k1)); larger dictionaries give better
        atoms at log2(k2) bits per index.
    dictionary_size : int, optional
        k2 directly; overrides ``dictionary_ratio``.
    seed : int, default 0
        Dictionary seed (0 <= seed < 2**64); stored in the stream.
    value_bits : int or "auto", optional
        Uniform quantizer bits for the nonzero values (2..24). Unset: the preset's (8; 16 for "paper").
        ``"auto"`` (needs ``max_rel_error``): encode with each of :data:`AUTO_VALUE_BITS` and keep the
        smallest stream that meets the bound (auto-tuning; encoding costs that many fits).
    layout : {"auto", "rows", "blocks", "flat"}, default "auto"
        How vectors are formed: rows along the last axis, ``block_size``-long blocks of the flattened
        array, or the whole array as one vector (the paper's rule for k x k layers with k < 50).
        "auto": rows if ndim >= 2 and the last axis has >= 50 elements, flat up to 2500 elements,
        else blocks of 64.
    block_size : int, optional
        Vector length for ``layout="blocks"``.
    max_rel_error : float, optional
        Error-bounded mode: each vector's relative L2 error ``||w - w_hat|| / ||w||`` is at most this,
        checked after quantization and rounding to the output dtype; each vector gets the fewest
        atoms that meet it (quantizer steps are then per vector).
    device : str, default "auto"
        Where OMP runs when encoding: "auto" (CUDA when torch sees one), "cpu", "cuda", "cuda:N".
        Decoding always runs on the CPU.
    entropy : {"brotli", "raw"}, optional
        Lossless back end for the stream's sections. Unset: the preset's ("brotli").
    index_coding : {"delta", "raw"}, optional
        Support coding: sorted indices as gaps ("delta"), or as selected ("raw", the paper's).
        Unset: the preset's ("delta"; "raw" for "paper").
    preset : {"default", "paper"}, default "default"
        Where unset options come from (:data:`PRESETS`); options given explicitly always win.
    dtype : str, optional
        How to read untyped input (raw bytes): "float16", "float32" or "float64".

    Examples
    --------
    >>> import numpy as np
    >>> codec = SINR(sparsity=0.5, value_bits=12, device="cpu")
    >>> w = np.random.default_rng(0).standard_normal((64, 128)).astype("float32")
    >>> enc = codec.encode(w)
    >>> dec = codec.decode(enc)
    >>> dec.shape, dec.dtype, len(enc) < w.nbytes
    ((64, 128), dtype('float32'), True)
    """

    codec_id = "sinr"

    def __init__(
        self,
        sparsity: int | float = 0.25,
        dictionary_ratio: float = 8.0,
        dictionary_size: int | None = None,
        seed: int = 0,
        value_bits: int | None = None,
        layout: str = "auto",
        block_size: int | None = None,
        max_rel_error: float | None = None,
        device: str = "auto",
        entropy: str | None = None,
        index_coding: str | None = None,
        dtype: str | None = None,
        preset: str = "default",
    ):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
        self.preset = preset
        chosen = PRESETS[preset]
        value_bits = chosen["value_bits"] if value_bits is None else value_bits
        entropy = chosen["entropy"] if entropy is None else entropy
        index_coding = chosen["index_coding"] if index_coding is None else index_coding
        self.sparsity = _parse_sparsity(sparsity)
        self.dictionary_ratio = _parse_positive("dictionary_ratio", dictionary_ratio, minimum=1.0)
        self.dictionary_size = None if dictionary_size is None else _parse_int("dictionary_size", dictionary_size, 2)
        self.seed = _parse_int("seed", seed, 0, (1 << 64) - 1)
        if value_bits == "auto":
            if max_rel_error is None:
                raise ValueError("value_bits='auto' searches the bits that meet max_rel_error with the smallest "
                                 "stream: set max_rel_error too (or give value_bits as an integer)")
            self.value_bits: int | str = "auto"
        else:
            quantize.check_bits(value_bits)
            self.value_bits = int(value_bits)
        if layout not in _LAYOUT_CHOICES:
            raise ValueError(f"layout must be one of {_LAYOUT_CHOICES}, got {layout!r}")
        self.layout = layout
        self.block_size = None if block_size is None else _parse_int("block_size", block_size, 1)
        if layout == "blocks" and self.block_size is None:
            raise ValueError("layout='blocks' needs block_size")
        if max_rel_error is not None:
            max_rel_error = _parse_positive("max_rel_error", max_rel_error)
            if max_rel_error >= 1:
                raise ValueError(f"max_rel_error must lie in (0, 1), got {max_rel_error}")
        self.max_rel_error = max_rel_error
        if not isinstance(device, str):
            raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {device!r}")
        self.device = device
        if entropy not in entropy_backends():
            raise ValueError(f"entropy must be one of {entropy_backends()}, got {entropy!r}")
        self.entropy = entropy
        if index_coding not in tuple(_index_codings()):
            raise ValueError(f"index_coding must be one of {tuple(_index_codings())}, got {index_coding!r}")
        self.index_coding = index_coding
        if dtype is not None and np.dtype(dtype).name not in _FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {_FLOAT_DTYPES}, got {dtype!r}")
        self.dtype = None if dtype is None else np.dtype(dtype).str

    # numcodecs' default get_config copies __dict__; keep only JSON-safe public attributes there
    def encode(self, buf: Any) -> bytes:
        """Compress ``buf`` (see the module contract) to a self-describing stream."""
        arr = self._as_array(buf)
        if self.value_bits != "auto":
            return self._encode(arr, int(self.value_bits))
        best: bytes | None = None
        failures = []
        for bits in AUTO_VALUE_BITS:  # each stream meets the bound by construction; keep the smallest
            try:
                data = self._encode(arr, bits)
            except ValueError as exc:  # this many bits cannot meet the bound
                failures.append(f"{bits} bits: {exc}")
                continue
            if best is None or len(data) < len(best):
                best = data
        if best is None:
            raise ValueError("no value_bits in " + str(AUTO_VALUE_BITS) + " meets max_rel_error: " + "; ".join(failures))
        return best

    def _encode(self, arr: np.ndarray, value_bits: int) -> bytes:
        code = SparseCode.fit(
            arr, sparsity=self.sparsity, dictionary_ratio=self.dictionary_ratio,
            dictionary_size=self.dictionary_size, seed=self.seed, layout=self.layout,
            block_size=self.block_size, max_rel_error=self.max_rel_error, value_bits=value_bits,
            device=resolve_device(self.device))
        granularity = "vector" if self.max_rel_error is not None else "tensor"
        return code.to_bytes(value_bits=value_bits, entropy=self.entropy,
                             index_coding=self.index_coding, granularity=granularity)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        """Decompress a stream to an array of the encoded dtype, shape and memory order (on the CPU)."""
        try:
            data = ensure_contiguous_ndarray(buf).view(np.uint8).reshape(-1)
            dec = decode_bytes(data)
        except ValueError:
            raise
        except (MemoryError, RuntimeError, OverflowError, IndexError, TypeError) as e:
            # every stream the reader accepts decodes within the limits; this is a last line of defence
            raise StreamError(f"cannot decode this SINR stream ({type(e).__name__}: {e})") from e
        if self.dtype is not None and _native(dec.dtype) != _native(np.dtype(self.dtype)):
            raise StreamError(f"the stream holds a {dec.dtype.name} array but this codec is configured for "
                              f"{np.dtype(self.dtype).name}: the chunk belongs to another array or the store is corrupt")
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
            raise TypeError(f"SINR encodes float16/32/64 arrays, got dtype {arr.dtype}")
        return arr

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})"


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


def entropy_backends() -> tuple[str, ...]:
    return tuple(entropy.BACKENDS)


def _index_codings() -> dict[str, int]:
    return entropy.INDEX_CODINGS


def _parse_sparsity(s: Any) -> int | float:
    if isinstance(s, bool):
        raise ValueError(f"sparsity must be an int >= 1 or a float in (0, 1), got {s!r}")
    if isinstance(s, (int, np.integer)):
        if s < 1:
            raise ValueError(f"sparsity must be >= 1 atom, got {s}")
        return int(s)
    if isinstance(s, (float, np.floating)):
        if not 0.0 < float(s) < 1.0:
            raise ValueError(f"a fractional sparsity must lie in (0, 1), got {s}")
        return float(s)
    raise ValueError(f"sparsity must be an int >= 1 or a float in (0, 1), got {s!r}")


def _parse_int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an integer {rng}, got {v!r}")
    return int(v)


def _parse_positive(name: str, v: Any, minimum: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if v <= 0 or v < minimum:
        raise ValueError(f"{name} must be > 0{f' and >= {minimum}' if minimum else ''}, got {v}")
    return v
