"""SINR as a native Zarr format 3 codec (array -> bytes).

Contract
--------
:class:`SINRCodec` is a ``zarr.abc.codec.ArrayBytesCodec``: zarr hands it each chunk as an array together
with the chunk's :class:`~zarr.core.array_spec.ArraySpec` (dtype, shape), which a bytes-to-bytes codec never
sees, and it returns the chunk's SINR stream. Use it as the array's ``serializer``; zarr's compressors
(bytes -> bytes) may follow it, and it may sit inside a sharding codec. All the work is delegated to the
numcodecs codec :class:`sinr_codecs.codec.SINR`, so a chunk written by either is the same stream.

In ``zarr.json`` the codec is ``{"name": "sinr_codecs.sinr", "configuration": {...}}`` with the full SINR
configuration (every option of :class:`~sinr_codecs.codec.SINR` but ``dtype``, which comes from the array).
zarr finds the class through the ``zarr.codecs`` entry point of the same name, so an array written with it
opens in any Python environment where ``sinr-codecs`` is installed, without importing this module.

Only floating-point arrays (float16, float32, float64, either byte order) can use it; the check runs when
the array is created. Chunks are coded independently: SINR's vectors (rows along the last axis by default)
are formed inside a chunk, so chunks should span whole rows (``chunks=(n, shape[-1])``); see docs/zarr.md.

Examples
--------
>>> import numpy as np, zarr
>>> from sinr_codecs.zarr3 import SINRCodec
>>> a = zarr.create_array(store={}, shape=(64, 64), chunks=(32, 64), dtype="float32",
...                       serializer=SINRCodec(sparsity=16, value_bits=12), compressors=None)
>>> a.metadata.codecs[0].to_dict()["name"]
'sinr_codecs.sinr'
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from sinr_codecs.errors import StreamError

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

    from sinr_codecs.codec import SINR

__all__ = ["SINRCodec", "CODEC_NAME"]

CODEC_NAME = "sinr_codecs.sinr"
"""The codec's name in ``zarr.json`` and its key in the ``zarr.codecs`` entry-point group."""

_FLOAT_KINDS = frozenset({"float16", "float32", "float64"})


def _core_class() -> type[SINR]:
    from sinr_codecs.codec import SINR  # imported late: torch is loaded only when a codec is built

    return SINR


def parse_sinr_configuration(data: dict[str, JSON] | None) -> dict[str, Any]:
    """Check a ``configuration`` mapping from ``zarr.json`` (keys are SINR options).

    Raises
    ------
    ValueError
        If ``data`` is not a mapping or holds an option :class:`SINRCodec` does not know, or ``dtype``
        (the chunk's dtype always comes from the array).
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"the {CODEC_NAME} configuration must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(SINRCodec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown {CODEC_NAME} option(s) {unknown}; known: {sorted(known)}. The array may have been "
            "written by a newer sinr-codecs: upgrade it (pip install -U sinr-codecs)."
        )
    return dict(data)


@dataclass(frozen=True)
class SINRCodec(ArrayBytesCodec):
    """SINR sparse coding of float chunks, as a Zarr format 3 array-to-bytes codec.

    Every parameter has the meaning and default of :class:`sinr_codecs.codec.SINR` (see there for units
    and ranges); invalid values raise ``ValueError`` here, at construction.

    Parameters
    ----------
    sparsity : int or float, default 0.25
        Atoms per vector (int >= 1) or a fraction of the vector length ``k1`` (float in (0, 1)).
    dictionary_ratio : float, default 8.0
        Dictionary width ``k2 = round(dictionary_ratio * k1)`` unless ``dictionary_size`` is given.
    dictionary_size : int, optional
        Fixed dictionary width ``k2``.
    seed : int, default 0
        Seed of the dictionary generator.
    value_bits : int or "auto", optional
        Bits per quantized coefficient (unset: the preset's, 8; 16 for ``preset="paper"``); ``"auto"``
        with ``max_rel_error``: the bits that give the smallest stream meeting the bound.
    layout : {"auto", "rows", "blocks", "flat"}, default "auto"
        How vectors are formed inside a chunk: rows along the last axis, ``block_size``-long pieces of
        the flattened chunk, or the whole chunk as one vector.
    block_size : int, optional
        Vector length for ``layout="blocks"``.
    max_rel_error : float, optional
        Error-bounded mode: per-vector relative L2 error bound.
    device : str, default "auto"
        Where OMP runs when encoding: "auto", "cpu", "cuda" or "cuda:N". Decoding always runs on the
        CPU, so an array written on a GPU machine reads anywhere.
    entropy : str, optional
        Lossless back end (unset: the preset's).
    index_coding : str, optional
        How atom indices are coded (unset: the preset's, "delta"; "raw" for ``preset="paper"``).
    preset : {"default", "paper"}, default "default"
        Where unset options come from (:data:`sinr_codecs.codec.PRESETS`). ``zarr.json`` records the
        resolved options too, so an array reads the same even if a later release changes a preset.
    """

    is_fixed_size = False

    sparsity: int | float = 0.25
    dictionary_ratio: float = 8.0
    dictionary_size: int | None = None
    seed: int = 0
    value_bits: int | str | None = None
    layout: str = "auto"
    block_size: int | None = None
    max_rel_error: float | None = None
    device: str = "auto"
    entropy: str | None = None
    index_coding: str | None = None
    preset: str = "default"

    def __init__(
        self,
        *,
        sparsity: int | float = 0.25,
        dictionary_ratio: float = 8.0,
        dictionary_size: int | None = None,
        seed: int = 0,
        value_bits: int | str | None = None,
        layout: str = "auto",
        block_size: int | None = None,
        max_rel_error: float | None = None,
        device: str = "auto",
        entropy: str | None = None,
        index_coding: str | None = None,
        preset: str = "default",
    ) -> None:
        given = {
            "sparsity": sparsity,
            "dictionary_ratio": dictionary_ratio,
            "dictionary_size": dictionary_size,
            "seed": seed,
            "value_bits": value_bits,
            "layout": layout,
            "block_size": block_size,
            "max_rel_error": max_rel_error,
            "device": device,
            "entropy": entropy,
            "index_coding": index_coding,
            "preset": preset,
        }
        core = _core_class()(**given)  # validates; raises ValueError on a bad option
        config = core.get_config()
        for name in given:
            object.__setattr__(self, name, config.get(name, given[name]))
        object.__setattr__(self, "_core", core)

    # -- metadata ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        """Build from ``{"name": "sinr_codecs.sinr", "configuration": {...}}`` (as in ``zarr.json``)."""
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**parse_sinr_configuration(configuration))

    def to_dict(self) -> dict[str, JSON]:
        """``{"name": "sinr_codecs.sinr", "configuration": {...}}`` with every SINR option but ``dtype``."""
        config = {k: v for k, v in self.core.get_config().items() if k not in ("id", "dtype")}
        return {"name": CODEC_NAME, "configuration": config}

    @property
    def core(self) -> SINR:
        """The numcodecs :class:`~sinr_codecs.codec.SINR` codec that does the work."""
        core = self.__dict__.get("_core")
        if core is None:  # e.g. after an unusual copy; rebuild from the fields
            core = _core_class()(**{f.name: getattr(self, f.name) for f in fields(self)})
            object.__setattr__(self, "_core", core)
        return core

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGrid,
    ) -> None:
        """Refuse non-float arrays when the array is created (``TypeError``)."""
        native = dtype.to_native_dtype()
        if not isinstance(native, np.dtype) or native.name not in _FLOAT_KINDS:
            raise TypeError(
                f"{CODEC_NAME} codes float16/float32/float64 arrays only, not {native}; keep the default "
                "serializer (zarr.codecs.BytesCodec) for this array, or cast it to a float dtype."
            )

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Not known in advance: SINR streams are variable-length."""
        raise NotImplementedError(f"{CODEC_NAME} produces variable-length chunks")

    # -- the work ---------------------------------------------------------------------------------
    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = self.core.encode(chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(bytes(data))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        decoded = np.asarray(self.core.decode(chunk_bytes.as_numpy_array()))
        shape = tuple(chunk_spec.shape)
        if decoded.shape != shape:
            if decoded.size != math.prod(shape):
                raise StreamError(
                    f"a {CODEC_NAME} chunk decodes to shape {decoded.shape}, but the array's chunks have "
                    f"shape {shape}: the chunk belongs to another array or the store is corrupt"
                )
            decoded = decoded.reshape(shape)
        native = chunk_spec.dtype.to_native_dtype()
        if decoded.dtype != native:  # e.g. byte order of the array vs of the stream
            decoded = decoded.astype(native)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)


# Registering at import is harmless next to the entry point (the same class under the same key) and lets
# a codec built by hand be resolved even in an environment whose entry points are stale.
register_codec(CODEC_NAME, SINRCodec)
